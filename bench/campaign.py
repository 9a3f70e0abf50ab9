"""Luigi graph size and scheduler share of a campaign over N simulated products (metadata
only), against one Luigi task per product, measured in one run.

    .venv/bin/python bench/campaign.py [--products 1000000] [--collections 10] [--days 365]
                                       [--per-product 1000,2000,4000] [--leases] [--quick]
                                       [--dir /dev/shm]

1. A real campaign (``parse_campaign``) over C collections x D days: every collection
   ingested and staged, the ones whose template names a processor processed, everything
   published. A deterministic simulated source holds N products in all (metadata records:
   id, publication date, size; no payload), spread over the collections at different rates
   and over the windows by their length.
2. Graph: ``plan.steps`` → ``tasks.campaign.campaign_tasks`` (the real task classes and
   parameters), walked through the real ``requires()``; tasks per stage are printed.
3. Run: ``orchestration.run.run_graph`` (``luigi.build``, in-process scheduler, 1 worker,
   detailed summary) with the campaign's worker settings (``configure_workers``). Only the
   window tasks' ``complete()`` (an in-memory set of task ids) and ``work()`` (every product
   of the window mapped to a small dict, read from the upstream stage's records) are
   replaced; ``run()`` is ``Leased.run`` without the lease, or with real leases in a local
   store (``--leases``). Every RPC method of ``luigi.scheduler.Scheduler`` (all the worker
   calls) is timed, as are ``complete()``, ``work()`` and ``requires()``; the rest of the
   wall time is Luigi's worker. A second run with everything done is what a cron re-run costs.
4. Baselines, same process: (a) the same metadata work without Luigi (the steps called in
   plan order); (b) one trivial Luigi task per product (the design campaigns avoid) at a
   few sizes, wall time fitted to b*N + c*N^2 (least squares) and also scaled as N^2 from
   the largest size; the lower of the two extrapolations to N products gives the ratio.
   Each per-product task only maps one product, so this is a lower bound for that design.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import luigi
import luigi.scheduler
import yaml

from rspy_batch.campaign.config import Campaign, parse_campaign
from rspy_batch.campaign.plan import Step, Window, steps, windows
from rspy_batch.campaign.run import configure_workers, published_collections
from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.cli import _all_tasks
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration.leases import publish_lease
from rspy_batch.orchestration.run import run_graph
from rspy_batch.templates import DEFAULT_DIR, load_templates
from tasks.campaign import campaign_tasks
from tasks.ingest import IngestWindow
from tasks.process import ProcessWindow
from tasks.publish import PublishWindow
from tasks.stage import StageWindow

START = datetime(2026, 1, 1, tzinfo=UTC)
PUBLIC_URL = "http://127.0.0.1:9/"
WINDOW_TASKS = {IngestWindow: "ingest", StageWindow: "stage", ProcessWindow: "process",
                PublishWindow: "publish"}
STAGE_ORDER = ("ingest", "stage", "process", "publish")


# ------------------------------------------------------------ the simulated source (pure)


def allocate(total: int, by_collection: dict[str, list[Window]]) -> dict[Window, int]:
    """Products per window: collections at rates 1:2:3 (cycling), each collection's share
    spread over its windows in proportion to their length (clipped windows hold fewer).
    Cumulative rounding, so the counts add up to ``total`` exactly."""
    cids = list(by_collection)
    weights = [1 + i % 3 for i in range(len(cids))]
    out: dict[Window, int] = {}
    done_weight, given = 0, 0
    for cid, weight in zip(cids, weights, strict=True):
        done_weight += weight
        share = round(total * done_weight / sum(weights)) - given
        given += share
        spans = [_seconds(w) for w in by_collection[cid]]
        elapsed, placed = 0.0, 0
        for w, span in zip(by_collection[cid], spans, strict=True):
            elapsed += span
            n = round(share * elapsed / sum(spans)) - placed
            placed += n
            out[w] = n
    return out


def station_product(collection: str, start: datetime, step: timedelta, k: int) -> dict:
    """The k-th simulated station entity of a window (OData-like field names)."""
    name = f"{collection.upper()}_{k:07d}_{start:%Y%m%dT%H%M%S}"
    return {"Id": f"{collection}:{start:%Y%m%d}:{k}", "Name": name,
            "PublicationDate": iso(start + step * (k + 0.5)),
            "ContentLength": 1_000_000 + (k * 7919) % 900_000_000}


def station_products(collection: str, start: str, stop: str, n: int) -> Iterator[dict]:
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    t1 = datetime.fromisoformat(stop.replace("Z", "+00:00"))
    step = (t1 - t0) / max(n, 1)
    return (station_product(collection, t0, step, k) for k in range(n))


def ingest_record(entity: dict) -> dict:
    return {"id": entity["Name"], "datetime": entity["PublicationDate"],
            "size": entity["ContentLength"]}


def stage_record(item: dict, staging: str, collection: str) -> dict:
    return {**item, "href": f"{staging}/{collection}/{item['id']}"}


def process_record(item: dict, output: str) -> dict:
    return {"id": f"{item['id']}_{output}", "datetime": item["datetime"],
            "derived_from": item["id"]}


def publish_record(item: dict, collection: str) -> dict:
    return {"id": item["id"], "datetime": item["datetime"],
            "href": f"{PUBLIC_URL}{collection}/{item['id']}.json"}


def _seconds(w: Window) -> float:
    t0, t1 = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (w.start, w.stop))
    return (t1 - t0).total_seconds()


# ------------------------------------------------------------ metadata-only window work


@dataclass
class Memory:
    """What the stages would have written to the catalog: records per (stage, target
    collection, window), and which tasks are done."""

    counts: dict[Window, int]
    staging: str
    records: dict[tuple[str, str, str, str], list[dict]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    def made(self) -> Counter:
        return Counter({stage: sum(len(r) for (s, *_), r in self.records.items() if s == stage)
                        for stage in STAGE_ORDER})


def do_step(mem: Memory, stage: str, collection: str, target: str, start: str,
            stop: str) -> None:
    """One window of one stage: every product of the window, read from the upstream stage's
    records (a missing upstream raises: the graph's order would be wrong)."""
    key = (stage, target, start, stop)
    if stage == "ingest":
        n = mem.counts[Window(collection, start, stop)]
        out = [ingest_record(e) for e in station_products(collection, start, stop, n)]
    elif stage == "stage":
        out = [stage_record(i, mem.staging, collection)
               for i in mem.records["ingest", collection, start, stop]]
    elif stage == "process":
        out = [process_record(i, target) for i in mem.records["stage", collection, start, stop]]
    else:
        upstream = ("stage", collection) if target == collection else ("process", target)
        out = [publish_record(i, target) for i in mem.records[(*upstream, start, stop)]]
    mem.records[key] = out


def step_args(step: Step) -> tuple[str, str, str, str, str]:
    return step.stage, step.window.collection, step.target, step.window.start, step.window.stop


def task_args(task: luigi.Task) -> tuple[str, str, str, str, str]:
    stage = WINDOW_TASKS[type(task)]
    if stage == "publish":
        return (stage, task.upstream["collection"], task.collection, task.start, task.stop)
    target = task.output_collection_id() if stage == "process" else task.collection
    return stage, task.collection, target, task.start, task.stop


# ------------------------------------------------------------ timers


@dataclass
class Clock:
    """Seconds and calls per bucket; a bucket entered again within itself (a scheduler
    method calling another) counts once."""

    seconds: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)
    local: threading.local = field(default_factory=threading.local)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def wrap(self, bucket: str, name: str, fn: Callable) -> Callable:
        clock = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(clock.local, bucket, 0)
            if depth:
                return fn(*args, **kwargs)
            setattr(clock.local, bucket, 1)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                clock.seconds[bucket] += elapsed
                clock.seconds[f"{bucket}.{name}"] += elapsed
                clock.calls[f"{bucket}.{name}"] += 1
                setattr(clock.local, bucket, 0)

        timed.__name__ = getattr(fn, "__name__", name)
        return timed


