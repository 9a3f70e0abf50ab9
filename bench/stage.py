"""Staging throughput against raw boto3, measured in one run.

    .venv/bin/python bench/stage.py [--files 40] [--mib 4] [--workers 4]

A moto S3 server and the station simulator run on loopback, each in its own process (in
this process they would compete with the measured code for the GIL). N Sentinel-2
products of a few MiB each are ingested (untimed), then:

1. ``stage_window`` copies them station → S3 (streamed download, MD5 and size checked,
   multipart upload committed only when verified, catalog updated per item);
2. baseline "raw boto3": the same bytes, already in memory, uploaded with
   ``upload_fileobj`` to the same server with the same concurrency;
3. for scale, the download alone (station → memory, no checks).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
import requests

from rspy_batch.catalog.reader import iter_items
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.ingest import ingest_window
from rspy_batch.staging.sinks import S3Sink
from rspy_batch.staging.stage import stage_window
from rspy_batch.staging.state import station_href
from rspy_batch.stations.client import client_for
from rspy_batch.stations.config import load_stations
from rspy_batch.templates import get_template

START, STOP = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC)
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
       "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str) -> None:
    for _ in range(200):
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--mib", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    os.environ.update(ENV)
    work = Path(tempfile.mkdtemp(prefix="rspy-stage-bench-"))
    s3_port, sim_port = free_port(), free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(s3_port)], **quiet)
    sim = subprocess.Popen([sys.executable, "-m", "rspy_batch", "station-sim", "--port",
                            str(sim_port), "--seed", "3", "--start", "2026-01-01", "--stop",
                            "2026-01-08", "--scale", f"0,s1a={args.files / (12 * 7)}",
                            "--eopf-scale", "0",
                            "--product-bytes", str(int(args.mib * 1024 * 1024)),
                            "--stations-out", str(work / "stations.yaml"),
                            "--secrets-out", str(work / "secrets.env")], **quiet)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{s3_port}"
    try:
        wait_http(os.environ["AWS_ENDPOINT_URL"])
        wait_http(f"http://127.0.0.1:{sim_port}/s1a/health")
        while not (work / "secrets.env").exists():
            time.sleep(0.05)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        os.environ["RSPY_SECRETS_FILE"] = str(work / "secrets.env")
        stations = load_stations(work / "stations.yaml")
        template = get_template("prip-s1a-iw-raw")
        store = LocalStore(work / "catalog")
        windows = [(START, datetime(2026, 1, 5, tzinfo=UTC)),
                   (datetime(2026, 1, 5, tzinfo=UTC), STOP)]
        for s, e in windows:
            ingest_window(template, s, e, store=store, stations=stations)
        assets = [a for it in iter_items(store, template.id) for a in it["assets"].values()]
        total = sum(a["file:size"] for a in assets)

        client = client_for(stations["s1a"])

        def fetch(asset: dict) -> bytes:
            with client.open_download(station_href(asset)) as resp:
                return resp.content

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            payloads = list(pool.map(fetch, assets))
        t_download = time.perf_counter() - t0

        t0 = time.perf_counter()
        for s, e in windows:
            record = stage_window(template, s, e, store=store, stations=stations,
                                  sink=S3Sink("s3://bench/staged"), workers=args.workers)
            assert not record.rejected, record.rejected
        t_stage = time.perf_counter() - t0

        def upload(i_data: tuple[int, bytes]) -> None:
            i, data = i_data
            s3.upload_fileobj(io.BytesIO(data), "bench", f"raw/{i}")

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(upload, enumerate(payloads)))
        t_raw = time.perf_counter() - t0
    finally:
        for proc in (moto, sim):
            proc.terminate()
            proc.wait()

    mb = total / 1e6
    print(f"{len(assets)} files, {mb:.1f} MB, {args.workers} concurrent transfers")
    print(f"  station download only (no checks)       {mb / t_download:8.1f} MB/s ({t_download:.2f} s)")  # noqa: E501
    print(f"  rspy-batch stage (download+verify+S3)   {mb / t_stage:8.1f} MB/s ({t_stage:.2f} s)")
    print(f"  baseline: raw boto3 upload_fileobj      {mb / t_raw:8.1f} MB/s ({t_raw:.2f} s)")
    print(f"ratio stage / raw boto3 upload: {t_raw / t_stage:.2f}")


if __name__ == "__main__":
    main()
