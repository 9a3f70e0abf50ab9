"""Helpers for the chaos test: the campaign it runs, the plan of kills, and what two
finished runs must have in common (worked out from the stores, not from the code under
test)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from campaign_support import INPUT, OWNER, normalise, plugin_env, reachable_ids
from e2e import CLI

from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.catalog.walk import walk_items

WEEK = ("2026-01-05", "2026-01-12")     # one weekly window of the station collection
OUTPUT = f"{INPUT}-toy-v0.1.0"
PUBLIC_URL = "http://127.0.0.1:9/"


def write_chaos_campaign(path: Path, *, root: str, stations: Path) -> Path:
    """A campaign over one week: one station collection, ingested, staged, processed by
    the toy plug-in and published with its output; everything under ``root`` (s3://)."""
    staging = f"{root}/staging"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = path.with_suffix(".publish.yaml")
    config.write_text(yaml.safe_dump({
        # the output is published as a processed collection (publish_processed), not by
        # a rule naming it: that needs its process run records
        "default_owner": OWNER, "collections": {INPUT: {"owner": OWNER}},
        "assets": [{"from": staging, "url": f"{PUBLIC_URL}data/"}]}))
    doc = {
        "name": "chaos", "start": WEEK[0], "stop": WEEK[1], "catalog": f"{root}/catalog",
        "staging": staging, "stations": str(stations), "collections": [INPUT],
        "processing": [{"processor": "toy-bytes", "version": "0.1.0", "input": INPUT,
                        "output": f"{INPUT}-toy"}],
        "publish": {"to": f"{root}/public", "public_url": PUBLIC_URL, "config": config.name},
        "options": {"transfers": 2, "lease_ttl": 30},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


STARTED = re.compile(rb"campaign \S+: \d+ steps")
TASK = re.compile(rb"\) (running|done|failed)\s+(\w+)\(")
PHI = (5 ** 0.5 - 1) / 2


@dataclass(frozen=True)
class Run:
    """One ``campaign run``: its exit code (None: killed), wall time, time from the
    campaign's start line (after the imports) to the end, what it was doing then, and its
    process id (lease owners name it)."""

    returncode: int | None
    seconds: float
    work: float
    stage: str
    log: Path
    pid: int

    def tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:]


def run_campaign(path: Path, *, endpoint: str, log: Path, kill_after: float | None = None,
                 timeout: float = 900) -> Run:
    """Run the campaign with S3 at ``endpoint``; with ``kill_after``, SIGKILL its process
    group that many seconds after the campaign started working (if still running)."""
    env = {**os.environ, **plugin_env(), "AWS_ENDPOINT_URL": endpoint}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        # A session of its own: the kill takes whatever the run may have forked.
        proc = subprocess.Popen([*CLI, "campaign", "run", str(path)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    t0 = time.monotonic()
    started: float | None = None
    killed = False
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if started is None and STARTED.search(log.read_bytes()):
                started = now
            if kill_after is not None and started is not None and now - started >= kill_after:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            if now - t0 > timeout:
                raise TimeoutError(f"campaign run still running after {timeout:.0f} s: {log}")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    end = time.monotonic()
    text = log.read_bytes()
    if not killed:
        stage = "finished"
    elif started is None:
        stage = "startup"
    else:
        stage = stage_of(text)
    return Run(None if killed else proc.returncode, end - t0,
               end - (started if started is not None else end), stage, log, proc.pid)


def stage_of(log: bytes) -> str:
    """The task a Luigi log was in the middle of at its end: ``<Task>``, ``after <Task>``
    when the last one had finished, ``checking`` when none had started yet (the scheduler
    was still asking which tasks are complete)."""
    last = None
    for match in TASK.finditer(log):
        last = match[2].decode() if match[1] == b"running" else f"after {match[2].decode()}"
    return last or "checking"


@dataclass(frozen=True)
class Iteration:
    index: int
    seed: int
    kills: tuple[float, ...]  # seconds after the campaign started, one run each


def iteration_plan(seed: int, count: int, span: float) -> list[Iteration]:
    """``count`` iterations with seeds ``seed``, ``seed + 1``, ..., each killed 1-3 times in
    a row. The first kill lands at the golden-ratio fraction of the seed over ``span``, so
    consecutive seeds spread their kills over every stage even when there are few of them
    (and one seed alone replays its iteration); later kills fall anywhere in the span."""
    out = []
    for index in range(count):
        s = seed + index
        rng = random.Random(s)
        first = span * ((s * PHI) % 1.0)
        more = rng.choices((0, 1, 2), weights=(2, 1, 1))[0]
        kills = (first, *(span * rng.random() for _ in range(more)))
        out.append(Iteration(index, s, tuple(round(t, 2) for t in kills)))
    return out


# ---------------------------------------------------------------- what must be equal


def _strip_locations(doc: Any, locations: tuple[str, ...]) -> Any:
    if isinstance(doc, dict):
        return {k: _strip_locations(v, locations) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_strip_locations(v, locations) for v in doc]
    if isinstance(doc, str):
        for where in locations:
            doc = doc.replace(where, "<sim>")
    return doc


def documents(store: Store, *, locations: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every STAC document (records and leases excluded), normalised as campaign_support
    does (timestamps dropped, hrefs below the store roots), with the station simulator's
    address replaced (the reference and the chaos runs each have their own)."""
    out = {}
    for key in sorted(store.list("")):
        if not key.endswith(".json") or key.startswith("_rspy"):
            continue
        blob = store.read(key)
        if blob is not None:
            out[key] = normalise(_strip_locations(loads(blob.data), locations))
    return out


#: Zarr attributes that say when and where a product was computed: the history's time
#: and the toy processor's Dask scheduler address (its in-process cluster's, per run).
RUN_ATTRS = frozenset({"time", "scheduler"})


def _drop(doc: Any, keys: frozenset[str]) -> Any:
    if isinstance(doc, dict):
        return {k: _drop(v, keys) for k, v in doc.items() if k not in keys}
    if isinstance(doc, list):
        return [_drop(v, keys) for v in doc]
    return doc


def object_digests(store: Store, prefix: str = "") -> dict[str, str]:
    """MD5 of every object's bytes, by key (the staged files and products); a product's
    attribute documents (``.zattrs``, ``.zmetadata``) are compared as JSON without the
    fields that differ between two runs of the same work."""
    out = {}
    for key in sorted(store.list(prefix)):
        blob = store.read(key)
        if blob is None:
            continue
        data = blob.data
        if key.rsplit("/", 1)[-1] in (".zattrs", ".zmetadata"):
            doc = _drop(normalise(loads(data)), RUN_ATTRS)
            data = json.dumps(doc, sort_keys=True).encode()
        out[key] = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return out


def item_sets(store: Store, collections: tuple[str, ...]) -> dict[str, list[str]]:
    """Item ids reachable from each collection, sorted (duplicates kept, so they show)."""
    return {cid: sorted(reachable_ids(store, cid)) for cid in collections}


def published_sets(store: Store, collections: tuple[str, ...]) -> dict[str, list[str]]:
    return {cid: sorted(item["id"] for _key, item in walk_items(
        store, f"{OWNER}/{cid}/collection.json")) for cid in collections}


@dataclass(frozen=True)
class Outcome:
    """What a finished run leaves, in terms two runs under different roots can compare."""

    items: dict[str, list[str]]
    published: dict[str, list[str]]
    staged: dict[str, str]
    catalog: dict[str, Any]
    public: dict[str, Any]


def outcome(root: str, *, sim_url: str) -> Outcome:
    catalog, public = open_store(f"{root}/catalog"), open_store(f"{root}/public")
    collections = (INPUT, OUTPUT)
    return Outcome(items=item_sets(catalog, collections),
                   published=published_sets(public, collections),
                   staged=object_digests(open_store(f"{root}/staging")),
                   catalog=documents(catalog, locations=(sim_url,)),
                   public=documents(public, locations=(sim_url,)))


def lease_pid(owner: str) -> int:
    """The process id in a lease owner (``host:pid:random``)."""
    return int(owner.split(":")[1])
