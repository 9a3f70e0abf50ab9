"""s1-grd: synthetic S01SIWGRD products and their calibration to sigma0.

Expected values are computed here with plain numpy from the raw Zarr arrays of the input
(``zarr.open_group``): bilinear LUT interpolation as ``np.interp`` along pixels then lines,
noise subtraction, clip, multilook by reshape-mean, dB.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from rspy_batch.errors import ConfigError
from rspy_batch.processing.base import OutputTarget, ProductInput
from rspy_batch.processing.processors.s1_grd import S1GrdProcessor
from rspy_batch.processing.product import ProductError, write_product, zip_product
from rspy_batch.processing.samples import SampleSpec, builders
from rspy_batch.processing.samples.s1 import make_s1_grd

LEGACY = "S1A_IW_GRDH_1SDV_20250912T053648_20250912T053713_060000_0081FD_5AA4"
CHILD = re.compile(r"^S01SIWGRD_20250912T053648_0025_A023_5AA4_0081FD_(VV|VH)$")
FOOTPRINT = {"type": "Polygon", "coordinates": [[[10.0, 45.0], [13.2, 45.4], [12.8, 43.9],
                                                 [9.7, 43.5], [10.0, 45.0]]]}


def spec(lines: int = 64, samples: int = 96, seed: int = 7, **extra: object) -> SampleSpec:
    return SampleSpec(
        name=LEGACY, start=datetime(2025, 9, 12, 5, 36, 48, tzinfo=UTC),
        stop=datetime(2025, 9, 12, 5, 37, 13, tzinfo=UTC), platform="sentinel-1a",
        size=max(lines, samples), seed=seed, absolute_orbit=60000, relative_orbit=23,
        footprint=FOOTPRINT, extra={"lines": lines, "samples": samples, **extra})


def write_input(tree: xr.DataTree, root: Path, name: str) -> tuple[Path, ProductInput]:
    directory = root / f"{name}.zarr"
    write_product(tree, str(directory))
    archive = zip_product(directory, root / f"{name}.zarr.zip")
    return directory, ProductInput(item={"id": name}, files={"product": archive})


def target(path: Path) -> OutputTarget:
    return OutputTarget(url=str(path), product_id="S01SIWSG0_TEST",
                        properties={"processing:level": "L1-sigma0"}, processing_history={})


def children(group: zarr.Group) -> dict[str, str]:
    """Polarisation -> child group name of a raw input product."""
    return {CHILD.match(name).group(1): name for name in group.group_keys()}


# -- the numpy reference ------------------------------------------------------------------


def interp2(lut: np.ndarray, line_nodes: np.ndarray, pixel_nodes: np.ndarray,
            lines: int, samples: int) -> np.ndarray:
    along_pixels = np.stack([np.interp(np.arange(samples), pixel_nodes, row) for row in lut])
    return np.stack([np.interp(np.arange(lines), line_nodes, col) for col in along_pixels.T],
                    axis=1)


def expected_sigma0(child: zarr.Group, k: int) -> np.ndarray:
    dn = child["measurements/grd"][:].astype(np.float64)
    lines, samples = dn.shape
    cal, noise = child["quality/calibration"], child["quality/noise_range"]
    az = child["quality/noise_azimuth"]
    gain = interp2(cal["sigma_nought"][:].astype(np.float64), cal["line"][:], cal["pixel"][:],
                   lines, samples)
    n = interp2(noise["noise_range_lut"][:].astype(np.float64), noise["line"][:],
                noise["pixel"][:], lines, samples)
    n *= np.interp(np.arange(lines), az["line"][:], az["noise_azimuth_lut"][:])[:, None]
    sigma0 = np.clip(dn ** 2 - n, 0, None) / gain ** 2
    sigma0[dn == 0] = np.nan
    lo, so = lines // k * k, samples // k * k
    return sigma0[:lo, :so].reshape(lo // k, k, so // k, k).mean(axis=(1, 3))


def to_db(sigma0: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.maximum(sigma0, 1e-10))


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grd_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ProductInput]:
    root = tmp_path_factory.mktemp("s1-in")
    return write_input(make_s1_grd(spec(chunks=(32, 48))), root, LEGACY)


@pytest.fixture(scope="module")
def produced(grd_input: tuple[Path, ProductInput], tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[xr.DataTree, Path]:
    out = tmp_path_factory.mktemp("s1-out") / "out.zarr"
    tree = S1GrdProcessor().produce([grd_input[1]], target(out), multilook=4, block=32)
    return tree, out


# -- the sample ---------------------------------------------------------------------------


def test_sample_is_a_faithful_eocontainer(grd_input: tuple[Path, ProductInput]) -> None:
    assert builders()["S01SIWGRD"] is make_s1_grd
    raw = zarr.open_group(str(grd_input[0]), mode="r")
    assert (grd_input[0] / ".zmetadata").is_file()
    stac = raw.attrs["stac_discovery"]
    assert raw.attrs["other_metadata"]["eopf_category"] == "eocontainer"
    props = stac["properties"]
    assert props["product:type"] == "S01SIWGRD"
    assert props["sar:polarizations"] == ["VV", "VH"]
    assert props["sar:instrument_mode"] == "IW" and props["platform"] == "sentinel-1a"
    assert props["start_datetime"] == "2025-09-12T05:36:48.000000Z"
    assert props["sat:relative_orbit"] == 23 and props["product:timeliness_category"]
    assert stac["geometry"] == FOOTPRINT and stac["bbox"] == [9.7, 43.5, 13.2, 45.4]

    pols = children(raw)
    assert set(pols) == {"VV", "VH"}
    for pol, name in pols.items():
        child = raw[name]
        assert child.attrs["stac_discovery"]["properties"]["sar:polarizations"] == [pol]
        info = child.attrs["other_metadata"]["image_annotation"]["image_information"]
        assert info["product_first_line_utc_time"] == "2025-09-12T05:36:48.000000"
        assert info["azimuth_time_interval"] == pytest.approx(25.0 / 63)
        assert info["range_pixel_spacing"] > 0 and info["azimuth_pixel_spacing"] > 0
        grd = child["measurements/grd"]
        assert grd.dtype == np.uint16 and grd.shape == (64, 96) and grd.chunks == (32, 48)
        assert grd.attrs["_ARRAY_DIMENSIONS"] == ["azimuth_time", "ground_range"]
        dn = grd[:]
        assert (dn[0] == 0).all() and (dn[-1] == 0).all()      # no-data lines
        assert (dn[:, 0] == 0).all() and (dn[:, -1] == 0).all()  # no-data columns
        inner = dn[1:-1, 8:-8]
        assert (inner > 0).all() and 30 < np.median(inner) < 2000
        lefts = {int(np.argmax(row > 0)) for row in dn[1:-1]}
        assert len(lefts) > 1                                   # the border is ragged

        cal = child["quality/calibration"]
        for var in ("sigma_nought", "beta_nought", "gamma", "dn"):
            assert cal[var].dtype == np.float32
            assert cal[var].attrs["_ARRAY_DIMENSIONS"] == ["azimuth_time", "ground_range"]
        assert cal["line"].dtype == np.uint32 and cal["pixel"].dtype == np.uint32
        assert cal["line"][0] == 0 and cal["line"][-1] == 63
        assert cal["pixel"][0] == 0 and cal["pixel"][-1] == 95
        beta = cal["beta_nought"][:]
        assert np.all(beta == beta.flat[0])
        incidence = np.radians(child["conditions/gcp/incidence_angle"][:])
        assert incidence.min() > np.radians(29) and incidence.max() < np.radians(47)
        assert np.all(np.diff(cal["sigma_nought"][0]) < 0)   # A_sigma falls with incidence
        noise = child["quality/noise_range"]
        assert noise["line"][-1] == 63 and noise["pixel"][-1] == 95
        assert child["quality/noise_azimuth/noise_azimuth_lut"].ndim == 1
        assert child["conditions/gcp/latitude"].shape == (10, 21)
        position = child["conditions/orbit/position"][:]
        assert position.shape[1] == 3
        assert np.allclose(np.linalg.norm(position, axis=1), 7_071_000.0)


def test_sample_is_seeded() -> None:
    first = make_s1_grd(spec(lines=32, samples=32))
    again = make_s1_grd(spec(lines=32, samples=32))
    other = make_s1_grd(spec(lines=32, samples=32, seed=8))
    name = next(iter(first.children))
    grd = f"{name}/measurements/grd"
    assert first[grd].chunks is not None  # built lazily
    assert np.array_equal(first[grd].values, again[grd].values)
    # the name comes from the legacy name, the pixels from the seed
    assert list(other.children) == list(first.children)
    assert not np.array_equal(first[grd].values, other[grd].values)


# -- the processor ------------------------------------------------------------------------


def check_against_numpy(raw_in: zarr.Group, raw_out: zarr.Group, k: int) -> None:
    for pol, name in children(raw_in).items():
        expected = expected_sigma0(raw_in[name], k)
        group = raw_out[f"measurements/{pol.lower()}"]
        db_raw = group["sigma0_db"][:]
        linear = group["sigma0"][:]
        assert db_raw.shape == expected.shape
        nodata = np.isnan(expected)
        assert nodata.any() and not nodata.all()
        assert np.array_equal(db_raw == -32768, nodata)
        assert np.array_equal(np.isnan(linear), nodata)
        np.testing.assert_allclose(linear[~nodata], expected[~nodata], rtol=2e-5, atol=0)
        np.testing.assert_allclose(db_raw[~nodata] * 0.01, to_db(expected[~nodata]),
                                   rtol=0, atol=0.006)


def test_sigma0_matches_numpy(grd_input: tuple[Path, ProductInput],
                              produced: tuple[xr.DataTree, Path]) -> None:
    raw_in = zarr.open_group(str(grd_input[0]), mode="r")
    raw_out = zarr.open_group(str(produced[1]), mode="r")
    check_against_numpy(raw_in, raw_out, 4)


def test_uneven_size_is_trimmed_and_matches(tmp_path: Path) -> None:
    sample = make_s1_grd(spec(lines=66, samples=90, seed=3, polarizations=["VV"]))
    directory, source = write_input(sample, tmp_path, "uneven")
    out = tmp_path / "out.zarr"
    tree = S1GrdProcessor().produce([source], target(out), multilook=4, block=16)
    assert tree["measurements/vv/sigma0_db"].shape == (16, 22)
    raw_out = zarr.open_group(str(out), mode="r")
    assert raw_out["measurements/vv/sigma0_db"].chunks == (4, 4)
    check_against_numpy(zarr.open_group(str(directory), mode="r"), raw_out, 4)


def test_full_resolution_zero_dn_is_fill_and_noise_is_clipped(
        grd_input: tuple[Path, ProductInput], tmp_path: Path) -> None:
    out = tmp_path / "ml1.zarr"
    S1GrdProcessor().produce([grd_input[1]], target(out), multilook="1")  # CLI-style string
    raw_in = zarr.open_group(str(grd_input[0]), mode="r")
    raw_out = zarr.open_group(str(out), mode="r")
    check_against_numpy(raw_in, raw_out, 1)
    for pol, name in children(raw_in).items():
        dn = raw_in[name]["measurements/grd"][:]
        db_raw = raw_out[f"measurements/{pol.lower()}/sigma0_db"][:]
        assert db_raw.shape == dn.shape
        assert np.array_equal(db_raw == -32768, dn == 0)
    # DN² below the noise: clipped to 0, written at the 1e-10 floor (-100 dB)
    assert (raw_out["measurements/vh/sigma0"][:] == 0).any()
    assert (raw_out["measurements/vh/sigma0_db"][:] == -10000).any()


def test_output_encoding_and_attributes(grd_input: tuple[Path, ProductInput],
                                        produced: tuple[xr.DataTree, Path]) -> None:
    tree, out = produced
    raw = zarr.open_group(str(out), mode="r")
    assert (out / ".zmetadata").is_file()
    db = raw["measurements/vv/sigma0_db"]
    assert db.dtype == np.int16 and db.chunks == (8, 8) and db.shape == (16, 24)
    assert db.metadata.fill_value == -32768
    assert db.attrs["scale_factor"] == 0.01 and db.attrs["add_offset"] == 0.0
    assert db.attrs["units"] == "dB"
    assert db.attrs["_eopf_attrs"]["dtype"] == "<i2"
    assert db.metadata.compressor.cname == "zstd"
    linear = raw["measurements/vv/sigma0"]
    assert linear.dtype == np.float32 and linear.chunks == (8, 8)
    assert np.isnan(linear.metadata.fill_value)
    assert raw["measurements/vv/line"][:3].tolist() == [1.5, 5.5, 9.5]
    assert raw["measurements/vv/pixel"][-1] == 93.5
    first_look = np.datetime64("2025-09-12T05:36:48", "ns") + np.timedelta64(
        round(1.5 * 25e9 / 63), "ns")  # mean time of lines 0..3
    assert abs(tree["measurements/vv"]["azimuth_time"].values[0] - first_look) \
        < np.timedelta64(1, "us")
    assert "latitude" in raw["conditions/gcp"]

    source = zarr.open_group(str(grd_input[0]), mode="r").attrs["stac_discovery"]
    stac = raw.attrs["stac_discovery"]
    assert stac["id"] == "S01SIWSG0_TEST"
    assert stac["geometry"] == source["geometry"] and stac["bbox"] == source["bbox"]
    props = stac["properties"]
    assert props["product:type"] == "S01SIWSG0"
    assert props["sar:polarizations"] == ["VV", "VH"]
    for key in ("datetime", "start_datetime", "end_datetime", "platform",
                "sat:relative_orbit", "sat:absolute_orbit", "sar:instrument_mode"):
        assert props[key] == source["properties"][key]
    raw_in = zarr.open_group(str(grd_input[0]), mode="r")
    source_info = (raw_in[children(raw_in)["VV"]].attrs["other_metadata"]["image_annotation"]
                   ["image_information"])
    assert props["sar:pixel_spacing_range"] == pytest.approx(
        4 * source_info["range_pixel_spacing"])
    per_pol = raw["measurements/vv"].attrs["other_metadata"]
    assert per_pol["polarization"] == "VV"
    assert CHILD.match(per_pol["source_sub_product"])
    info = per_pol["image_annotation"]["image_information"]
    assert (info["number_of_lines"], info["number_of_samples"]) == (16, 24)

    other = raw.attrs["other_metadata"]
    assert other["terrain_correction"] == "none"
    assert "terrain correction / geocoding" in other["corrections_not_applied"]
    assert other["multilook"]["azimuth"] == 4 and other["multilook"]["range"] == 4
    assert other["input_product"] == LEGACY
    assert "noise_range_lut" in other["thermal_noise_removal"]
    assert "noise_azimuth_lut" in other["thermal_noise_removal"]


def test_run_is_lazy(grd_input: tuple[Path, ProductInput]) -> None:
    tree = S1GrdProcessor().run([grd_input[1]], multilook=2, block=16)
    for pol in ("vv", "vh"):
        for var in ("sigma0_db", "sigma0"):
            assert tree[f"measurements/{pol}/{var}"].chunks is not None
        assert tree[f"measurements/{pol}/sigma0_db"].encoding["chunks"] == (8, 8)


def test_main_variables_and_quicklook(produced: tuple[xr.DataTree, Path]) -> None:
    tree, out = produced
    processor = S1GrdProcessor()
    assert processor.main_variables(tree) == {"sigma0_db_vh": "measurements/vh/sigma0_db",
                                              "sigma0_db_vv": "measurements/vv/sigma0_db"}
    image = processor.quicklook(tree)
    assert image is not None and image.dtype == np.uint8 and image.shape == (16, 24)
    nodata = zarr.open_group(str(out), mode="r")["measurements/vv/sigma0_db"][:] == -32768
    assert np.array_equal(image == 0, nodata)
    assert image[~nodata].min() >= 1 and image[~nodata].max() == 255


# -- rejections ---------------------------------------------------------------------------


def test_non_grd_input_is_rejected(tmp_path: Path) -> None:
    s2_like = xr.DataTree.from_dict({
        "/": xr.Dataset(attrs={"stac_discovery": {"properties": {"product:type": "S02MSIL1C"}},
                               "other_metadata": {}}),
        "measurements/reflectance/r60m": xr.Dataset(
            {"b01": (("y", "x"), np.ones((4, 4), dtype=np.uint16))}),
    })
    _, source = write_input(s2_like, tmp_path, "s2")
    with pytest.raises(ProductError, match=r"'S02MSIL1C', expected S1 GRD"):
        S1GrdProcessor().run([source])


def test_grd_without_polarisation_groups_is_rejected(tmp_path: Path) -> None:
    empty = xr.DataTree.from_dict({
        "/": xr.Dataset(attrs={"stac_discovery": {"properties": {"product:type": "S01SIWGRD"}},
                               "other_metadata": {}}),
        "something/measurements": xr.Dataset(
            {"grd": (("azimuth_time", "ground_range"), np.ones((4, 4), dtype=np.uint16))}),
    })
    _, source = write_input(empty, tmp_path, "nopol")
    with pytest.raises(ProductError, match="no polarisation sub-product"):
        S1GrdProcessor().run([source])


def test_lut_without_node_coordinates_is_rejected(tmp_path: Path) -> None:
    tree = make_s1_grd(spec(lines=32, samples=32, polarizations=["VH"]))
    for name in list(tree.children):
        group = f"{name}/quality/calibration"
        tree[group] = xr.DataTree(tree[group].to_dataset().drop_vars("line"))
    _, source = write_input(tree, tmp_path, "noline")
    with pytest.raises(ProductError, match="quality/calibration lacks the line"):
        S1GrdProcessor().run([source])


def test_bad_arguments_are_rejected(grd_input: tuple[Path, ProductInput]) -> None:
    processor = S1GrdProcessor()
    with pytest.raises(ProductError, match="takes one S1 GRD product, got 2"):
        processor.run([grd_input[1], grd_input[1]])
    with pytest.raises(ConfigError, match="multilook must be >= 1"):
        processor.run([grd_input[1]], multilook=0)
    with pytest.raises(ConfigError, match="unknown parameter"):
        processor.run([grd_input[1]], multilok=4)
