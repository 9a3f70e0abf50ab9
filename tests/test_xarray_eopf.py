"""Our products open with xarray-eopf 0.3.1 (``engine="eopf-zarr"``), the EOPF reader.

xarray-eopf needs zarr 2, so it runs in the eopf venv (:mod:`rspy_batch.processing.eopf_env`,
built for real and cached): a snippet there opens the products in ``native`` and
``analysis`` mode and prints what it sees as JSON; the facts are checked here against the
raw arrays we wrote (read with zarr-python 3, decoded by hand).

Products: a tiny synthetic S2 L1C (``S02MSIL1C``, opened as ``MSIL1C``) and what the s2-l1c
processor makes of it (``S02MSIL2A`` layout, opened as ``MSIL2A``). Their CPM-style names
are not auto-detected by xarray-eopf, hence ``product_type=``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import zarr

from rspy_batch.processing.base import OutputTarget, ProductInput
from rspy_batch.processing.eopf_env import ensure_eopf_env, run_python
from rspy_batch.processing.processors.s2_l1c import S2L1CProcessor
from rspy_batch.processing.product import write_product, zip_product
from rspy_batch.processing.samples import SampleSpec
from rspy_batch.processing.samples.s2 import make_s2_l1c

pytestmark = pytest.mark.timeout(1200)

SIZE = 60
SPEC = SampleSpec(
    name="S2B_MSIL1C_20250113T103309_N0511_R108_T32TLQ_20250113T122458",
    start=datetime(2025, 1, 13, 10, 33, 9, tzinfo=UTC),
    stop=datetime(2025, 1, 13, 10, 33, 14, tzinfo=UTC),
    platform="sentinel-2b", size=SIZE, seed=5, absolute_orbit=40977, relative_orbit=108,
    extra={"tile": "T32TLQ"},
)
L2A_ID = "S02MSIL2A_20250113T103309_0005_B108_T123"
L1C_BANDS = {"b01", "b02", "b03", "b04", "b05", "b06", "b07", "b08", "b8a", "b09", "b10",
             "b11", "b12"}
#: what xarray-eopf's MSIL2A analysis mode gathers: reflectance (no b10 in L2A), scl, cld
L2A_ANALYSIS_VARS = (L1C_BANDS - {"b10"}) | {"scl", "cld"}

SNIPPET = r'''
import json, sys
import numpy as np
import pyproj
import xarray as xr

l2a, l1c = sys.argv[1], sys.argv[2]

def arr(v):
    return np.asarray(v.values, dtype=np.float64).tolist()

def analysis(path, product_type, resolution, names):
    ds = xr.open_dataset(path, engine="eopf-zarr", op_mode="analysis", chunks={},
                         product_type=product_type, resolution=resolution)
    crs = pyproj.CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"])
    return {"vars": {k: [list(v.shape), str(v.dtype)] for k, v in ds.data_vars.items()},
            "epsg": crs.to_epsg(), "x": ds["x"].values.tolist(), "y": ds["y"].values.tolist(),
            "grid_mapping": ds[names[0]].attrs.get("grid_mapping")
                            or ds[names[0]].encoding.get("grid_mapping"),
            "values": {k: arr(ds[k]) for k in names}}

# chunks={}: xarray applies ``chunks`` after the backend; {} keeps the storage chunks
tree = xr.open_datatree(l2a, engine="eopf-zarr", op_mode="native", chunks={})
b04 = tree["measurements/reflectance/r10m/b04"]
flat = xr.open_dataset(l2a, engine="eopf-zarr", op_mode="native", chunks={})
facts = {
    "native": {"groups": sorted(tree.groups), "root_id": tree.attrs["stac_discovery"]["id"],
               "b04": arr(b04), "b04_chunks": [list(c) for c in b04.chunks],
               "scl20": arr(tree["conditions/mask/l2a_classification/r20m/scl"])},
    "flat": {k: list(v.shape) for k, v in flat.data_vars.items()},
    "l2a": {"10": analysis(l2a, "MSIL2A", 10, ["b04", "b08", "scl"]),
            "20": analysis(l2a, "MSIL2A", 20, ["b05", "b8a", "scl", "cld"]),
            "60": analysis(l2a, "MSIL2A", 60, ["b09", "scl"])},
    "l1c": {"10": analysis(l1c, "MSIL1C", 10, ["b04", "b08"]),
            "60": analysis(l1c, "MSIL1C", 60, ["b01", "b10"])},
}
print(json.dumps(facts))
'''


def decoded(raw: zarr.Group, path: str) -> np.ndarray:
    dn = raw[path][:]
    return np.where(dn == 0, np.nan, dn.astype(np.float64) * 1e-4 - 0.1)


def centres(origin: int, n: int, res: int, sign: int) -> list[int]:
    return [origin + sign * (res // 2 + res * i) for i in range(n)]


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    venv = ensure_eopf_env()
    work = tmp_path_factory.mktemp("xeopf")
    l1c = work / f"{SPEC.name}.zarr"
    write_product(make_s2_l1c(SPEC), str(l1c))
    zipped = zip_product(l1c, work / f"{SPEC.name}.zarr.zip")
    l2a = work / f"{L2A_ID}.zarr"
    S2L1CProcessor().produce(
        [ProductInput(item={"id": SPEC.name}, files={"product": zipped})],
        OutputTarget(url=str(l2a), product_id=L2A_ID, properties={}, processing_history={}))
    out = run_python(SNIPPET, venv=venv, args=[str(l2a), str(l1c)], cwd=work)
    return {"json": json.loads(out), "l1c": zarr.open_group(str(l1c), mode="r"),
            "l2a": zarr.open_group(str(l2a), mode="r")}


def test_native_tree_matches_what_we_wrote(facts: dict) -> None:
    native, raw = facts["json"]["native"], facts["l2a"]
    for group in ("/measurements/reflectance/r10m", "/measurements/reflectance/r20m",
                  "/measurements/reflectance/r60m", "/measurements/indices/r10m",
                  "/conditions/mask/l2a_classification/r20m", "/quality/probability/r20m"):
        assert group in native["groups"]
    assert native["root_id"] == L2A_ID
    np.testing.assert_array_equal(np.array(native["b04"]),
                                  decoded(raw, "measurements/reflectance/r10m/b04"))
    # native mode opens with the storage chunks as Dask chunks
    chunks = raw["measurements/reflectance/r10m/b04"].chunks
    assert [max(c) for c in native["b04_chunks"]] == list(chunks)
    np.testing.assert_array_equal(np.array(native["scl20"]),
                                  raw["conditions/mask/l2a_classification/r20m/scl"][:])


def test_native_flat_dataset_names_every_variable(facts: dict) -> None:
    flat = facts["json"]["flat"]
    raw = facts["l2a"]
    for res, n in ((10, SIZE), (20, SIZE // 2), (60, SIZE // 6)):
        for band in raw[f"measurements/reflectance/r{res}m"].array_keys():
            if band in ("x", "y"):
                continue
            assert flat[f"measurements_reflectance_r{res}m_{band}"] == [n, n]
    assert flat["quality_cld"] == [SIZE // 2, SIZE // 2]
    assert flat["conditions_mask_r20m_scl"] == [SIZE // 2, SIZE // 2]


def test_l2a_analysis_mode(facts: dict) -> None:
    l2a, raw = facts["json"]["l2a"], facts["l2a"]
    for res, n in ((10, SIZE), (20, SIZE // 2), (60, SIZE // 6)):
        mode = l2a[str(res)]
        assert set(mode["vars"]) == L2A_ANALYSIS_VARS
        assert all(shape == [n, n] for shape, _dtype in mode["vars"].values())
        assert mode["epsg"] == 32632
        assert mode["grid_mapping"] == "spatial_ref"
        x = raw[f"measurements/reflectance/r{res}m/x"][:]
        np.testing.assert_array_equal(mode["x"], x)
        assert mode["x"] == centres(300000, n, res, +1)
        assert mode["y"] == centres(5000040, n, res, -1)
    # at a band's native resolution, analysis mode gives back exactly what we stored
    ten, twenty, sixty = l2a["10"]["values"], l2a["20"]["values"], l2a["60"]["values"]
    for name in ("b04", "b08"):
        np.testing.assert_array_equal(np.array(ten[name]),
                                      decoded(raw, f"measurements/reflectance/r10m/{name}"))
    for name in ("b05", "b8a"):
        np.testing.assert_array_equal(np.array(twenty[name]),
                                      decoded(raw, f"measurements/reflectance/r20m/{name}"))
    np.testing.assert_array_equal(np.array(sixty["b09"]),
                                  decoded(raw, "measurements/reflectance/r60m/b09"))
    scl20 = raw["conditions/mask/l2a_classification/r20m/scl"][:]
    np.testing.assert_array_equal(np.array(twenty["scl"]), scl20)
    cld = raw["quality/probability/r20m/cld"][:]
    np.testing.assert_array_equal(np.array(twenty["cld"]), np.where(cld == 101, np.nan, cld))
    # upsampled to 10 m, classes are the nearest 20 m class (each repeated 2x2). xcube's
    # resampler interpolates between pixel centres, so the outermost 10 m ring (centres
    # outside the 20 m centres' hull) is its fill value: compare inside that ring.
    scl10 = np.repeat(np.repeat(scl20, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(np.array(ten["scl"])[1:-1, 1:-1], scl10[1:-1, 1:-1])
    assert len(np.unique(scl20)) > 2


def test_l1c_sample_analysis_mode(facts: dict) -> None:
    l1c, raw = facts["json"]["l1c"], facts["l1c"]
    for res, n in ((10, SIZE), (60, SIZE // 6)):
        mode = l1c[str(res)]
        assert set(mode["vars"]) == L1C_BANDS
        assert all(shape == [n, n] for shape, _dtype in mode["vars"].values())
        assert mode["epsg"] == 32632
        assert mode["x"] == centres(300000, n, res, +1)
    for name in ("b04", "b08"):
        np.testing.assert_array_equal(np.array(l1c["10"]["values"][name]),
                                      decoded(raw, f"measurements/reflectance/r10m/{name}"))
    for name in ("b01", "b10"):
        np.testing.assert_array_equal(np.array(l1c["60"]["values"][name]),
                                      decoded(raw, f"measurements/reflectance/r60m/{name}"))
