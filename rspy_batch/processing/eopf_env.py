"""A separate virtual environment with the EOPF CPM stack (eopf 2.8.1, xarray-eopf 0.3.1).

eopf 2.8.1 pins zarr 2, fsspec/s3fs 2024.5 and xarray 2025.9, which cannot share a venv
with our core (zarr 3, fsspec 2026), so CPM runs in a venv of its own, behind a
subprocess boundary, built from the exact pins of ``requirements-eopf.txt``.

- **Where.** ``$RSPY_EOPF_VENV`` if set, else ``~/.cache/rspy-batch/eopf-<hash>``; the hash
  covers the requirements file, the interpreter version and the fix below, so a change to
  any of them builds a fresh venv next to the old one.
- **Once.** A stamp file, written last, marks a complete venv; a half-built one (killed
  install, full disk) has none and is rebuilt. An exclusive file lock serialises concurrent
  builders (two workers, two test sessions): the second waits, then finds the stamp.
- **The PROJ clash.** eopf depends on cfgrib -> eccodes -> eckitlib, whose wheel bundles a
  libproj of its own. Once loaded, rasterio/pyproj (with their own bundled libproj) lose
  their PROJ database and segfault; xarray loads cfgrib's backend entry point whenever it
  lists engines, so any ``open_dataset(..., engine=...)`` crashes (environment.md §5).
  Removing cfgrib would break ``pip check`` (eopf requires it) and GRIB reading, so the
  venv gets a ``.pth`` hook that imports rasterio and pyproj just before the first import
  of eccodes/gribapi/cfgrib: load order alone avoids the clash, and interpreters that never
  touch GRIB pay nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from rspy_batch.buildcache import locked, output_tail
from rspy_batch.errors import ConfigError, RspyError

ENV_VENV = "RSPY_EOPF_VENV"
ENV_REQUIREMENTS = "RSPY_EOPF_REQUIREMENTS"
ENV_PYTHON = "RSPY_EOPF_PYTHON"
REQUIREMENTS_NAME = "requirements-eopf.txt"
STAMP_NAME = ".rspy-eopf-complete"
INSTALL_TIMEOUT = 1800.0
#: bump when the fix below changes: it is part of the venv hash
FIX_VERSION = "1"
FIX_MODULE = "_rspy_proj_first"
FIX_SOURCE = '''"""rspy-batch: load rasterio/pyproj before eccodes (their bundled libproj clash)."""
import sys


class _ProjBeforeEccodes:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("eccodes", "gribapi", "cfgrib"):
            sys.meta_path.remove(self)
            try:
                import rasterio  # noqa: F401
                import pyproj  # noqa: F401
            except ImportError:
                pass
        return None


sys.meta_path.insert(0, _ProjBeforeEccodes())
'''
#: what a finished venv must be able to do (the segfault shows up as rc 139 here)
SMOKE_TEST = (
    "import xarray as xr, eopf, xarray_eopf\n"
    "from eopf.computing import EOProcessingUnit\n"
    "engines = xr.backends.list_engines()\n"
    "assert 'eopf-zarr' in engines and 'zarr' in engines, sorted(engines)\n"
    "import pyproj\n"
    "assert pyproj.CRS('EPSG:32632').to_epsg() == 32632\n"
    "print(eopf.__version__)\n"
)


class SnippetError(RspyError):
    """A Python snippet run in the eopf venv failed."""


def requirements_file() -> Path:
    """The pinned requirements of the eopf venv (``$RSPY_EOPF_REQUIREMENTS`` overrides)."""
    override = os.environ.get(ENV_REQUIREMENTS)
    path = Path(override) if override else Path(__file__).resolve().parents[2] / REQUIREMENTS_NAME
    if not path.is_file():
        raise ConfigError(f"eopf venv requirements not found at {path} (set {ENV_REQUIREMENTS} "
                          f"to the pinned requirements-eopf.txt)")
    return path


def base_python() -> str:
    """The interpreter the venv is made from: the base of ours (eopf 2.8.1 needs 3.11+)."""
    return os.environ.get(ENV_PYTHON) or getattr(sys, "_base_executable", "") or sys.executable


def env_hash(requirements: bytes, python_version: str) -> str:
    """Short digest naming a venv built from these pins, this interpreter and this fix."""
    digest = hashlib.sha256()
    for part in (requirements, python_version.encode(), FIX_VERSION.encode(),
                 FIX_SOURCE.encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def default_location(requirements: Path | None = None) -> Path:
    """``$RSPY_EOPF_VENV``, else ``~/.cache/rspy-batch/eopf-<hash>``."""
    if os.environ.get(ENV_VENV):
        return Path(os.environ[ENV_VENV]).expanduser()
    req = requirements or requirements_file()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (Path.home() / ".cache" / "rspy-batch"
            / f"eopf-{env_hash(req.read_bytes(), version)}")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def eopf_command(venv: Path) -> list[str]:
    """The ``eopf`` CLI of the venv, as an argv prefix."""
    return [str(venv / "bin" / "eopf")]






def _run(argv: Sequence[str], what: str, *, timeout: float = INSTALL_TIMEOUT) -> str:
    """Run a build step; a failure is a ConfigError with the step's last lines."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"eopf venv: {what} did not finish in {timeout:.0f} s") from exc
    except OSError as exc:
        raise ConfigError(f"eopf venv: {what} could not start: {exc}") from exc
    if proc.returncode != 0:
        raise ConfigError(f"eopf venv: {what} failed (rc {proc.returncode}):\n"
                          f"{output_tail(proc.stdout + proc.stderr)}")
    return proc.stdout


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise ConfigError(f"eopf venv: no site-packages under {venv / 'lib'}")
    return found[0]


