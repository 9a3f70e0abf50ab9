"""The EOPF product model: encoding on disk, one consolidation, Zarr 3 with sharding,
zipped products, S3, and CPM names."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from rspy_batch.processing.naming import product_name
from rspy_batch.processing.product import (
    ProductError,
    local_copy,
    open_product,
    scaled,
    write_product,
    zip_product,
)


def reflectance_tree(n: int = 12, chunk: int = 6) -> tuple[xr.DataTree, np.ndarray]:
    rng = np.random.default_rng(3)
    dn = rng.integers(1, 12000, size=(n, n)).astype("u2")
    dn[0, 0] = 0  # no data
    physical = np.where(dn == 0, np.nan, dn * 1e-4 - 0.1)
    coords = {"y": np.arange(n, dtype="i8")[::-1] * 10 + 5, "x": np.arange(n, dtype="i8") * 10 + 5}
    band = xr.DataArray(physical, dims=("y", "x"), coords=coords).chunk({"y": chunk, "x": chunk})
    ds = xr.Dataset({"b04": scaled(band, scale_factor=1e-4, add_offset=-0.1, fill_value=0,
                                   units="digital_counts", short_name="b04")})
    tree = xr.DataTree.from_dict({"/measurements/reflectance/r10m": ds})
    tree.attrs = {"stac_discovery": {"id": "x", "properties": {"proj:code": "EPSG:32632"}},
                  "other_metadata": {"horizontal_CRS_code": "EPSG:32632"}}
    return tree, dn


def test_v2_layout_matches_eopf(tmp_path: Path) -> None:
    tree, dn = reflectance_tree()
    write_product(tree, str(tmp_path / "p.zarr"))
    root = tmp_path / "p.zarr"
    zarray = json.loads((root / "measurements/reflectance/r10m/b04/.zarray").read_text())
    assert zarray["dtype"] == "<u2" and zarray["fill_value"] == 0
    assert zarray["chunks"] == [6, 6] and zarray["dimension_separator"] == "."
    assert zarray["compressor"] == {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2,
                                    "blocksize": 0}
    zattrs = json.loads((root / "measurements/reflectance/r10m/b04/.zattrs").read_text())
    assert zattrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    assert zattrs["scale_factor"] == 1e-4 and zattrs["add_offset"] == -0.1
    assert zattrs["_eopf_attrs"]["dtype"] == "<u2"
    assert zattrs["_eopf_attrs"]["dimensions"] == ["y", "x"]
    meta = json.loads((root / ".zmetadata").read_text())
    assert meta["zarr_consolidated_format"] == 1
    assert "measurements/reflectance/r10m/b04/.zarray" in meta["metadata"]
    assert meta["metadata"][".zattrs"]["other_metadata"]["horizontal_CRS_code"] == "EPSG:32632"
    raw = zarr.open_array(str(root / "measurements/reflectance/r10m/b04"), mode="r")[:]
    np.testing.assert_array_equal(raw, dn)  # the integers survive the float round trip
    back = open_product(root)
    decoded = back["measurements/reflectance/r10m/b04"]
    assert decoded.chunks == ((6, 6), (6, 6))
    np.testing.assert_allclose(decoded.values[1:], dn[1:] * 1e-4 - 0.1, atol=1e-9)
    assert np.isnan(decoded.values[0, 0])


def test_misaligned_dask_chunks_are_refused(tmp_path: Path) -> None:
    tree, _ = reflectance_tree()
    band = tree["measurements/reflectance/r10m/b04"]
    band.encoding["chunks"] = (4, 4)  # dask blocks are 6: a block would straddle chunks
    tree["measurements/reflectance/r10m/b04"] = band
    with pytest.raises(ProductError, match="not multiples of the storage chunk"):
        write_product(tree, str(tmp_path / "p.zarr"))


def test_zarr3_with_sharding(tmp_path: Path) -> None:
    tree, dn = reflectance_tree(n=12, chunk=3)
    write_product(tree, str(tmp_path / "p3.zarr"), zarr_format=3, shards={"y": 6, "x": 6})
    meta = json.loads((tmp_path / "p3.zarr/measurements/reflectance/r10m/b04/zarr.json")
                      .read_text())
    assert meta["zarr_format"] == 3 and meta["dimension_names"] == ["y", "x"]
    codec = meta["codecs"][0]
    assert codec["name"] == "sharding_indexed"
    assert codec["configuration"]["chunk_shape"] == [3, 3]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [6, 6]
    shards = list((tmp_path / "p3.zarr/measurements/reflectance/r10m/b04/c").rglob("*"))
    assert len([s for s in shards if s.is_file()]) == 4  # 2×2 shards of 2×2 chunks
    got = zarr.open_array(str(tmp_path / "p3.zarr/measurements/reflectance/r10m/b04"))[:]
    np.testing.assert_array_equal(got, dn)


def test_zipped_product_opens_and_zips_reproducibly(tmp_path: Path) -> None:
    tree, dn = reflectance_tree()
    write_product(tree, str(tmp_path / "p.zarr"))
    a = zip_product(tmp_path / "p.zarr", tmp_path / "a.zip")
    b = zip_product(tmp_path / "p.zarr", tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()
    back = open_product(a)
    np.testing.assert_allclose(back["measurements/reflectance/r10m/b04"].values[1:],
                               dn[1:] * 1e-4 - 0.1, atol=1e-9)
    assert back.attrs["stac_discovery"]["id"] == "x"
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ProductError, match="cannot open EOPF product bad.zip"):
        open_product(tmp_path / "bad.zip")


def test_product_on_s3(tmp_path: Path, s3_bucket: str, s3_server: str) -> None:
    tree, dn = reflectance_tree()
    options = {"client_kwargs": {"endpoint_url": s3_server}}
    url = f"s3://{s3_bucket}/products/p.zarr"
    write_product(tree, url, storage_options=options)
    back = open_product(url, storage_options=options)
    np.testing.assert_allclose(back["measurements/reflectance/r10m/b04"].values[1:],
                               dn[1:] * 1e-4 - 0.1, atol=1e-9)
    with local_copy(url, storage_options=options, scratch=tmp_path) as path:
        assert (path / ".zmetadata").is_file()
        copied = path
    assert not copied.exists()  # the scratch copy is gone afterwards


def test_cpm_names() -> None:
    start = datetime(2026, 1, 5, 10, 15, 30, tzinfo=UTC)
    stop = datetime(2026, 1, 5, 10, 15, 55, tzinfo=UTC)
    name = product_name("S02MSIL2A", start, stop, platform="sentinel-2b", relative_orbit=108,
                        timeliness="NRT", identity=["s2-l1c", "1.0.0", "in-1"])
    assert name.startswith("S02MSIL2A_20260105T101530_0025_B108_T")
    assert len(name.rsplit("_", 1)[1]) == 4
    again = product_name("S02MSIL2A", start, stop, platform="sentinel-2b", relative_orbit=108,
                         timeliness="NRT", identity=["s2-l1c", "1.0.0", "in-1"])
    other = product_name("S02MSIL2A", start, stop, platform="sentinel-2b", relative_orbit=108,
                         timeliness="NRT", identity=["s2-l1c", "1.0.1", "in-1"])
    assert name == again and name != other
    assert product_name("S01RAWL0_", start, stop, platform="", relative_orbit=None,
                        timeliness="NTC", identity=["x"]).rsplit("_", 1)[1][0] == "S"
