"""``eopf-cpm``: run a real EOPF CPM processing unit with ``eopf trigger local``.

The unit runs in the separate eopf 2.8.1 venv (:mod:`rspy_batch.processing.eopf_env`) the
way RS-PYTHON's DPR service drives processors (``eopf-products.md`` §3.2, §3.4): we write a
triggering payload, run ``<venv>/bin/eopf trigger local payload.yaml`` in a subprocess, keep
its output as a log, and fail on a non-zero exit code. Per product:

1. a scratch directory (``$TMPDIR``) gets the input product extracted (CPM opens ``.zarr``
   directories), a copy of :mod:`rspy_batch.cpm_units` (so the unit is importable in the
   eopf venv whatever way rspy-batch itself is installed) and the payload: DataTree mode,
   one workflow step, ``io`` with a ``filename`` input and a ``filename`` output in
   ``opening_mode: CREATE``, a local Dask cluster (1 worker × 2 threads, no processes, its
   HTTP servers on loopback);
2. CPM writes the output locally (Zarr v2 + ``.zmetadata``); we stamp the runner's root
   attributes into its ``.zattrs`` with zarr-python 3 (``zarr_format=2``) and consolidate
   again;
3. the product is moved to ``target.url`` (local) or uploaded with fsspec
   (``target.storage_options``), ``.zmetadata`` last, so a reader that sees consolidated
   metadata sees a complete product.

Secrets: the payload holds local paths and unit parameters only, and CPM's process gets a
whitelisted environment (no ``AWS_*`` credentials: it reads and writes local files only);
its output goes through :func:`rspy_batch.redact.redact` before reaching the log file, our
logger or an error message.

The default unit is :class:`rspy_batch.cpm_units.ndvi.NdviUnit`: NDVI from S2 L1C TOA
reflectance, product type ``S02MSINDV`` (an EOPF-style name for this toolkit's NDVI product,
not an ESA type), level ``L1C`` (no atmospheric correction: a TOA index of an L1C product).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr
import yaml
import zarr

import rspy_batch.cpm_units
from rspy_batch.processing import eopf_env
from rspy_batch.processing.base import OutputTarget, Processor, ProductInput, stamp_attrs
from rspy_batch.processing.product import ProductError, has_node, open_product
from rspy_batch.redact import redact, register_secret
from rspy_batch.s3 import split_location

log = logging.getLogger(__name__)

CPM_VERSION = "2.8.1"
PAYLOAD_NAME = "payload.yaml"
LOG_NAME = "cpm.log"
QUICKLOOK_SIDE = 512
#: environment variables CPM's process gets (plus ``EOPF_*`` / ``DASK_*`` configuration)
ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
ENV_KEEP_PREFIXES = ("EOPF_", "DASK_")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


# --- pure helpers ----------------------------------------------------------------------------


def payload(*, input_path: Path, output_path: Path, module: str, processing_unit: str,
            unit_parameters: Mapping[str, Any], input_name: str, output_name: str,
            temporary: Path) -> dict[str, Any]:
    """The ``eopf trigger local`` payload for one unit, one input, one output."""
    return {
        "general_configuration": {
            "triggering__use_datatree": True,
            "triggering__use_basic_logging": True,
            "triggering__validate_run": False,
            "triggering__error_policy": "FAIL_FAST",
            "triggering__wait_before_exit": 0,
            "triggering__create_temporary": True,
            "temporary__folder": str(temporary),
        },
        "workflow": [{
            "name": "unit",
            "module": module,
            "processing_unit": processing_unit,
            "inputs": {input_name: "IN"},
            "outputs": {output_name: "OUT"},
            "parameters": dict(unit_parameters),
        }],
        "io": {
            "input_products": [{"id": "IN", "path": str(input_path), "store_type": "zarr",
                                "type": "filename"}],
            "output_products": [{"id": "OUT", "path": str(output_path), "store_type": "zarr",
                                 "type": "filename", "opening_mode": "CREATE"}],
        },
        "dask_context": {
            "cluster_type": "local",
            # dask starts HTTP servers even when told None: keep them on loopback, any port
            "cluster_config": {"n_workers": 1, "threads_per_worker": 2, "processes": False,
                               "dashboard_address": "127.0.0.1:0",
                               "worker_dashboard_address": "127.0.0.1:0"},
        },
    }


def cpm_environment(environ: Mapping[str, str], pythonpath: Sequence[str]) -> dict[str, str]:
    """CPM's environment: a whitelist of ours (no credentials) and our ``PYTHONPATH``."""
    env = {k: v for k, v in environ.items()
           if k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def failure_summary(lines: Sequence[str], limit: int = 8) -> str:
    """The lines that explain a failure: ERROR records and exception lines, else the tail."""
    meaningful = [line.rstrip() for line in lines
                  if line.startswith(("ERROR:", "CRITICAL:", "Fatal Python error"))
                  or _EXCEPTION_LINE.match(line)]
    if not meaningful:
        meaningful = [line.rstrip() for line in lines if line.strip()][-limit:]
    unique = list(dict.fromkeys(meaningful))
    return "\n".join(unique[-limit:])


def unit_parameters_of(value: Any) -> dict[str, Any]:
    """``unit_parameters`` as a dict (``--param`` may hand over a JSON string)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ProductError(f"eopf-cpm: unit_parameters is not JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ProductError(f"eopf-cpm: unit_parameters must be a mapping, got "
                           f"{type(value).__name__}")
    return dict(value)


def _paths(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [p for p in value.split(os.pathsep) if p]
    return [str(p) for p in value]


# --- scratch preparation ---------------------------------------------------------------------


def _is_product(path: Path) -> bool:
    return (path / ".zmetadata").is_file() or (path / ".zgroup").is_file()


def local_product(source: ProductInput, where: Path) -> Path:
    """The input as a ``.zarr`` directory: a zip extracted under ``where``, or the directory."""
    zips = [p for p in source.files.values() if p.name.endswith(".zip")]
    dirs = [p for p in source.files.values() if p.is_dir()]
    if len(zips) == 1:
        out = where / "input.zarr"
        try:
            with zipfile.ZipFile(zips[0]) as zf:
                zf.extractall(out)  # extractall drops absolute paths and ".." components
        except (OSError, zipfile.BadZipFile) as exc:
            raise ProductError(f"input {source.id}: cannot extract {zips[0].name}: {exc}") \
                from exc
        if not _is_product(out):
            inner = [p for p in out.iterdir() if p.is_dir() and _is_product(p)]
            if len(inner) != 1:
                raise ProductError(f"input {source.id}: {zips[0].name} holds no Zarr product")
            out = inner[0]
        return out
    if not zips and len(dirs) == 1 and _is_product(dirs[0]):
        return dirs[0]
    names = sorted(p.name for p in source.files.values())
    raise ProductError(f"input {source.id}: expected one zipped EOPF product, found {names}")


def copy_units(where: Path) -> Path:
    """A directory for ``PYTHONPATH`` holding ``rspy_batch/cpm_units`` and an empty package.

    Only the units go: the rest of rspy_batch needs our venv (zarr 3), not the eopf one.
    """
    root = where / "pythonpath"
    package = root / "rspy_batch"
    shutil.copytree(Path(rspy_batch.cpm_units.__file__).parent, package / "cpm_units",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (package / "__init__.py").write_text('"""The CPM units of rspy-batch (copied)."""\n')
    return root


# --- running CPM -----------------------------------------------------------------------------


def run_cpm(venv: Path, payload_file: Path, *, cwd: Path, env: Mapping[str, str],
            log_file: Path, timeout: float) -> tuple[int, list[str]]:
    """Run ``eopf trigger local``; its exit code and its (redacted) output lines.

    Output is streamed to ``log_file`` and our logger as it comes, so a long run can be
    followed and a killed one still leaves its log.
    """
    argv = [*eopf_env.eopf_command(venv), "trigger", "local", str(payload_file)]
    lines: list[str] = []
    with open(log_file, "w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = redact(raw.rstrip("\n"))
                lines.append(line)
                out.write(line + "\n")
                log.debug("cpm: %s", line)

        reader = threading.Thread(target=pump, name="cpm-log", daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: CPM and nothing else
            proc.wait()
            reader.join(10)
            lines.append(f"rspy-batch: killed after {timeout:.0f} s")
            out.write(lines[-1] + "\n")
            return -signal.SIGKILL, lines
        reader.join(30)
    return rc, lines


def _rc_text(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


# --- output ----------------------------------------------------------------------------------


def stamp_product(path: Path, target: OutputTarget) -> None:
    """Merge the runner's attributes into the root ``.zattrs`` and consolidate once more."""
    store = zarr.storage.LocalStore(str(path))
    group = zarr.open_group(store, mode="r+", zarr_format=2, use_consolidated=False)
    group.attrs.update(stamp_attrs(dict(group.attrs), target))
    zarr.consolidate_metadata(store, zarr_format=2)


def publish(local: Path, target: OutputTarget) -> None:
    """Move (local) or upload (s3) the product to ``target.url``, replacing what is there."""
    kind, location = split_location(target.url)
    if kind == "local":
        dest = Path(location)
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(local), str(dest))
        return
    import fsspec

    fs, root = fsspec.core.url_to_fs(location, **dict(target.storage_options))
    root = root.rstrip("/")
    if fs.exists(root):
        fs.rm(root, recursive=True)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    # .zmetadata last: readers open consolidated, so they see all or nothing
    files.sort(key=lambda p: p.relative_to(local).as_posix() == ".zmetadata")
    for path in files:
        fs.put_file(str(path), f"{root}/{path.relative_to(local).as_posix()}")


