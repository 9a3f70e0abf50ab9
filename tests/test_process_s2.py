"""The s2-l1c processor on a tiny synthetic L1C product, checked against plain numpy.

The input is built with the sample builder, written as a station would deliver it (EOPF
Zarr, zipped), and processed with ``produce``. Expected values are computed here from the
raw uint16 arrays (``zarr.open_group``), with the formulas and thresholds the processor
documents, restated below rather than imported.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from rspy_batch.processing.base import OutputTarget, ProductInput
from rspy_batch.processing.processors.s2_l1c import S2L1CProcessor
from rspy_batch.processing.product import ProductError, write_product, zip_product
from rspy_batch.processing.samples import SampleSpec
from rspy_batch.processing.samples.s2 import make_s2_l1c

SIZE = 60
FOOTPRINT = {"type": "Polygon", "coordinates": [[[6.5, 45.2], [7.9, 45.2], [7.9, 44.2],
                                                 [6.5, 44.2], [6.5, 45.2]]]}
SPEC = SampleSpec(
    name="S2B_MSIL1C_20250113T103309_N0511_R108_T32TLQ_20250113T122458",
    start=datetime(2025, 1, 13, 10, 33, 9, tzinfo=UTC),
    stop=datetime(2025, 1, 13, 10, 33, 14, tzinfo=UTC),
    platform="sentinel-2b", size=SIZE, seed=3, absolute_orbit=40977, relative_orbit=108,
    footprint=FOOTPRINT, extra={"tile": "T32TLQ"},
)
BANDS = {10: ("b02", "b03", "b04", "b08"), 20: ("b05", "b06", "b07", "b8a", "b11", "b12"),
         60: ("b01", "b09", "b10")}
NATIVE = {b: res for res, names in BANDS.items() for b in names}
OUT = {10: ("b02", "b03", "b04", "b08"),
       20: ("b01", "b02", "b03", "b04", "b05", "b06", "b07", "b8a", "b11", "b12"),
       60: ("b01", "b02", "b03", "b04", "b05", "b06", "b07", "b8a", "b09", "b11", "b12")}


# --- numpy reference ------------------------------------------------------------------------


def decode(dn: np.ndarray, offset: float = -0.1) -> np.ndarray:
    return np.where(dn == 0, np.nan, dn.astype(np.float64) * 1e-4 + offset)


def encode(rho: np.ndarray) -> np.ndarray:
    """uint16 DN with scale 1e-4, offset -0.1, fill 0."""
    rho = np.clip(rho, 1e-4 - 0.1, 6.5535 - 0.1)
    return np.where(np.isnan(rho), 0, np.rint((rho + 0.1) / 1e-4)).astype(np.uint16)


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean of the valid pixels of each k x k block (all-invalid blocks stay NaN)."""
    h, w = a.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice"
        return np.nanmean(a.reshape(h // k, k, w // k, k), axis=(1, 3))


def repeat(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def reflectance_at(raw: zarr.Group, band: str, res: int) -> np.ndarray:
    native = NATIVE[band]
    rho = decode(raw[f"measurements/reflectance/r{native}m/{band}"][:])
    if native < res:
        return block_mean(rho, res // native)
    if native > res:
        return repeat(rho, native // res)
    return rho


def nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a - b) / (a + b)


def expected_scl(raw: zarr.Group, res: int) -> np.ndarray:
    """The documented rules, first match wins."""
    b02, b03, b04, b8a, b10, b11 = (reflectance_at(raw, b, res)
                                    for b in ("b02", "b03", "b04", "b8a", "b10", "b11"))
    ndsi, ndwi, ndvi = nd(b03, b11), nd(b03, b8a), nd(b8a, b04)
    missing = np.isnan(b02) | np.isnan(b03) | np.isnan(b04) | np.isnan(b8a) | np.isnan(b10) \
        | np.isnan(b11)
    return np.select(
        [missing, (ndsi > 0.42) & (b8a > 0.11) & (b03 > 0.25), b02 > 0.35, b02 > 0.22,
         b10 > 0.012, (ndwi > 0.1) & (b8a < 0.15), ndvi > 0.4],
        [0, 11, 9, 8, 10, 6, 4], default=5).astype(np.uint8)


# --- fixtures -----------------------------------------------------------------------------


def deliver(tree: xr.DataTree, where: Path, name: str) -> tuple[Path, ProductInput]:
    """Write as EOPF Zarr and zip it, as a station delivers it."""
    directory = where / f"{name}.zarr"
    write_product(tree, str(directory))
    zipped = zip_product(directory, where / f"{name}.zarr.zip")
    return directory, ProductInput(item={"id": name}, files={"product": zipped})


def reflectance_only(tree: xr.DataTree) -> xr.DataTree:
    """Just the measurements (enough for the checks ``run`` makes; quicker to write)."""
    out = xr.DataTree.from_dict({f"/measurements/reflectance/r{r}m":
                                 tree[f"measurements/reflectance/r{r}m"].to_dataset()
                                 for r in (10, 20, 60)})
    out.attrs = tree.attrs
    return out


def target(url: Path) -> OutputTarget:
    return OutputTarget(url=str(url), product_id="S02MSIL2A_20250113T103309_0005_B108_T123",
                        properties={}, processing_history={})


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("s2")
    source, product_input = deliver(make_s2_l1c(SPEC), work, SPEC.name)
    processor = S2L1CProcessor()
    written = processor.produce([product_input], target(work / "out.zarr"))
    return {"source": source, "out": work / "out.zarr", "tree": written,
            "raw": zarr.open_group(str(source), mode="r"),
            "res": zarr.open_group(str(work / "out.zarr"), mode="r"),
            "processor": processor, "work": work}


# --- values -------------------------------------------------------------------------------


def test_reflectance_decoded_and_resampled(processed: dict) -> None:
    raw, res = processed["raw"], processed["res"]
    kinds = set()
    for r, bands in OUT.items():
        for band in bands:
            got = res[f"measurements/reflectance/r{r}m/{band}"][:]
            assert got.dtype == np.uint16 and got.shape == (SIZE * 10 // r,) * 2
            native = NATIVE[band]
            kinds.add("native" if native == r else "down" if native < r else "up")
            expected = encode(reflectance_at(raw, band, r))
            if native == r:  # pass-through keeps the DN exactly
                np.testing.assert_array_equal(got, raw[f"measurements/reflectance/r{r}m/{band}"])
            np.testing.assert_array_equal(got, expected, err_msg=f"{band} at {r} m")
    assert kinds == {"native", "down", "up"}
    # the decoded output is TOA reflectance = DN * 1e-4 - 0.1 of the input where native
    out = processed["tree"]["measurements/reflectance/r10m/b04"].values
    np.testing.assert_allclose(out, decode(raw["measurements/reflectance/r10m/b04"][:]),
                               atol=1e-12)


def test_indices(processed: dict) -> None:
    raw, res = processed["raw"], processed["res"]
    b03, b04, b08 = (decode(raw[f"measurements/reflectance/r10m/{b}"][:])
                     for b in ("b03", "b04", "b08"))
    for name, (a, b) in {"ndvi": (b08, b04), "ndwi": (b03, b08)}.items():
        value = np.where((a > 0) & (b > 0), nd(a, b), np.nan)
        expected = np.where(np.isnan(value), -32768, np.rint(value / 1e-4)).astype(np.int16)
        got = res[f"measurements/indices/r10m/{name}"][:]
        assert got.dtype == np.int16
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert (got[got != -32768] >= -10000).all() and (got[got != -32768] <= 10000).all()
    ndvi = processed["tree"]["measurements/indices/r10m/ndvi"].values
    assert np.nanmax(ndvi) > 0.4 and np.nanmin(ndvi) < 0.2  # real patch: fields and bare soil


def test_scene_classification_and_cloud_score(processed: dict) -> None:
    raw, res = processed["raw"], processed["res"]
    for r in (20, 60):
        got = res[f"conditions/mask/l2a_classification/r{r}m/scl"][:]
        assert got.dtype == np.uint8 and got.shape == (SIZE * 10 // r,) * 2
        np.testing.assert_array_equal(got, expected_scl(raw, r), err_msg=f"scl {r} m")
    scl20 = res["conditions/mask/l2a_classification/r20m/scl"][:]
    # the seeded scene exercises every rule
    assert {0, 4, 5, 6, 8, 9, 10, 11} <= set(np.unique(scl20).tolist())
    b02 = reflectance_at(raw, "b02", 20)
    score = np.rint(100 * np.clip(np.nan_to_num((b02 - 0.15) / 0.30), 0, 1)).astype(np.uint8)
    score[scl20 == 11] = 0
    score[scl20 == 0] = 101
    np.testing.assert_array_equal(res["quality/probability/r20m/cld"][:], score)
    # no data in the L1C (DN 0) stays no data in every output
    nodata = raw["measurements/reflectance/r20m/b05"][:] == 0
    assert nodata.any()
    assert (scl20[nodata] == 0).all()
    assert (res["measurements/reflectance/r20m/b02"][:][nodata] == 0).all()


# --- encodings and attributes -----------------------------------------------------------------


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_encodings_on_disk(processed: dict) -> None:
    out = processed["out"]
    assert (out / ".zmetadata").is_file()
    assert _json(out / ".zmetadata")["zarr_consolidated_format"] == 1
    expected = {
        "measurements/reflectance/r10m/b02": ("<u2", 0, [30, 30]),
        "measurements/reflectance/r20m/b01": ("<u2", 0, [15, 15]),
        "measurements/reflectance/r60m/b12": ("<u2", 0, [5, 5]),
        "measurements/indices/r10m/ndvi": ("<i2", -32768, [30, 30]),
        "conditions/mask/l2a_classification/r20m/scl": ("|u1", None, [15, 15]),
        "conditions/mask/l2a_classification/r60m/scl": ("|u1", None, [5, 5]),
        "quality/probability/r20m/cld": ("|u1", 101, [15, 15]),
    }
    for path, (dtype, fill, chunks) in expected.items():
        meta = _json(out / path / ".zarray")
        assert meta["zarr_format"] == 2
        assert (meta["dtype"], meta["fill_value"], meta["chunks"]) == (dtype, fill, chunks), path
        assert meta["compressor"] == {"id": "blosc", "cname": "zstd", "clevel": 3,
                                      "shuffle": 2, "blocksize": 0}
        attrs = _json(out / path / ".zattrs")
        assert attrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    refl = _json(out / "measurements/reflectance/r20m/b01/.zattrs")
    assert (refl["scale_factor"], refl["add_offset"]) == (1e-4, -0.1)
    assert "TOA" in refl["long_name"]
    ndvi = _json(out / "measurements/indices/r10m/ndvi/.zattrs")
    assert (ndvi["scale_factor"], ndvi["add_offset"]) == (1e-4, 0.0)
    scl = _json(out / "conditions/mask/l2a_classification/r20m/scl/.zattrs")
    assert "not Sen2Cor" in scl["long_name"] and scl["flag_values"][11] == 11
    assert scl["flag_meanings"].split()[6] == "water"
    # the input, as the builder wrote it: EOPF chunking 30/15/5 and the L1C encoding
    source = processed["source"]
    for path, chunks in {"measurements/reflectance/r10m/b08": [30, 30],
                         "measurements/reflectance/r20m/b8a": [15, 15],
                         "measurements/reflectance/r60m/b10": [5, 5]}.items():
        meta = _json(source / path / ".zarray")
        assert (meta["dtype"], meta["fill_value"], meta["chunks"]) == ("<u2", 0, chunks)
    assert _json(source / "measurements/reflectance/r10m/x/.zarray")["dtype"] == "<i8"


def test_root_attributes(processed: dict) -> None:
    tree, raw = processed["tree"], processed["raw"]
    stac_in = raw.attrs["stac_discovery"]
    stac = tree.attrs["stac_discovery"]
    props = stac["properties"]
    assert stac["id"] == "S02MSIL2A_20250113T103309_0005_B108_T123"
    assert stac["geometry"] == FOOTPRINT == stac_in["geometry"]
    assert stac["bbox"] == [6.5, 44.2, 7.9, 45.2]
    assert props["product:type"] == "S02MSIL2A"
    assert props["processing:level"] == "L2A-like"
    for key in ("datetime", "start_datetime", "end_datetime", "platform", "sat:relative_orbit",
                "sat:absolute_orbit", "proj:code", "product:timeliness_category"):
        assert props[key] == stac_in["properties"][key], key
    assert props["start_datetime"] == "2025-01-13T10:33:09.000000Z"
    assert {b["name"] for b in props["bands"]} == set(OUT[60]) | {"b01"}
    meta = tree.attrs["other_metadata"]
    assert meta["horizontal_CRS_code"] == "EPSG:32632"
    assert meta["reflectance_type"] == "TOA"
    assert "top-of-atmosphere" in meta["atmospheric_correction"]
    assert "not Sen2Cor" in meta["scene_classification"]


def test_main_variables_and_quicklook(processed: dict) -> None:
    processor, tree, raw = processed["processor"], processed["tree"], processed["raw"]
    assets = processor.main_variables(tree)
    assert set(assets) == {"b02", "b03", "b04", "b08", "ndvi", "ndwi", "scl"}
    for path in assets.values():
        assert tree[path].shape[0] > 0
    image = processor.quicklook(tree)
    assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
    red = decode(raw["measurements/reflectance/r10m/b04"][:])
    np.testing.assert_array_equal(
        image[..., 0], np.rint(np.clip(np.nan_to_num(red) / 0.3, 0, 1) * 255).astype(np.uint8))


# --- baselines and rejected inputs -------------------------------------------------------------


def test_pre_04_baseline_decodes_without_offset(tmp_path: Path) -> None:
    spec = replace(SPEC, extra={"baseline": "03.01", "features": False})
    source, product_input = deliver(reflectance_only(make_s2_l1c(spec)), tmp_path, "old")
    raw = zarr.open_group(str(source), mode="r")
    assert raw["measurements/reflectance/r10m/b02"].attrs["add_offset"] == 0.0
    tree = S2L1CProcessor().run([product_input])
    dn = raw["measurements/reflectance/r10m/b02"][:]
    np.testing.assert_allclose(tree["measurements/reflectance/r10m/b02"].values,
                               np.where(dn == 0, np.nan, dn * 1e-4), atol=1e-12)
    assert tree.attrs["other_metadata"]["input_radiometric_offset"] == 0.0


def test_offset_contradicting_baseline_is_rejected(tmp_path: Path) -> None:
    l1c = reflectance_only(make_s2_l1c(replace(SPEC, extra={"baseline": "03.01",
                                                            "features": False})))
    l1c.attrs["stac_discovery"]["properties"]["processing:version"] = "05.11"
    _, product_input = deliver(l1c, tmp_path, "lying")
    with pytest.raises(ProductError, match="add_offset 0.0 contradicts the processing baseline"):
        S2L1CProcessor().run([product_input])


def test_non_s2_input_is_rejected(tmp_path: Path) -> None:
    grd = xr.DataTree.from_dict({"/measurements": xr.Dataset(
        {"grd": (("azimuth_time", "ground_range"), np.ones((4, 4), dtype=np.uint16))})})
    grd.attrs = {"stac_discovery": {"properties": {"product:type": "S01SIWGRD"}},
                 "other_metadata": {}}
    _, product_input = deliver(grd, tmp_path, "S1A_IW_GRDH")
    with pytest.raises(ProductError, match=r"needs a Sentinel-2 L1C product \(S02MSIL1C\).*"
                                           r"'S01SIWGRD'"):
        S2L1CProcessor().run([product_input])


def test_l1c_missing_a_band_is_rejected(tmp_path: Path) -> None:
    l1c = reflectance_only(make_s2_l1c(replace(SPEC, extra={"features": False})))
    del l1c["measurements/reflectance/r20m"]["b11"]
    _, product_input = deliver(l1c, tmp_path, "partial")
    with pytest.raises(ProductError, match="lacks measurements/reflectance/r20m/b11"):
        S2L1CProcessor().run([product_input])


def test_exactly_one_input(processed: dict) -> None:
    with pytest.raises(ProductError, match="exactly one"):
        S2L1CProcessor().run([])


# --- the sample builder ---------------------------------------------------------------------


def spyndex_json() -> np.ndarray:
    spec = importlib.util.find_spec("spyndex")
    path = Path(spec.submodule_search_locations[0]) / "data" / "S2_10m.json"
    return np.array(json.loads(path.read_text()))  # (B02, B03, B04, B08) x 300 x 300


def test_sample_pixels_are_the_spyndex_patch() -> None:
    patch = spyndex_json()
    tree = make_s2_l1c(replace(SPEC, size=600, extra={"features": False}))
    for i, band in enumerate(("b02", "b03", "b04", "b08")):
        rho = tree[f"measurements/reflectance/r10m/{band}"].values
        dn = np.rint((rho + 0.1) / 1e-4).astype(np.int64)  # the stored uint16 DN
        np.testing.assert_array_equal(dn[:300, :300] - 1000, patch[i])  # TOA = patch / 1e4
        np.testing.assert_array_equal(dn[:300, 300:] - 1000, patch[i][:, ::-1])  # mirrored
        np.testing.assert_array_equal(dn[300:, :300] - 1000, patch[i][::-1, :])


def test_written_sample_keeps_most_patch_pixels(processed: dict) -> None:
    """With features (clouds, water, snow, no data) most pixels are still the real patch."""
    patch = spyndex_json()
    raw = processed["raw"]
    for i, band in enumerate(("b02", "b03", "b04", "b08")):
        dn = raw[f"measurements/reflectance/r10m/{band}"][:].astype(np.int64)
        same = dn == patch[i][:SIZE, :SIZE] + 1000
        assert 0.5 < same.mean() < 1.0
    flags = raw["conditions/mask/l1c_classification/r60m/b00"][:]
    assert set(np.unique(flags).tolist()) <= {0, 1, 2, 4, 3, 5, 6, 7} and flags.any()
    nodata = raw["quality/mask/r10m/b02"][:] == 32
    np.testing.assert_array_equal(nodata, raw["measurements/reflectance/r10m/b02"][:] == 0)


def test_sample_size_must_be_a_multiple_of_six() -> None:
    with pytest.raises(ValueError, match="multiple of 6"):
        make_s2_l1c(replace(SPEC, size=100))


def test_sample_geometry_and_sun_angles(processed: dict) -> None:
    raw = processed["raw"]
    x10 = raw["measurements/reflectance/r10m/x"][:]
    y10 = raw["measurements/reflectance/r10m/y"][:]
    assert x10.dtype == np.int64 and (np.diff(x10) == 10).all() and (np.diff(y10) == -10).all()
    x60 = raw["measurements/reflectance/r60m/x"][:]
    assert x60[0] == x10[0] - 5 + 30  # pixel centres of the same upper-left corner
    sun = raw["conditions/geometry/sun_angles"][:]
    assert sun.shape == (2, 2, 2)
    assert (np.diff(raw["conditions/geometry/x"][:]) == 5000).all()
    # January, mid-morning over the Alps: low sun in the south-south-east
    assert 60 < sun[0].mean() < 75 and 140 < sun[1].mean() < 175
    props = raw.attrs["stac_discovery"]["properties"]
    assert (props["processing:version"], props["eopf:baseline"]) == ("05.11", "05.11")
    assert props["proj:epsg"] == 32632 and props["grid:code"] == "MGRS-32TLQ"
    assert raw.attrs["other_metadata"]["horizontal_CRS_code"] == "EPSG:32632"
