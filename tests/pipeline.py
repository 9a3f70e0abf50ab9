"""A small working catalog made by the real pipeline, for the publish and browser tests:
simulator → ingest → stage → ``rspy-batch process`` (s2-l1c on the S2 PRIP collection),
plus two metadata-only collections (PRIP S1 RAW, with geometry; CADIP sessions, without)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from e2e import run_cli

START, STOP = "2026-01-05", "2026-01-12"
STATION = "prip-s2b-msil1c"
PROCESSED = "prip-s2b-msil1c-s2-l1c"
RAW = "prip-s1a-iw-raw"
SESSIONS = "cadip-s1a-mti"


@dataclass
class Pipeline:
    catalog: Path
    staging: Path
    stations: Path
    secrets: Path


def build_pipeline(root: Path, sim: object, start: str = START, stop: str = STOP) -> Pipeline:
    p = Pipeline(root / "catalog", root / "staging", sim.stations_file,
                 sim.stations_file.parent / "secrets.env")
    common = ["--start", start, "--stop", stop, "--catalog", str(p.catalog),
              "--stations", str(p.stations)]
    result = run_cli("process", "--processor", "s2-l1c", "--collection", STATION, *common,
                     "--staging", str(p.staging))
    assert result.returncode == 0, result.stderr[-4000:]
    result = run_cli("ingest", "--collection", RAW, "--collection", SESSIONS, *common)
    assert result.returncode in (0, 3), result.stderr[-4000:]
    return p


def publish_config(path: Path, pipeline: Pipeline, public_url: str, **extra: str) -> Path:
    """ESA owns the PRIP collections (public), operations the CADIP sessions (private);
    staged files are served from ``<public_url>data/``."""
    lines = [
        f"public_url: {public_url}",
        "title: Test catalog",
        "collections:",
        '  "prip-*": {owner: esa}',
        '  "cadip-*": {owner: ops, public: false}',
        "owners:",
        '  ops: {principal: "arn:aws:iam::111122223333:role/ops-read"}',
        "assets:",
        f'  - {{from: "{pipeline.staging}", url: "{public_url}data/"}}',
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