@contextmanager
def patched(obj: Any, values: dict[str, Any]) -> Iterator[None]:
    """Set attributes of a class for the block, then restore (or remove) them."""
    missing = object()
    saved = {name: obj.__dict__.get(name, missing) for name in values}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                delattr(obj, name)
            else:
                setattr(obj, name, value)


@contextmanager
def instrumented(clock: Clock) -> Iterator[None]:
    """Every RPC method of the scheduler timed (the worker's only way to reach it)."""
    cls = luigi.scheduler.Scheduler
    names = sorted(n for n in luigi.scheduler.RPC_METHODS if hasattr(cls, n))
    with patched(cls, {n: clock.wrap("scheduler", n, getattr(cls, n)) for n in names}):
        yield


def run_without_lease(self: luigi.Task) -> None:
    # tasks.lease.Leased.run without the lease: re-check, then work.
    if self.complete():
        return
    self.work()


@contextmanager
def metadata_only(mem: Memory, clock: Clock, *, leases: bool) -> Iterator[None]:
    """The four window task classes with in-memory complete() and metadata work(); their
    requires() is the real one, only timed."""

    def complete(self: luigi.Task) -> bool:
        return self.task_id in mem.done

    def work(self: luigi.Task) -> None:
        do_step(mem, *task_args(self))
        mem.done.add(self.task_id)

    def publish_lease_only(self: PublishWindow) -> tuple[Store, str]:
        # The real lease() builds the whole publication (stores, stations) first.
        return open_store(self.to), publish_lease(self.collection)

    with_all: list = []
    for cls in WINDOW_TASKS:
        values: dict[str, Any] = {
            "complete": clock.wrap("complete", cls.__name__, complete),
            "work": clock.wrap("work", cls.__name__, work),
            "requires": clock.wrap("requires", cls.__name__, cls.requires)}
        if not leases:
            values["run"] = run_without_lease
        elif cls is PublishWindow:
            values["lease"] = publish_lease_only
        with_all.append(patched(cls, values))
    try:
        for ctx in with_all:
            ctx.__enter__()
        yield
    finally:
        for ctx in reversed(with_all):
            ctx.__exit__(None, None, None)