def _register_secrets(target: OutputTarget) -> None:
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        register_secret(os.environ.get(name))
    for key in ("secret", "token", "password"):
        value = target.storage_options.get(key)
        if isinstance(value, str):
            register_secret(value)


class EopfCpmProcessor(Processor):
    """Runs an EOPF CPM ``EOProcessingUnit`` (default: NDVI of an S2 L1C) in the eopf venv."""

    name = "eopf-cpm"
    version = CPM_VERSION
    #: station product types (PRIP/LTA ``product:type``) of the inputs
    input_types = frozenset({"S2MSI1C"})
    level = "L1C"
    product_type = "S02MSINDV"
    title = "EOPF CPM processing unit (default: NDVI of Sentinel-2 L1C TOA reflectance)"
    parameters: ClassVar[Mapping[str, Any]] = {
        "module": "rspy_batch.cpm_units.ndvi",
        "processing_unit": "NdviUnit",
        "unit_parameters": {},
        #: the unit's input and output names in the workflow step
        "input_name": "l1c",
        "output_name": "ndvi",
        #: extra directories for PYTHONPATH (a unit module of your own)
        "pythonpath": [],
        "timeout": 3600,
    }

    def run(self, inputs: Sequence[ProductInput], **params: Any) -> xr.DataTree:
        """Not used: CPM writes the product itself, so :meth:`produce` is the entry point."""
        raise ProductError("eopf-cpm runs through produce(): CPM writes the product itself")

    def produce(self, inputs: Sequence[ProductInput], target: OutputTarget,
                **params: Any) -> xr.DataTree:
        opts = {**self.parameters, **params}
        if len(inputs) != 1:
            raise ProductError(f"eopf-cpm takes exactly one input product, got {len(inputs)}")
        _register_secrets(target)
        unit_params = unit_parameters_of(opts.get("unit_parameters"))
        venv = eopf_env.ensure_eopf_env()
        scratch = Path(tempfile.mkdtemp(prefix="rspy-cpm-"))
        ok = False
        try:
            local = self._run_unit(venv, scratch, inputs[0], opts, unit_params)
            stamp_product(local, target)
            publish(local, target)
            ok = True
        finally:
            if ok:
                shutil.rmtree(scratch, ignore_errors=True)
            else:
                # keep the payload and the log for a post-mortem, not the data
                for name in ("in", "out", "tmp", "pythonpath"):
                    shutil.rmtree(scratch / name, ignore_errors=True)
        return open_product(target.url, storage_options=target.storage_options)

    def _run_unit(self, venv: Path, scratch: Path, source: ProductInput,
                  opts: Mapping[str, Any], unit_params: Mapping[str, Any]) -> Path:
        (scratch / "in").mkdir()
        (scratch / "tmp").mkdir()
        input_path = local_product(source, scratch / "in")
        output_path = scratch / "out" / "product.zarr"
        document = payload(
            input_path=input_path, output_path=output_path, module=str(opts["module"]),
            processing_unit=str(opts["processing_unit"]), unit_parameters=unit_params,
            input_name=str(opts["input_name"]), output_name=str(opts["output_name"]),
            temporary=scratch / "tmp")
        payload_file = scratch / PAYLOAD_NAME
        payload_file.write_text(yaml.safe_dump(document, sort_keys=False))
        pythonpath = [str(copy_units(scratch)), *_paths(opts.get("pythonpath"))]
        log_file = scratch / LOG_NAME
        log.info("eopf-cpm: %s.%s on %s", opts["module"], opts["processing_unit"], source.id)
        rc, lines = run_cpm(venv, payload_file, cwd=scratch,
                            env=cpm_environment(os.environ, pythonpath), log_file=log_file,
                            timeout=float(opts["timeout"]))
        if rc != 0:
            raise ProductError(
                f"eopf trigger local failed ({_rc_text(rc)}) for {opts['module']}."
                f"{opts['processing_unit']} on {source.id}; log kept at {log_file}:\n"
                f"{failure_summary(lines)}")
        if not _is_product(output_path):
            raise ProductError(f"eopf trigger local exited 0 but wrote no product at "
                               f"{output_path} (does the unit return output "
                               f"{opts['output_name']!r}?); log kept at {log_file}")
        return output_path

    def main_variables(self, tree: xr.DataTree) -> Mapping[str, str]:
        return {"ndvi": "measurements/ndvi"} if has_node(tree, "measurements/ndvi") else {}

    def quicklook(self, tree: xr.DataTree) -> np.ndarray | None:
        """NDVI as grey levels (-1 -> 0, +1 -> 255, no data 0), <= 512 px a side."""
        if not has_node(tree, "measurements/ndvi"):
            return None
        var = tree["measurements/ndvi"]
        step = max(1, math.ceil(max(var.shape) / QUICKLOOK_SIDE))
        values = np.asarray(var[::step, ::step].values, dtype=np.float64)
        grey = np.rint((np.clip(values, -1.0, 1.0) + 1.0) * 127.5)
        return np.where(np.isnan(values), 0, grey).astype(np.uint8)
