"""s3-olci: synthetic OLCI EFR in, TOA reflectance out, checked against plain numpy.

Expected values are computed here from the raw arrays of the written input (read with
``zarr.open_group``): radiance decoded by hand, SZA interpolated with ``np.interp``, F0
looked up by fancy indexing. Nothing from the processor module is used for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

from rspy_batch.processing.base import OutputTarget, ProductInput
from rspy_batch.processing.processors.s3_olci import S3OlciProcessor
from rspy_batch.processing.product import ProductError, write_product, zip_product
from rspy_batch.processing.samples import SampleSpec, builders
from rspy_batch.processing.samples.s3 import make_s3_olci_efr

ROWS, COLUMNS = 40, 70
NAME = ("S3A_OL_1_EFR____20260605T100000_20260605T100300_20260605T120000_0180_130_122_2160"
        "_PS1_O_NT_004")
FOOTPRINT = {"type": "Polygon", "coordinates": [[
    [10.0, 44.0], [18.0, 44.0], [18.0, 52.0], [10.0, 52.0], [10.0, 44.0]]]}


def spec(**extra: object) -> SampleSpec:
    return SampleSpec(
        name=NAME, start=datetime(2026, 6, 5, 10, 0, tzinfo=UTC),
        stop=datetime(2026, 6, 5, 10, 3, tzinfo=UTC), platform="sentinel-3a", size=ROWS,
        seed=7, absolute_orbit=51234, relative_orbit=122, footprint=FOOTPRINT,
        extra={"rows": ROWS, "columns": COLUMNS, **extra})


def staged(tmp_path: Path, tree: xr.DataTree, name: str = "in") -> tuple[Path, ProductInput]:
    """Write, zip, and wrap a product the way the runner hands it over."""
    directory = tmp_path / f"{name}.zarr"
    write_product(tree, str(directory))
    zipped = zip_product(directory, tmp_path / f"{name}.zarr.zip")
    return directory, ProductInput(item={"id": name}, files={"product": zipped})


def target(directory: Path) -> OutputTarget:
    return OutputTarget(url=str(directory / "out.zarr"), product_id="S03OLCRFL_TEST",
                        properties={"processing:version": "1.0.0"},
                        processing_history={"Level-1 TOA reflectance": [{"processor": "s3"}]})


# Writing a 21-band product costs seconds on a small machine whatever its size, so each
# input (per tie-point grid) and each output is written once per module and shared.
Staged = tuple[Path, ProductInput]


@pytest.fixture(scope="module")
def olci(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Staged]:
    """(product dir, ProductInput of its zip) of the sample with tie-point steps ac/al."""
    cache: dict[tuple[int, int], Staged] = {}

    def get(ac: int = 64, al: int = 1) -> Staged:
        if (ac, al) not in cache:
            tree = make_s3_olci_efr(spec(ac_subsampling=ac, al_subsampling=al))
            cache[ac, al] = staged(tmp_path_factory.mktemp(f"olci-{ac}-{al}"), tree)
        return cache[ac, al]

    return get


@pytest.fixture(scope="module")
def produced(olci: Callable[..., Staged], tmp_path_factory: pytest.TempPathFactory
             ) -> Callable[..., tuple[Path, Path, xr.DataTree]]:
    """(input dir, output dir, written tree) of ``produce`` on the ac/al sample."""
    cache: dict[tuple[int, int, str], tuple[Path, Path, xr.DataTree]] = {}

    def get(ac: int = 64, al: int = 1, bands: str = "all") -> tuple[Path, Path, xr.DataTree]:
        if (ac, al, bands) not in cache:
            src_dir, source = olci(ac, al)
            out = tmp_path_factory.mktemp(f"out-{ac}-{al}")
            written = S3OlciProcessor().produce([source], target(out), bands=bands)
            cache[ac, al, bands] = (src_dir, out / "out.zarr", written)
        return cache[ac, al, bands]

    return get


def decoded(arr: zarr.Array) -> np.ndarray:
    """CF decode by hand: fill -> NaN, then raw * scale + offset."""
    raw = arr[:]
    out = raw * float(arr.attrs.get("scale_factor", 1.0)) + float(arr.attrs.get("add_offset", 0))
    return np.where(raw == arr.fill_value, np.nan, out)


def flag_bit(flags: zarr.Array, meaning: str) -> int:
    meanings = flags.attrs["flag_meanings"].split()
    return int(flags.attrs["flag_masks"][meanings.index(meaning)])


def expected_sza(g: zarr.Group) -> np.ndarray:
    """Tie-point SZA, linear along columns then along rows, at every pixel."""
    tie = g["conditions/geometry/sza"]
    grid = decoded(tie)
    ac, al = int(tie.attrs["ac_subsampling_factor"]), int(tie.attrs["al_subsampling_factor"])
    tie_cols = np.arange(grid.shape[1]) * ac
    tie_rows = np.arange(grid.shape[0]) * al
    along = np.stack([np.interp(np.arange(COLUMNS), tie_cols, row) for row in grid])
    return np.stack([np.interp(np.arange(ROWS), tie_rows, along[:, j])
                     for j in range(COLUMNS)], axis=1)


def expected_reflectance(g: zarr.Group, band: int) -> np.ndarray:
    radiance = decoded(g[f"measurements/oa{band:02d}_radiance"])
    detector = g["conditions/image/detector_index"][:]
    f0 = g["conditions/instrument/solar_flux"][:][band - 1][detector]
    rho = np.pi * radiance / (f0 * np.cos(np.deg2rad(expected_sza(g))))
    flags = g["quality/quality_flags"]
    return np.where(flags[:] & flag_bit(flags, "invalid"), np.nan, rho)


@pytest.mark.parametrize(("ac", "al", "bands"), [
    (64, 1, "all"),                      # EFR's own grid: full rows, 64:1 columns
    (8, 4, "oa04,oa08,oa17,oa21"),       # denser columns, and rows sub-sampled too
])
def test_reflectance_matches_numpy(produced: Callable[..., tuple[Path, Path, xr.DataTree]],
                                   ac: int, al: int, bands: str) -> None:
    src_dir, out_dir, _ = produced(ac, al, bands)
    g = zarr.open_group(str(src_dir), mode="r")
    out = zarr.open_group(str(out_dir), mode="r")
    numbers = range(1, 22) if bands == "all" else [int(b[2:]) for b in bands.split(",")]
    assert sorted(out["measurements"].array_keys()) == sorted(
        [f"oa{n:02d}_reflectance" for n in numbers] + ["latitude", "longitude", "time_stamp"])
    assert g["conditions/geometry/sza"].attrs["ac_subsampling_factor"] == ac
    invalid = (g["quality/quality_flags"][:] & flag_bit(g["quality/quality_flags"], "invalid")) > 0
    assert invalid.any(), "the sample must contain invalid pixels for this test to mean much"
    dropouts = flagged_only = 0
    for band in numbers:
        expected = expected_reflectance(g, band)
        raw = out[f"measurements/oa{band:02d}_reflectance"][:]
        fill_in = g[f"measurements/oa{band:02d}_radiance"][:] == 65535
        dropouts += int((fill_in & ~invalid).sum())
        flagged_only += int((invalid & ~fill_in).sum())
        # masked exactly where the input is invalid or has no radiance
        np.testing.assert_array_equal(raw == 65535, invalid | fill_in)
        np.testing.assert_array_equal(raw == 65535, np.isnan(expected))
        good = ~np.isnan(expected)
        # one count of rounding slack (1e-4 in reflectance), nothing more
        assert np.abs(raw[good].astype(np.int64) - np.round(expected[good] / 1e-4)).max() <= 1
        assert 0.005 < np.nanmedian(expected) < 0.8
    # both ways of being masked must occur, or the checks above prove little
    assert dropouts > 0, "fill radiances without the invalid flag must exist in the sample"
    assert flagged_only > 0, "invalid pixels with a radiance must exist in the sample"


def test_output_encoding_and_attributes(
        produced: Callable[..., tuple[Path, Path, xr.DataTree]]) -> None:
    src_dir, out_dir, written = produced()
    assert (out_dir / ".zmetadata").is_file()

    zarray = json.loads((out_dir / "measurements/oa04_reflectance/.zarray").read_text())
    assert zarray["dtype"] == "<u2"
    assert zarray["fill_value"] == 65535
    assert zarray["chunks"] == [ROWS // 2, COLUMNS // 2]
    assert zarray["compressor"]["cname"] == "zstd"
    zattrs = json.loads((out_dir / "measurements/oa04_reflectance/.zattrs").read_text())
    assert zattrs["scale_factor"] == 1e-4
    assert zattrs["add_offset"] == 0.0
    assert zattrs["_eopf_attrs"]["fill_value"] == 65535
    assert set(zattrs["_eopf_attrs"]["coordinates"]) >= {"latitude", "longitude"}
    assert zattrs["_ARRAY_DIMENSIONS"] == ["rows", "columns"]

    g = zarr.open_group(str(src_dir), mode="r")
    out = zarr.open_group(str(out_dir), mode="r")
    for coord in ("latitude", "longitude"):
        assert out[f"measurements/{coord}"].dtype == np.int32
        assert out[f"measurements/{coord}"].attrs["scale_factor"] == 1e-6
        np.testing.assert_array_equal(out[f"measurements/{coord}"][:],
                                      g[f"measurements/{coord}"][:])
    np.testing.assert_array_equal(out["quality/quality_flags"][:],
                                  g["quality/quality_flags"][:])
    assert out["quality/quality_flags"].attrs["flag_meanings"] == \
        g["quality/quality_flags"].attrs["flag_meanings"]

    attrs = json.loads((out_dir / ".zattrs").read_text())
    src_stac = g.attrs["stac_discovery"]
    stac = attrs["stac_discovery"]
    assert stac["id"] == "S03OLCRFL_TEST"
    assert stac["geometry"] == FOOTPRINT == src_stac["geometry"]
    assert stac["bbox"] == [10.0, 44.0, 18.0, 52.0]
    props = stac["properties"]
    assert props["product:type"] == "S03OLCRFL"
    assert props["processing:level"] == "L1-TOA-reflectance"
    assert props["processing:version"] == "1.0.0"
    for key in ("datetime", "start_datetime", "end_datetime", "platform",
                "sat:relative_orbit", "sat:orbit_state", "product:timeliness_category"):
        assert props[key] == src_stac["properties"][key]
    assert [b["name"] for b in props["bands"]][:3] == ["oa01", "oa02", "oa03"]
    assert props["bands"][3]["eo:center_wavelength"] == 0.49
    other = attrs["other_metadata"]
    assert other["eopf_category"] == "eoproduct"
    assert "pi * L" in other["formula"]
    assert other["masked_flags"] == ["invalid"]
    assert attrs["processing_history"] == {"Level-1 TOA reflectance": [{"processor": "s3"}]}

    processor = S3OlciProcessor()
    assert processor.main_variables(written) == {
        f"oa{b}_reflectance": f"measurements/oa{b}_reflectance" for b in ("04", "06", "08", "17")}
    quicklook = processor.quicklook(written)
    assert quicklook is not None
    assert quicklook.dtype == np.uint8
    assert quicklook.shape == (ROWS, COLUMNS, 3)
    red = out["measurements/oa08_reflectance"][:]
    assert (quicklook[..., 0][red == 65535] == 0).all()
    bright = (g["quality/quality_flags"][:] & flag_bit(g["quality/quality_flags"], "bright")) > 0
    assert bright.any()
    assert quicklook[bright & (red != 65535)].mean() > quicklook[~bright & (red != 65535)].mean()


def test_band_selection_and_flags(olci: Callable[..., Staged]) -> None:
    _, source = olci()
    tree = S3OlciProcessor().run([source], bands="oa17, oa04", mask_flags="invalid,bright")
    assert sorted(tree["measurements"].data_vars) == ["oa04_reflectance", "oa17_reflectance"]
    rho = tree["measurements/oa17_reflectance"].values
    flags = tree["quality/quality_flags"].values
    bright_or_invalid = (flags & ((1 << 27) | (1 << 25))) > 0
    assert bright_or_invalid.any()
    assert np.isnan(rho[bright_or_invalid]).all()
    with pytest.raises(ProductError, match="oa99"):
        S3OlciProcessor().run([source], bands="oa99")
    with pytest.raises(ProductError, match="no_such_flag"):
        S3OlciProcessor().run([source], bands="all", mask_flags="no_such_flag")


def test_run_is_lazy(olci: Callable[..., Staged]) -> None:
    """run() may load the tie-point grid and solar flux table, never image-sized blocks."""
    _, source = olci()
    shapes: list[tuple[int, ...]] = []

    def record(value: object) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                record(item)
        else:
            shapes.append(np.shape(value))

    def recording_get(dsk: dict, keys: object, **kwargs: object) -> object:
        result = dask.get(dsk, keys, **kwargs)
        record(result)
        return result

    with dask.config.set(scheduler=recording_get):
        tree = S3OlciProcessor().run([source], bands="all", mask_flags="invalid")
    assert shapes, "the tie-point grid is expected to be loaded"
    assert all(s[-2:] != (ROWS // 2, COLUMNS // 2) and s[-2:] != (ROWS, COLUMNS)
               for s in shapes), shapes
    assert tree["measurements/oa01_reflectance"].chunks == ((20, 20), (35, 35))


def test_non_olci_input_is_rejected(tmp_path: Path, olci: Callable[..., Staged]) -> None:
    b04 = xr.DataArray(np.full((4, 4), 1000, dtype=np.uint16), dims=("y", "x"))
    other = xr.DataTree.from_dict({
        "/": xr.Dataset(attrs={"stac_discovery": {"properties": {"product:type": "S02MSIL1C"}},
                               "other_metadata": {}}),
        "measurements/reflectance/r10m": xr.Dataset({"b04": b04}),
    })
    _, source = staged(tmp_path, other, name="s2")
    with pytest.raises(ProductError, match=r"'S02MSIL1C', expected OLCI L1"):
        S3OlciProcessor().run([source])
    _, efr = olci()
    with pytest.raises(ProductError, match="one OLCI L1 product, got 2"):
        S3OlciProcessor().run([efr, efr])


def test_sample_layout_and_determinism() -> None:
    tree = builders()["S03OLCEFR"](spec())
    assert tree.attrs["stac_discovery"]["properties"]["product:type"] == "S03OLCEFR"
    assert tree.attrs["other_metadata"]["eopf_category"] == "eoproduct"
    rad = tree["measurements/oa01_radiance"]
    assert rad.encoding["dtype"] == "uint16" and rad.encoding["_FillValue"] == 65535
    assert rad.chunks == ((20, 20), (35, 35))
    # tie columns 0, 64, 128: the last one at or past column 69
    assert tree["conditions/geometry/sza"].shape == (ROWS, 3)
    assert tree["conditions/instrument/solar_flux"].shape == (21, COLUMNS)
    again = make_s3_olci_efr(spec())
    np.testing.assert_array_equal(rad.values, again["measurements/oa01_radiance"].values)
    other_seed = make_s3_olci_efr(SampleSpec(**{**spec().__dict__, "seed": 8}))
    assert not np.array_equal(np.nan_to_num(rad.values),
                              np.nan_to_num(other_seed["measurements/oa01_radiance"].values))

    large = make_s3_olci_efr(SampleSpec(**{**spec().__dict__, "extra": {}, "size": 3000}))
    big = large["measurements/oa21_radiance"]
    assert big.shape == (3000, 3000)
    assert big.chunks == ((1024, 1024, 952), (1024, 1024, 952))
    assert big.encoding["chunks"] == (1024, 1024)
    assert large["conditions/geometry/sza"].shape == (3000, 48)