# ------------------------------------------------------------ one task per product


class ProductTask(luigi.Task):
    """Baseline: one Luigi task per station product (what a campaign must not do)."""

    collection = luigi.Parameter()
    index = luigi.IntParameter()
    state: dict[str, set[str]] = {"done": set()}

    def complete(self) -> bool:
        return self.task_id in self.state["done"]

    def run(self) -> None:
        ingest_record(station_product(self.collection, START, timedelta(seconds=1), self.index))
        self.state["done"].add(self.task_id)


def per_product_run(n: int, clock: Clock) -> tuple[float, float]:
    """Wall and scheduler seconds of N trivial per-product tasks."""
    ProductTask.state["done"] = set()
    tasks = [ProductTask(collection=f"per-product-{n}", index=k) for k in range(n)]
    clock.reset()
    with instrumented(clock):
        t0 = time.perf_counter()
        result = run_graph(tasks, workers=1, quiet=True)
        wall = time.perf_counter() - t0
    assert len(ProductTask.state["done"]) == n, result.one_line_summary
    return wall, clock.seconds["scheduler"]


def fit_quadratic(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares t = b*N + c*N^2 (no constant: no tasks, no time)."""
    s22 = sum(n**2 for n, _ in points)
    s23 = sum(n**3 for n, _ in points)
    s44 = sum(n**4 for n, _ in points)
    y2 = sum(n * t for n, t in points)
    y4 = sum(n**2 * t for n, t in points)
    det = s22 * s44 - s23 * s23
    return (y2 * s44 - y4 * s23) / det, (s22 * y4 - s23 * y2) / det


# ------------------------------------------------------------ the campaign


def template_dir(root: Path, count: int) -> tuple[str, list[str]]:
    """The real templates for up to as many collections as there are; beyond, copies of
    them under new ids (a larger campaign has the same kinds of collections)."""
    real = load_templates(DEFAULT_DIR)
    ids = sorted(real)
    if count <= len(ids):
        return str(DEFAULT_DIR), ids[:count]
    out = root / "templates"
    out.mkdir()
    chosen = []
    for i in range(count):
        base = ids[i % len(ids)]
        cid = base if i < len(ids) else f"{base}-c{i // len(ids)}"
        doc = yaml.safe_load((DEFAULT_DIR / f"{base}.yaml").read_text())
        doc["id"] = cid
        (out / f"{cid}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        chosen.append(cid)
    return str(out), chosen


def make_campaign(root: Path, collections: int, days: int) -> Campaign:
    templates, cids = template_dir(root, collections)
    known = load_templates(templates)
    (root / "publish.yaml").write_text(yaml.safe_dump(
        {"default_owner": "ops", "collections": {"*": {"owner": "ops"}}}))
    doc = {"name": "bench-campaign", "start": START.date().isoformat(),
           "stop": (START + timedelta(days=days)).date().isoformat(),
           "catalog": "catalog", "staging": "staging", "stations": "stations.yaml",
           "templates": templates, "collections": cids,
           "processing": [{"processor": known[c].processors[0], "input": c}
                          for c in cids if known[c].processors],
           "publish": {"to": "public", "public_url": PUBLIC_URL, "config": "publish.yaml"}}
    return parse_campaign(doc, base=root, source="bench-campaign")


def by_stage(tasks: set[luigi.Task]) -> Counter:
    return Counter(WINDOW_TASKS.get(type(t), type(t).__name__) for t in tasks)


def fmt_s(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:,.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds:,.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--collections", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-product", default=None,
                        help="sizes of the one-task-per-product baseline [1000,2000,4000]")
    parser.add_argument("--leases", action="store_true",
                        help="real leases (a local store under --dir) instead of none")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20,000 products over 28 days, baseline 250,500,1000")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    if args.quick:
        args.products, args.days = 20_000, 28
    sizes = [int(s) for s in (args.per_product
                              or ("250,500,1000" if args.quick else "1000,2000,4000")).split(",")]

    root = Path(tempfile.mkdtemp(prefix="rspy-bench-campaign-", dir=args.dir))
    try:
        report(args, sizes, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, sizes: list[int], root: Path) -> None:
    # Other work on the machine slows every figure below; the ratios are of one run.
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cpus)")
    camp = make_campaign(root, args.collections, args.days)
    plan = steps(camp, published=published_collections(camp))
    by_collection = {cid: windows(camp, cid) for cid in camp.collections}
    counts = allocate(args.products, by_collection)
    n_windows = sum(len(w) for w in by_collection.values())
    print(f"campaign: {len(camp.collections)} collections x {args.days} days "
          f"({camp.start:%Y-%m-%d} .. {camp.stop:%Y-%m-%d}), {len(camp.processing)} processed, "
          f"all published; {n_windows} collection windows")
    print(f"simulated products: {sum(counts.values()):,} (metadata only; per window "
          f"{min(counts.values()):,} .. {max(counts.values()):,})")
    print(f"leases: {'real, in a local store under ' + str(root) if args.leases else 'none'}"
          f" (catalog documents: none; complete() = in-memory set of task ids)")

    t0 = time.perf_counter()
    roots = campaign_tasks(camp, plan)
    graph = _all_tasks(roots)
    t_graph = time.perf_counter() - t0
    stages = by_stage(graph)
    print(f"\nLuigi tasks created: {len(graph):,} ({len(plan):,} campaign steps, "
          f"{len(roots):,} roots; graph walked through requires() in {t_graph:.2f} s)")
    for stage in STAGE_ORDER:
        print(f"  {stage:<8} {stages[stage]:>7,}")

    # (a) the same work without Luigi, in plan order
    mem = Memory(counts, camp.staging)
    t0 = time.perf_counter()
    for step in plan:
        do_step(mem, *step_args(step))
    t_plain = time.perf_counter() - t0
    made_plain = mem.made()
    del mem

    configure_workers(shared_scheduler=False, idle_seconds=camp.options.idle_timeout)
    clock = Clock()
    mem = Memory(counts, camp.staging)
    with metadata_only(mem, clock, leases=args.leases), instrumented(clock):
        clock.reset()
        t0 = time.perf_counter()
        result = run_graph(roots, workers=1, quiet=True)
        wall = time.perf_counter() - t0
        spent = dict(clock.seconds)
        calls = dict(clock.calls)
        clock.reset()
        t0 = time.perf_counter()
        rerun = run_graph(roots, workers=1, quiet=True)
        t_rerun = time.perf_counter() - t0
    taken = 0
    if args.leases:
        from rspy_batch.catalog.lease import LEASE_PREFIX

        taken = sum(1 for url in (camp.catalog, camp.publish.to)
                    for _ in open_store(url).list(LEASE_PREFIX))
    made = mem.made()
    assert made == made_plain and made["ingest"] == args.products, (made, made_plain)
    assert len(mem.done) == len(graph), (len(mem.done), len(graph))
    del mem

    ran = sum(v for k, v in calls.items() if k.startswith("work."))
    print(f"\nLuigi run (in-process scheduler, 1 worker): {result.status.name}, "
          f"{ran:,} window tasks ran")
    print("  records made: " + ", ".join(f"{s} {made[s]:,}" for s in STAGE_ORDER))
    if args.leases:
        print(f"  lease objects written: {taken:,} (their time is in 'rest')")
    parts = [("scheduler (Scheduler RPC methods)", spent.get("scheduler", 0.0)),
             ("complete() checks", spent.get("complete", 0.0)),
             ("work() (metadata)", spent.get("work", 0.0)),
             ("requires() (real)", spent.get("requires", 0.0))]
    rest = wall - sum(s for _, s in parts)
    print(f"  {'':<36}{'seconds':>10}{'share':>9}")
    rest_label = "rest: Luigi worker, summary" + (", leases" if args.leases else "")
    for label, seconds in [*parts, (rest_label, rest)]:
        print(f"  {label:<36}{seconds:>10.2f}{seconds / wall:>9.1%}")
    print(f"  {'wall':<36}{wall:>10.2f}{1:>9.0%}")
    print(f"  scheduler share of wall time: {spent.get('scheduler', 0.0) / wall:.1%}")
    top = sorted(((k, v) for k, v in calls.items() if k.startswith("scheduler.")),
                 key=lambda kv: -kv[1])
    print("  scheduler calls: " + ", ".join(f"{k.split('.', 1)[1]} {v:,} ({spent[k]:.2f} s)"
                                            for k, v in top))
    req = sorted((k for k in calls if k.startswith("requires.")), key=lambda k: -spent[k])
    print("  requires() calls: " + ", ".join(
        f"{k.split('.', 1)[1]} {calls[k]:,} ({spent[k]:.2f} s)" for k in req))
    print(f"  re-run with everything done (cron): {t_rerun:.2f} s ({rerun.status.name}, "
          f"{sum(v for k, v in clock.calls.items() if k.startswith('work.'))} tasks ran)")

    print(f"\nbaseline (a): the same metadata work without Luigi: {t_plain:.2f} s "
          f"({t_plain / args.products * 1e6:.2f} us per product)")
    print(f"  campaign wall / metadata work alone: {wall / t_plain:.2f}x "
          f"(Luigi and requires(): {wall - spent.get('work', 0.0):.2f} s, "
          f"{(wall - spent.get('work', 0.0)) / args.products * 1e6:.2f} us per product)")

    print("\nbaseline (b): one trivial Luigi task per product (same scheduler, same timers)")
    print(f"  {'tasks':>8}{'wall s':>10}{'sched s':>10}{'share':>8}{'ms/task':>9}")
    points = []
    for n in sizes:
        t, sched = per_product_run(n, clock)
        points.append((n, t))
        print(f"  {n:>8,}{t:>10.2f}{sched:>10.2f}{sched / t:>8.1%}{t / n * 1e3:>9.2f}")
    b, c = fit_quadratic(points)
    fit = ", ".join(f"{n:,}: {b * n + c * n * n:.2f} s" for n, _ in points)
    print(f"  least-squares fit t = {b:.3e}*N + {c:.3e}*N^2  ({fit})")
    growth = ", ".join(f"{n0:,}->{n1:,}: N^{math.log(t1 / t0) / math.log(n1 / n0):.2f}"
                       for (n0, t0), (n1, t1) in itertools.pairwise(points))
    print(f"  measured growth between sizes: {growth}")
    n_max, t_max = max(points)
    estimates = {"least-squares fit": b * args.products + c * args.products**2,
                 f"t({n_max:,}) * (N/{n_max:,})^2": t_max * (args.products / n_max) ** 2}
    for label, seconds in estimates.items():
        print(f"  {args.products:,} per-product tasks, {label}: {fmt_s(seconds)}")
    t_same = b * len(graph) + c * len(graph) ** 2
    print(f"  fit at the campaign's {len(graph):,} tasks: {t_same:.2f} s (Luigi and "
          f"requires() part of the campaign, measured: {wall - spent.get('work', 0.0):.2f} s)")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    # The smaller of the two, so the ratio does not lean on the extrapolation's choice.
    t_million = min(estimates.values())
    print(f"\nratio per-product ({fmt_s(t_million)}, the lower extrapolation) / campaign "
          f"({wall:.2f} s, measured): {t_million / wall:,.0f}x")

if __name__ == "__main__":
    main()
