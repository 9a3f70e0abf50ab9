"""Shared fixtures: a real S3 protocol server (moto, server mode) and the station
simulator, both on loopback, started and stopped by the tests themselves."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "rspy-test-access-key",
    "AWS_SECRET_ACCESS_KEY": "rspy-test-secret-key-do-not-leak",
    "AWS_DEFAULT_REGION": "us-east-1",
    # botocore >= 1.36 adds CRC checksums by default; keep requests plain for any S3 store.
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1; yields its endpoint URL and exports the AWS env."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A fresh bucket per test."""
    name = f"rspy-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


SIM_START = datetime(2026, 1, 1, tzinfo=UTC)
SIM_STOP = datetime(2026, 3, 1, tzinfo=UTC)


def make_simulator(tmp_path: Path, **overrides: object):  # noqa: ANN201
    """Start a simulator and point the station client at it (stations + secrets files)."""
    from rspy_batch.simulator import SimConfig, Simulator

    config = SimConfig(**{"seed": 7, "start": SIM_START, "stop": SIM_STOP, "scale": 0.25,
                          "cadu_chunk_bytes": 4096, "product_bytes": 2048, **overrides})
    sim = Simulator(config)
    sim.start()
    tmp_path.mkdir(parents=True, exist_ok=True)
    sim.stations_file = tmp_path / "stations.yaml"
    sim.write_stations_file(sim.stations_file)
    secrets = tmp_path / "secrets.env"
    sim.write_secrets_file(secrets)
    os.environ["RSPY_SECRETS_FILE"] = str(secrets)
    return sim


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[object]:
    sim = make_simulator(tmp_path)
    try:
        yield sim
    finally:
        sim.stop()
        os.environ.pop("RSPY_SECRETS_FILE", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``), keep every test of the session-scoped
    ``pipeline`` on one worker, so the pipeline is built once, not once per worker."""
    for item in items:
        if "pipeline" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("pipeline"))


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A working catalog made once by the real pipeline (see ``tests/pipeline.py``) for the
    publish and browser tests; tests that change it work on a copy."""
    from pipeline import build_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    sim = make_simulator(root / "sim")
    try:
        yield build_pipeline(root, sim)
    finally:
        sim.stop()
        os.environ.pop("RSPY_SECRETS_FILE", None)
