"""The eopf-cpm processor: a real EOPF CPM 2.8.1 run (``eopf trigger local``) in its venv.

The venv is really built (once, cached under ``~/.cache/rspy-batch``; the first build takes
several minutes, hence the raised timeout). The input is a tiny synthetic S2 L1C product
written and zipped as a station delivers it; expected NDVI values are computed here from the
raw uint16 arrays with numpy, not with the unit's code.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
import numpy as np
import pytest
import yaml
import zarr

from rspy_batch.errors import ConfigError
from rspy_batch.processing import eopf_env
from rspy_batch.processing.base import OutputTarget, ProductInput
from rspy_batch.processing.eopf_env import ensure_eopf_env, run_python
from rspy_batch.processing.processors.eopf_cpm import (
    EopfCpmProcessor,
    cpm_environment,
    failure_summary,
)
from rspy_batch.processing.product import ProductError, write_product, zip_product
from rspy_batch.processing.samples import SampleSpec
from rspy_batch.processing.samples.s2 import make_s2_l1c

pytestmark = pytest.mark.timeout(1200)

SPEC = SampleSpec(
    name="S2B_MSIL1C_20250113T103309_N0511_R108_T32TLQ_20250113T122458",
    start=datetime(2025, 1, 13, 10, 33, 9, tzinfo=UTC),
    stop=datetime(2025, 1, 13, 10, 33, 14, tzinfo=UTC),
    platform="sentinel-2b", size=60, seed=3, absolute_orbit=40977, relative_orbit=108,
    extra={"tile": "T32TLQ"},
)
PRODUCT_ID = "S02MSINDV_20250113T103309_0005_B108_T4C1"
SECRET = "cpm-test-secret-value-7f3a9c"


def target(url: str, **extra: object) -> OutputTarget:
    return OutputTarget(
        url=url, product_id=PRODUCT_ID,
        properties={"processing:software": {"eopf-cpm": "2.8.1"}, "rspy:run": "test"},
        processing_history={"L1C": [{"processor": "eopf-cpm", "version": "2.8.1"}]},
        **extra)


def numpy_ndvi(raw: zarr.Group) -> np.ndarray:
    """NDVI from raw DN: rho = DN*1e-4 - 0.1 (DN 0 = no data), defined where both rho > 0."""
    def rho(band: str) -> np.ndarray:
        dn = raw[f"measurements/reflectance/r10m/{band}"][:]
        return np.where(dn == 0, np.nan, dn.astype(np.float64) * 1e-4 - 0.1)

    red, nir = rho("b04"), rho("b08")
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where((red > 0) & (nir > 0), (nir - red) / (nir + red), np.nan)
    return value.astype(np.float32)


@pytest.fixture(scope="session")
def eopf_venv() -> Path:
    return ensure_eopf_env()


@pytest.fixture(scope="module")
def l1c(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("cpm-in")
    directory = work / f"{SPEC.name}.zarr"
    write_product(make_s2_l1c(SPEC), str(directory))
    zipped = zip_product(directory, work / f"{SPEC.name}.zarr.zip")
    return {"dir": directory, "input": ProductInput(item={"id": SPEC.name},
                                                    files={"product": zipped}),
            "raw": zarr.open_group(str(directory), mode="r")}


@pytest.fixture(scope="module")
def produced(eopf_venv: Path, l1c: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("cpm-out") / f"{PRODUCT_ID}.zarr"
    processor = EopfCpmProcessor()
    tree = processor.produce([l1c["input"]], target(str(out)))
    return {"out": out, "tree": tree, "processor": processor,
            "res": zarr.open_group(str(out), mode="r")}


def test_venv_has_the_pinned_stack(eopf_venv: Path) -> None:
    facts = json.loads(run_python(
        "import json, eopf, zarr, xarray, xarray_eopf, pystac_client\n"
        "print(json.dumps({'eopf': eopf.__version__, 'zarr': zarr.__version__,"
        " 'xarray': xarray.__version__,"
        " 'engines': sorted(xarray.backends.list_engines())}))", venv=eopf_venv))
    assert facts["eopf"] == "2.8.1"
    assert facts["zarr"].startswith("2.")
    assert {"eopf-zarr", "zarr", "cfgrib"} <= set(facts["engines"])
    assert ensure_eopf_env() == eopf_venv  # cached: same venv, no rebuild


def test_venv_survives_eccodes_before_pyproj(eopf_venv: Path) -> None:
    # without the load-order hook this order aborts ("double free") or segfaults
    out = run_python("import eccodes, pyproj, rasterio\n"
                     "print(pyproj.CRS('EPSG:32632').to_epsg(),"
                     " rasterio.crs.CRS.from_epsg(4326).to_epsg())", venv=eopf_venv)
    assert out.split() == ["32632", "4326"]


def test_env_is_built_once_under_a_lock(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[Path] = []

    def fake_build(venv: Path, requirements: Path) -> None:
        builds.append(venv)
        time.sleep(0.3)  # long enough for the other caller to reach the lock
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        (venv / "bin" / "python").write_text("")

    monkeypatch.setattr(eopf_env, "_build", fake_build)
    venv = tmp_path / "venv"
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: eopf_env.ensure_eopf_env(venv), range(2)))
    assert got == [venv, venv] and builds == [venv]
    (venv / eopf_env.STAMP_NAME).unlink()  # as if the build had been killed
    eopf_env.ensure_eopf_env(venv)
    assert len(builds) == 2
    (venv / eopf_env.STAMP_NAME).write_text("built-from-other-pins\n")
    eopf_env.ensure_eopf_env(venv)
    assert len(builds) == 3


def test_env_location_and_build_errors(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSPY_EOPF_VENV", str(tmp_path / "mine"))
    assert eopf_env.default_location() == tmp_path / "mine"
    monkeypatch.delenv("RSPY_EOPF_VENV")
    assert eopf_env.default_location().name.startswith("eopf-")
    with pytest.raises(ConfigError, match=r"(?s)pip install failed \(rc 3\).*no matching dist"):
        eopf_env._run([sys.executable, "-c",
                       "import sys; print('ERROR: no matching distribution'); sys.exit(3)"],
                      "pip install")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not a virtual environment"):
        eopf_env._build(tmp_path / "notes", eopf_env.requirements_file())
    assert (tmp_path / "notes" / "keep.txt").exists()
    monkeypatch.setenv("RSPY_EOPF_REQUIREMENTS", str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="requirements not found"):
        eopf_env.ensure_eopf_env(tmp_path / "x")


def test_ndvi_matches_numpy(produced: dict, l1c: dict) -> None:
    expected = numpy_ndvi(l1c["raw"])
    got = produced["res"]["measurements/ndvi"][:]
    assert got.dtype == np.float32 and got.shape == (60, 60)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0, equal_nan=True)
    # the sample has a no-data corner and mostly valid land: both cases are exercised
    assert np.isnan(expected).any() and np.isfinite(expected).mean() > 0.5
    lazily = produced["tree"]["measurements/ndvi"].values
    np.testing.assert_array_equal(lazily, got)


def test_storage_follows_cpm_conventions(produced: dict, l1c: dict) -> None:
    out: Path = produced["out"]
    zarray = json.loads((out / "measurements/ndvi/.zarray").read_text())
    assert zarray["zarr_format"] == 2 and zarray["dtype"] == "<f4"
    assert zarray["compressor"] == {"id": "blosc", "cname": "zstd", "clevel": 3,
                                    "shuffle": 2, "blocksize": 0}
    in_chunks = l1c["raw"]["measurements/reflectance/r10m/b04"].chunks
    assert tuple(zarray["chunks"]) == tuple(in_chunks)
    zattrs = json.loads((out / "measurements/ndvi/.zattrs").read_text())
    assert zattrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    x = produced["res"]["measurements/x"][:]
    np.testing.assert_array_equal(x, l1c["raw"]["measurements/reflectance/r10m/x"][:])


def test_root_attributes_are_stamped_and_consolidated(produced: dict, l1c: dict) -> None:
    out: Path = produced["out"]
    source = l1c["raw"].attrs.asdict()
    for attrs in (json.loads((out / ".zattrs").read_text()),
                  json.loads((out / ".zmetadata").read_text())["metadata"][".zattrs"],
                  produced["tree"].attrs):
        stac = attrs["stac_discovery"]
        assert stac["id"] == PRODUCT_ID
        props = stac["properties"]
        assert props["rspy:run"] == "test"
        assert props["processing:software"] == {"eopf-cpm": "2.8.1"}
        assert props["product:type"] == "S02MSINDV"
        assert props["start_datetime"] == source["stac_discovery"]["properties"][
            "start_datetime"]
        assert stac["geometry"] == source["stac_discovery"]["geometry"]
        assert [b["name"] for b in props["bands"]] == ["b04", "b08"]
        assert attrs["processing_history"]["L1C"][0]["processor"] == "eopf-cpm"
        assert attrs["other_metadata"]["horizontal_CRS_code"] == \
            source["other_metadata"]["horizontal_CRS_code"]
        assert attrs["other_metadata"]["ndvi"]["nir"] == "b08"


def test_main_variables_and_quicklook(produced: dict, l1c: dict) -> None:
    processor: EopfCpmProcessor = produced["processor"]
    assert processor.main_variables(produced["tree"]) == {"ndvi": "measurements/ndvi"}
    image = processor.quicklook(produced["tree"])
    expected = numpy_ndvi(l1c["raw"]).astype(np.float64)
    grey = np.where(np.isnan(expected), 0, np.rint((np.clip(expected, -1, 1) + 1) * 127.5))
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, grey.astype(np.uint8))


def test_unit_parameters_reach_the_unit(eopf_venv: Path, l1c: dict, tmp_path: Path) -> None:
    out = tmp_path / "swapped.zarr"
    EopfCpmProcessor().produce(
        [l1c["input"]], target(str(out)),
        unit_parameters=json.dumps({"red": "b08", "nir": "b04",
                                    "properties": {"rspy:variant": "swapped"}}))
    got = zarr.open_group(str(out), mode="r")["measurements/ndvi"][:]
    np.testing.assert_allclose(got, -numpy_ndvi(l1c["raw"]), rtol=1e-6, equal_nan=True)
    attrs = json.loads((out / ".zattrs").read_text())
    assert attrs["stac_discovery"]["properties"]["rspy:variant"] == "swapped"


def test_bad_parameter_fails_readably(eopf_venv: Path, l1c: dict, tmp_path: Path) -> None:
    out = tmp_path / "bad.zarr"
    with pytest.raises(ProductError) as info:
        EopfCpmProcessor().produce([l1c["input"]], target(str(out)),
                                   unit_parameters={"bogus": 1})
    message = str(info.value)
    assert "exit code 1" in message
    assert "NdviUnit: unknown parameter(s) ['bogus']" in message
    assert "Traceback" not in message and len(message.splitlines()) <= 10
    log_file = Path(message.split("log kept at ", 1)[1].split(":\n", 1)[0])
    assert "NdviUnit: unknown parameter" in log_file.read_text()
    assert not out.exists()
    # only the payload and the log are kept, not the data
    assert sorted(p.name for p in log_file.parent.iterdir()) == ["cpm.log", "payload.yaml"]
    shutil.rmtree(log_file.parent)


FAILING_UNIT = '''
import os

from eopf.computing import EOProcessingUnit


class LeakyUnit(EOProcessingUnit):
    def run(self, inputs, adfs=None, mode=None, **kwargs):
        seen = os.environ.get("AWS_SECRET_ACCESS_KEY")
        print("unit environment secret:", seen, flush=True)
        raise RuntimeError(f"unit failed on purpose (secret seen: {seen})")
'''


def test_failing_unit_never_shows_secrets(eopf_venv: Path, l1c: dict, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "leaky_unit.py").write_text(FAILING_UNIT)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with pytest.raises(ProductError) as info:
        EopfCpmProcessor().produce(
            [l1c["input"]], target(str(tmp_path / "never.zarr")), module="leaky_unit",
            processing_unit="LeakyUnit", pythonpath=[str(units)])
    message = str(info.value)
    assert "RuntimeError: unit failed on purpose (secret seen: None)" in message
    log_file = Path(message.split("log kept at ", 1)[1].split(":\n", 1)[0])
    payload_file = log_file.parent / "payload.yaml"
    payload = yaml.safe_load(payload_file.read_text())
    assert payload["workflow"][0]["module"] == "leaky_unit"
    assert payload["general_configuration"]["triggering__use_datatree"] is True
    cluster = payload["dask_context"]["cluster_config"]
    assert cluster["processes"] is False and cluster["dashboard_address"].startswith("127.")
    for text in (message, payload_file.read_text(), log_file.read_text()):
        assert SECRET not in text
    shutil.rmtree(log_file.parent)


def test_missing_unit_module_fails_readably(eopf_venv: Path, l1c: dict,
                                            tmp_path: Path) -> None:
    with pytest.raises(ProductError, match="No module named 'no_such_units'") as info:
        EopfCpmProcessor().produce([l1c["input"]], target(str(tmp_path / "x.zarr")),
                                   module="no_such_units")
    shutil.rmtree(str(info.value).split("log kept at ", 1)[1].split("/cpm.log", 1)[0])


def test_output_uploaded_to_s3(eopf_venv: Path, l1c: dict, s3_server: str,
                               s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/products/{PRODUCT_ID}.zarr"
    options = {"client_kwargs": {"endpoint_url": s3_server}}
    tree = EopfCpmProcessor().produce([l1c["input"]], target(url, storage_options=options))
    np.testing.assert_allclose(tree["measurements/ndvi"].values, numpy_ndvi(l1c["raw"]),
                               rtol=1e-6, equal_nan=True)
    s3 = boto3.client("s3", endpoint_url=s3_server)
    body = s3.get_object(Bucket=s3_bucket,
                         Key=f"products/{PRODUCT_ID}.zarr/.zmetadata")["Body"].read()
    assert json.loads(body)["metadata"][".zattrs"]["stac_discovery"]["id"] == PRODUCT_ID


def test_cpm_environment_is_a_whitelist() -> None:
    env = cpm_environment({"PATH": "/bin", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "x",
                           "AWS_ACCESS_KEY_ID": "y", "RSPY_TOKEN": "z", "EOPF_LOGGING": "1"},
                          ["/a", "/b"])
    assert env == {"PATH": "/bin", "HOME": "/root", "EOPF_LOGGING": "1",
                   "PYTHONPATH": "/a:/b", "PYTHONNOUSERSITE": "1"}


def test_failure_summary_keeps_errors_not_tracebacks() -> None:
    lines = ["INFO:eopf:start", "Traceback (most recent call last):",
             '  File "x.py", line 1, in <module>', "ERROR:eopf.trigger.local:Error running p",
             "eopf.exceptions.errors.TriggeringConfigurationError: bad io", ""]
    assert failure_summary(lines) == ("ERROR:eopf.trigger.local:Error running p\n"
                                      "eopf.exceptions.errors.TriggeringConfigurationError: "
                                      "bad io")
    assert failure_summary(["a", "", "b"]) == "a\nb"