def install_proj_fix(venv: Path) -> None:
    """Install the load-order hook (module + ``.pth`` that imports it at start-up)."""
    site = _site_packages(venv)
    (site / f"{FIX_MODULE}.py").write_text(FIX_SOURCE)
    (site / f"{FIX_MODULE}.pth").write_text(f"import {FIX_MODULE}\n")


def _build(venv: Path, requirements: Path) -> None:
    if venv.exists():
        # a half-built venv is ours to replace; any other non-empty directory is not
        if any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
            raise ConfigError(f"eopf venv: {venv} exists and is not a virtual environment; "
                              f"set {ENV_VENV} to a new or empty directory")
        shutil.rmtree(venv)
    _run([base_python(), "-m", "venv", str(venv)], "creating the venv", timeout=300)
    python = str(venv_python(venv))
    _run([python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
          "-r", str(requirements)], f"pip install -r {requirements.name}")
    install_proj_fix(venv)
    _run([python, "-m", "pip", "check"], "pip check", timeout=300)
    _run([python, "-c", SMOKE_TEST], "the smoke test (import eopf, list xarray engines)",
         timeout=300)


def is_complete(venv: Path, stamp: str) -> bool:
    path = venv / STAMP_NAME
    return path.is_file() and path.read_text().strip() == stamp \
        and venv_python(venv).exists()


def ensure_eopf_env(path: Path | None = None) -> Path:
    """The eopf venv directory, built first if missing or incomplete (several minutes).

    Safe to call from concurrent processes; after the first build it only reads a stamp.
    """
    requirements = requirements_file()
    venv = Path(path) if path is not None else default_location(requirements)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stamp = env_hash(requirements.read_bytes(), version)
    if is_complete(venv, stamp):
        return venv
    with locked(venv.parent / f".{venv.name}.lock"):
        if not is_complete(venv, stamp):  # another process may have built it meanwhile
            _build(venv, requirements)
            (venv / STAMP_NAME).write_text(stamp + "\n")
    return venv


def run_python(code: str, *, venv: Path | None = None, args: Sequence[str] = (),
               cwd: Path | None = None, env: Mapping[str, str] | None = None,
               timeout: float = 600.0) -> str:
    """Run ``code`` with the eopf venv's interpreter; its stdout, or a SnippetError.

    ``env`` replaces the environment (default: ours, which is fine for local work).
    """
    venv = venv or ensure_eopf_env()
    try:
        proc = subprocess.run([str(venv_python(venv)), "-c", code, *args], capture_output=True,
                              text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
                              env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired as exc:
        raise SnippetError(f"python snippet in {venv} did not finish in {timeout:.0f} s") \
            from exc
    if proc.returncode != 0:
        raise SnippetError(f"python snippet in {venv} failed (rc {proc.returncode}):\n"
                           f"{output_tail(proc.stderr or proc.stdout, 25)}")
    return proc.stdout
