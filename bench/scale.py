"""Scale: a catalog of ~N items built by ingest on local disk, in bounded memory; adding
10,000 items to it against adding them to an empty catalog, measured in one run.

    .venv/bin/python bench/scale.py [--items 1000000] [--dir /tmp] [--add 10000]
                                    [--repeats 3] [--slices 13] [--keep]

1. Build: a year (52 aligned weeks) of five collections on four stations (PRIP s1a IW RAW,
   LTA S1 IW RAW, AUXIP AUX_RESORB and AUX_ECMWFD, CADIP mti sessions), ~N items in all,
   cut into S slices of whole weeks. Per slice, the station simulator runs in a child
   process with that slice's entities (built before the clock starts: the simulator holds
   all its entities in memory, so one simulator for the whole year would need gigabytes),
   then ``rspy-batch ingest`` (a subprocess: Luigi, one IngestWindow per collection and
   week) adds them to one catalog directory on local disk. The ingest process's RSS is
   sampled every 0.5 s against the catalog size (from its per-batch log lines) and its
   peak is its VmHWM at exit; peaks that stay flat while the catalog grows from 0 to N
   are what "bounded memory" means.
2. Add: a simulator with R further weeks holding ~A new items per week, warmed up by an
   ingest into a scratch catalog (its entities built, payload checksums computed, queries
   cached); then per week, the same ``rspy-batch ingest`` into (a) the big catalog and
   (b) a new empty catalog, alternating which goes first. Baseline: (b). Ratio big/empty
   of wall time (and of the time inside ``ingest_window``, from the run records).
3. Files, bytes and blocks on disk; items/s of the build against the empty-catalog rate.

The simulator and the ingest share the machine's cores (as do other users: the load
average is printed). Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import psutil

from rspy_batch.catalog.records import window_id
from rspy_batch.mapping.common import iso
from rspy_batch.simulator import SimConfig, Simulator
from rspy_batch.windows import split_windows

REPO = Path(__file__).resolve().parent.parent
START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday: weeks align with ingest windows
WEEKS = 52
# (collection, station, entities per day at simulator scale 1): the templates' stations
# and the simulator's rates (auxip's two product types share the adgs station).
COLLECTIONS = (
    ("prip-s1a-iw-raw", "s1a", 12),
    ("lta-s1a-iw-raw", "lta", 6),
    ("auxip-s1a-aux-resorb", "adgs", 4),
    ("auxip-s2b-aux-ecmwfd", "adgs", 2),
    ("cadip-s1a-mti", "mti", 4),
)
STATIONS = tuple(dict.fromkeys(station for _, station, _ in COLLECTIONS))
PER_DAY_AT_SCALE_1 = sum(rate for _, _, rate in COLLECTIONS)
# LTA products are published two days after sensing, the others within hours: a slice's
# simulator starts this much earlier so that its first week is as full as the others.
LEAD = timedelta(days=3)
# On ext4 a catalog measured ~13 KiB and ~2.9 inodes per item (its folder, its file, the
# catalogs above); these leave a margin.
BYTES_PER_ITEM = 24 * 1024
INODES_PER_ITEM = 3.5
PROGRESS = re.compile(r"ingest (\S+) (\S+)\.\.(\S+): (\d+) entities, (\d+) items written")


# ------------------------------------------------------------ peak RSS
#
# Not ru_maxrss: on Linux a child's ru_maxrss (wait4, RUSAGE_CHILDREN, even its own
# RUSAGE_SELF) starts from its parent's RSS at fork, which survives exec, so a child of a
# big parent reports the parent's size. VmHWM belongs to the address space exec made.

HWM_ENV = "RSPY_BENCH_HWM"
# Imported by every Python child through PYTHONPATH: at exit it writes its VmHWM (so that
# the peak includes its last moments, which the 0.5 s samples could miss) and how much it
# read and wrote through LocalStore: work that grows with the catalog would show there,
# free of the timing noise of a shared machine.
SITECUSTOMIZE = """import atexit, json, os

_OPS = {"reads": 0, "read_bytes": 0, "writes": 0, "write_bytes": 0, "lists": 0, "listed": 0}


def _count_store_calls():
    from rspy_batch.catalog.storage import LocalStore

    read, put, list_ = LocalStore.read, LocalStore.put, LocalStore.list

    def counted_read(self, key):
        blob = read(self, key)
        _OPS["reads"] += 1
        _OPS["read_bytes"] += len(blob.data) if blob else 0
        return blob

    def counted_put(self, key, data, **kwargs):
        _OPS["writes"] += 1
        _OPS["write_bytes"] += len(data)
        return put(self, key, data, **kwargs)

    def counted_list(self, prefix=""):
        _OPS["lists"] += 1
        for key in list_(self, prefix):
            _OPS["listed"] += 1
            yield key

    LocalStore.read, LocalStore.put, LocalStore.list = counted_read, counted_put, counted_list


def _report():
    with open("/proc/self/status") as fh:
        kib = int(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))
    with open(os.environ["HWM_ENV"], "w") as out:
        json.dump({"hwm_kib": kib, "store": _OPS}, out)


if os.environ.get("HWM_ENV"):
    _count_store_calls()
    atexit.register(_report)
""".replace("HWM_ENV", HWM_ENV)


def vm_hwm(pid: int | str = "self") -> int:
    """Peak resident set size of a process so far, in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh
                        if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def hook_env(work: Path, name: str) -> dict[str, str]:
    """Environment for a child whose VmHWM goes to ``work/<name>.hwm`` at exit."""
    hook = work / "hook"
    if not (hook / "sitecustomize.py").exists():
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, HWM_ENV: str(work / f"{name}.exit.json")}


# ------------------------------------------------------------ the simulator, in a child


def _serve(config: SimConfig, workdir: str, conn: Connection) -> None:
    """Child process: start the simulator, build every station's entities, report, serve
    until told to stop, then report this process's peak RSS."""
    sim = Simulator(config).start()
    try:
        sim.write_stations_file(Path(workdir) / "stations.yaml")
        sim.write_secrets_file(Path(workdir) / "secrets.env")
        t0 = time.perf_counter()
        counts = {sid: {name: len(recs) for name, recs in sim.app.catalogs[sid].sets().items()}
                  for sid in config.stations}
        conn.send((time.perf_counter() - t0, counts))
        conn.recv()
    finally:
        sim.stop()
        conn.send(vm_hwm())


@dataclass
class SimProcess:
    process: multiprocessing.Process
    conn: Connection
    workdir: Path
    build_s: float
    entities: dict[str, dict[str, int]]

    def stop(self) -> int:
        """Stop the simulator; its peak RSS in bytes."""
        self.conn.send("stop")
        peak = self.conn.recv()
        self.process.join(30)
        return peak


def start_simulator(start: datetime, stop: datetime, scale: float, seed: int, workdir: Path
                    ) -> SimProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    config = SimConfig(seed=seed, start=start, stop=stop, scale=scale, stations=STATIONS,
                       product_bytes=256, eopf_scale=0.0, page_cap=1000)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(config, str(workdir), child), daemon=True)
    process.start()
    first = parent.recv()
    if not isinstance(first, tuple):  # the child failed (its traceback is on stderr)
        sys.exit("the station simulator did not start")
    return SimProcess(process, parent, workdir, *first)


# ------------------------------------------------------------ one measured ingest process


@dataclass
class IngestRun:
    command: list[str]
    wall_s: float
    cpu_s: float  # user + system, from wait4
    peak_rss: int  # bytes, VmHWM at exit
    store: dict[str, int]  # LocalStore calls and bytes (SITECUSTOMIZE)
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, written, rss)
    records: list[dict] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(r["counts"].get("added", 0) for r in self.records)

    @property
    def written(self) -> int:
        return sum(r["counts"].get(k, 0) for r in self.records
                   for k in ("added", "updated", "unchanged"))

    @property
    def ingest_s(self) -> float:
        """Time inside ``ingest_window`` (records' started → finished), summed."""
        def t(s: str) -> datetime:
            return datetime.fromisoformat(s.replace("Z", "+00:00"))
        return sum((t(r["finished"]) - t(r["started"])).total_seconds() for r in self.records)


def ingest_command(catalog: Path, stations: Path, start: datetime, stop: datetime
                   ) -> list[str]:
    collections = [arg for cid, _, _ in COLLECTIONS for arg in ("--collection", cid)]
    return [sys.executable, "-m", "rspy_batch", "ingest", *collections, "--start", iso(start),
            "--stop", iso(stop), "--catalog", str(catalog), "--stations", str(stations)]


def run_ingest(catalog: Path, sim: SimProcess, start: datetime, stop: datetime,
               log: Path) -> IngestRun:
    """``rspy-batch ingest`` as a child; RSS sampled against its progress, peak VmHWM at
    exit, CPU time from wait4."""
    command = ingest_command(catalog, sim.workdir / "stations.yaml", start, stop)
    hwm = hook_env(log.parent, log.stem)
    env = {**os.environ, "RSPY_SECRETS_FILE": str(sim.workdir / "secrets.env"), **hwm}
    sampled_hwm = 0
    progress: dict[tuple[str, str], int] = {}
    samples: list[tuple[float, int, int]] = []
    with open(log, "wb") as out, open(log, "rb") as tail:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
        watched = psutil.Process(proc.pid)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            for line in tail.read().decode(errors="replace").splitlines():
                if m := PROGRESS.search(line):
                    progress[(m[1], m[2])] = int(m[5])
            try:
                rss = watched.memory_info().rss
            except psutil.Error:
                rss = 0
            sampled_hwm = max(sampled_hwm, vm_hwm(proc.pid))
            samples.append((time.perf_counter() - t0, sum(progress.values()), rss))
            time.sleep(0.5)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 3):  # 3: done, with rejected entities
        sys.exit(f"ingest failed ({proc.returncode}); log: {log}\n"
                 + log.read_text(errors="replace")[-3000:])
    at_exit = json.loads(Path(hwm[HWM_ENV]).read_text())
    return IngestRun(command, wall, usage.ru_utime + usage.ru_stime,
                     max(at_exit["hwm_kib"] * 1024, sampled_hwm), at_exit["store"], samples,
                     read_records(catalog, start, stop))


def read_records(catalog: Path, start: datetime, stop: datetime) -> list[dict]:
    """The ingest run records of ``[start, stop)`` (every collection, every week)."""
    out = []
    for cid, _, _ in COLLECTIONS:
        for s, e in split_windows(start, stop, 7):
            path = catalog / "_rspy/runs/ingest" / cid / f"{window_id(iso(s), iso(e))}.json"
            record = json.loads(path.read_bytes())
            if record["status"] != "complete":
                sys.exit(f"{path}: {record['status']}: {record.get('error')}")
            # Not the item keys: kept for every window, they would make this process big.
            out.append({k: record[k] for k in ("counts", "started", "finished")})
    return out


# ------------------------------------------------------------ disk


def disk_usage(root: Path) -> tuple[int, int, int, int]:
    """(files, directories, bytes of content, bytes allocated) under ``root``, directories
    included in the allocation."""
    files = dirs = size = blocks = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                blocks += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    dirs += 1
                    stack.append(entry.path)
                else:
                    files += 1
                    size += st.st_size
    return files, dirs, size, blocks


def check_space(path: Path, items: int) -> None:
    st = os.statvfs(path)
    free, inodes = st.f_bavail * st.f_frsize, st.f_favail
    need, need_inodes = items * BYTES_PER_ITEM, int(items * INODES_PER_ITEM)
    if free < need or (st.f_files and inodes < need_inodes):
        sys.exit(f"{path}: {free / 2**30:.1f} GiB and {inodes:,} inodes free; a catalog of "
                 f"{items:,} items needs about {need / 2**30:.1f} GiB and {need_inodes:,} "
                 f"inodes. Use --dir on a larger local disk, or fewer --items.")
    fstype = next((p.fstype for p in sorted(psutil.disk_partitions(all=True),
                                            key=lambda p: -len(p.mountpoint))
                   if str(path.resolve()).startswith(p.mountpoint)), "?")
    if fstype in ("tmpfs", "ramfs"):
        print(f"note: {path} is on {fstype}, not local disk")


# ------------------------------------------------------------ the run


def slices(weeks: int, n: int) -> list[tuple[datetime, datetime]]:
    """``weeks`` from START cut into ``n`` runs of whole weeks (the first ones longer)."""
    out, edge = [], START
    for k in range(n):
        length = weeks // n + (1 if k < weeks % n else 0)
        out.append((edge, edge + timedelta(weeks=length)))
        edge += timedelta(weeks=length)
    return out


def imports_rss() -> int:
    """Peak RSS of a process that only imports what ``rspy-batch ingest`` runs: the floor
    under every ingest figure."""
    code = ("import rspy_batch.cli, rspy_batch.ingest, tasks.ingest; "
            "print(next(line.split()[1] for line in open('/proc/self/status') "
            "if line.startswith('VmHWM:')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    return int(out.stdout) * 1024


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def rss_at(samples: list[tuple[int, int]], size: int) -> int | None:
    """The RSS sampled when the catalog first held ``size`` items (None: never)."""
    return next((rss for n, rss in samples if n >= size and rss), None)


def build(args: argparse.Namespace, work: Path, catalog: Path) -> tuple[list, list]:
    scale = args.items / (PER_DAY_AT_SCALE_1 * 7 * WEEKS)
    rows, curve = [], []  # curve: (catalog size, rss) over every sample of every slice
    size = 0
    print(f"\n== build: {args.items:,} items over {WEEKS} weeks from {START:%Y-%m-%d}, "
          f"{len(COLLECTIONS)} collections, simulator scale {scale:.1f}, "
          f"{args.slices} slices; the ingest CLI's imports alone: {mib(imports_rss())}")
    print(f"{'slice':>5} {'weeks':>17} {'sim entities':>12} {'sim build':>9} "
          f"{'added':>8} {'catalog':>9} {'wall':>7} {'items/s':>7} {'ingest peak RSS':>15} "
          f"{'RSS 10%/end':>17} {'read B/item':>11} {'sim peak':>9} {'load':>14}")
    for k, (s, e) in enumerate(slices(WEEKS, args.slices)):
        sim = start_simulator(s - LEAD, e, scale, 1000 + k, work / f"sim-{k}")
        run = run_ingest(catalog, sim, s, e, work / f"ingest-{k}.log")
        sim_peak = sim.stop()
        # RSS once a tenth of the slice was written (imports done, first windows in)
        # against its last sample: growth inside one process shows here.
        head = rss_at([(n, r) for _, n, r in run.samples], run.added // 10) or 0
        tail = next((r for _, _, r in reversed(run.samples) if r), 0)
        # Only once it has written something: before that the process is still importing.
        curve += [(size + n, rss) for _, n, rss in run.samples if n > 0]
        size += run.added
        entities = sum(sum(c.values()) for c in sim.entities.values())
        rows.append((k, s, e, run, size, sim_peak))
        print(f"{k:>5} {s:%Y-%m-%d}..{e:%m-%d} {entities:>12,} {sim.build_s:>8.1f}s "
              f"{run.added:>8,} {size:>9,} {run.wall_s:>6.0f}s {run.added / run.wall_s:>7,.0f} "
              f"{mib(run.peak_rss):>15} {mib(head):>8}/{mib(tail):>8} "
              f"{run.store['read_bytes'] / max(run.added, 1):>11,.0f} {mib(sim_peak):>9} "
              f"{load():>14}", flush=True)
    return rows, curve


def add(args: argparse.Namespace, work: Path, catalog: Path) -> list[tuple[str, IngestRun]]:
    t0 = START + timedelta(weeks=WEEKS)
    t1 = t0 + timedelta(weeks=args.repeats)
    scale = args.add / (PER_DAY_AT_SCALE_1 * 7)
    print(f"\n== add: {args.repeats} new week(s) from {t0:%Y-%m-%d}, ~{args.add:,} items "
          f"each (simulator scale {scale:.1f}), to the big catalog and to an empty one")
    sim = start_simulator(t0 - LEAD, t1, scale, 2000, work / "sim-add")
    warm = run_ingest(work / "warm-up", sim, t0, t1, work / "warm-up.log")
    print(f"  simulator warm-up (scratch catalog, untimed): {warm.added:,} items, "
          f"{warm.wall_s:.0f} s")
    shutil.rmtree(work / "warm-up")
    runs: list[tuple[str, IngestRun]] = []
    for r in range(args.repeats):
        s, e = t0 + timedelta(weeks=r), t0 + timedelta(weeks=r + 1)
        targets = [("big", catalog), ("empty", work / f"empty-{r}")]
        for name, where in targets if r % 2 == 0 else targets[::-1]:
            run = run_ingest(where, sim, s, e, work / f"add-{name}-{r}.log")
            runs.append((name, run))
            print(f"  week {s:%Y-%m-%d} into {name:>5}: {run.added:>7,} added, "
                  f"wall {run.wall_s:6.2f} s, in ingest_window {run.ingest_s:6.2f} s, "
                  f"CPU {run.cpu_s:6.2f} s, peak RSS {mib(run.peak_rss)}, load {load()}; "
                  f"{store_line(run.store)}", flush=True)
        shutil.rmtree(work / f"empty-{r}")
    sim.stop()
    return runs


def store_line(ops: dict[str, int]) -> str:
    return (f"store: {ops['reads']:,} reads ({ops['read_bytes'] / 1e6:.1f} MB), "
            f"{ops['writes']:,} writes ({ops['write_bytes'] / 1e6:.1f} MB), "
            f"{ops['lists']} lists ({ops['listed']} keys)")


def report(args: argparse.Namespace, catalog: Path, rows: list, curve: list,
           runs: list[tuple[str, IngestRun]], wall: float) -> None:
    size = rows[-1][4]
    build_wall = sum(run.wall_s for _, _, _, run, _, _ in rows)
    build_added = sum(run.added for _, _, _, run, _, _ in rows)
    peaks = [run.peak_rss for _, _, _, run, _, _ in rows]
    build_in = sum(run.ingest_s for _, _, _, run, _, _ in rows)
    t_disk = time.perf_counter()
    files, dirs, content, allocated = disk_usage(catalog)
    t_disk = time.perf_counter() - t_disk
    print(f"\n== summary ({size:,} items in the big catalog; load average now {load()})")
    print(f"  big build: {build_added:,} items in {build_wall:,.0f} s of ingest wall time: "
          f"{build_added / build_wall:,.0f} items/s ({build_added / build_in:,.0f} items/s "
          f"in ingest_window)")
    print(f"  on disk: {files:,} files, {dirs:,} directories, {content / 1e9:.2f} GB content, "
          f"{allocated / 1e9:.2f} GB allocated ({allocated / max(size, 1):,.0f} B/item; "
          f"walked in {t_disk:.0f} s)")
    print(f"  ingest peak RSS per slice: min {mib(min(peaks))}, median "
          f"{mib(statistics.median(peaks))}, max {mib(max(peaks))}; first slice "
          f"{mib(peaks[0])}, last {mib(peaks[-1])}")
    marks = [m for m in (args.items // 10, args.items * 3 // 10, args.items // 2) if m < size]
    for m in marks:
        rss = rss_at(curve, m)
        print(f"  RSS when the catalog reached {m:>9,} items: {mib(rss) if rss else '?'}")
    last = max((rss for n, rss in curve if n >= size * 0.99), default=0)
    print(f"  RSS as the catalog reached {size:>9,} items: {mib(last)}")
    big = [run for name, run in runs if name == "big"]
    empty = [run for name, run in runs if name == "empty"]

    def med(runs_: list[IngestRun], attr: str) -> float:
        return statistics.median(getattr(x, attr) for x in runs_)

    print(f"  add ~{args.add:,} items, median of {len(big)} weeks (wall | in ingest_window | "
          f"CPU | peak RSS):")
    for label, group in ((f"into the {size:,}-item catalog  ", big),
                         ("baseline: into an empty catalog", empty)):
        print(f"    {label} {med(group, 'wall_s'):7.2f} s | {med(group, 'ingest_s'):7.2f} s | "
              f"{med(group, 'cpu_s'):7.2f} s | {mib(med(group, 'peak_rss'))}")
    for attr, what in (("wall_s", "wall"), ("ingest_s", "in ingest_window"), ("cpu_s", "CPU")):
        # Each week's two runs ran back to back, under about the same load from others.
        paired = sorted(getattr(b, attr) / getattr(e, attr)
                        for b, e in zip(big, empty, strict=True))
        print(f"  ratio big / empty, {what:>16}: {med(big, attr) / med(empty, attr):.2f} "
              f"(medians); per week {statistics.median(paired):.2f} median, "
              f"{paired[0]:.2f}..{paired[-1]:.2f}")
    totals = {name: {k: sum(x.store[k] for x in group) for k in big[0].store}
              for name, group in (("big", big), ("empty", empty))}
    for name in totals:
        print(f"  {name:>5}, all {len(big)} weeks: {store_line(totals[name])}")
    print("  ratio big / empty of store work: " + ", ".join(
        f"{k} {totals['big'][k] / totals['empty'][k]:.3f}"
        for k in ("reads", "read_bytes", "writes", "write_bytes") if totals["empty"][k]))
    empty_wall = statistics.median(x.added / x.wall_s for x in empty)
    empty_in = statistics.median(x.added / x.ingest_s for x in empty)
    print(f"  build items/s / items/s into an empty catalog: wall "
          f"{build_added / build_wall / empty_wall:.2f}, in ingest_window "
          f"{build_added / build_in / empty_in:.2f} (a build process starts once per slice, "
          f"an add's once per {args.add:,} items)")
    print(f"  total wall time {wall / 60:.1f} min")
    print("\ncommands (per slice / per added week; RSPY_SECRETS_FILE=<slice dir>/secrets.env):")
    print("  " + " ".join(shorten(rows[0][3].command)))
    print("  " + " ".join(shorten(big[0].command)))


def shorten(command: list[str]) -> Iterator[str]:
    for arg in command:
        yield ".venv/bin/python" if arg == sys.executable else arg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="a directory on local disk (the catalog goes in a new folder)")
    parser.add_argument("--add", type=int, default=10_000, help="items per added week")
    parser.add_argument("--repeats", type=int, default=8, help="added weeks (each measured "
                        "into the big and into an empty catalog)")
    parser.add_argument("--slices", type=int, default=13,
                        help="simulator runs the build is cut into (whole weeks each)")
    parser.add_argument("--keep", action="store_true", help="keep the catalogs")
    args = parser.parse_args()
    if not 1 <= args.slices <= WEEKS:
        parser.error(f"--slices must be within 1..{WEEKS}")
    args.dir.mkdir(parents=True, exist_ok=True)
    check_space(args.dir, args.items + args.add * args.repeats * 2)
    work = Path(tempfile.mkdtemp(prefix="rspy-scale-", dir=args.dir))
    catalog = work / "catalog"
    print(f"work dir {work} ({os.cpu_count()} cores, load average {load()}); python "
          f"{sys.version.split()[0]}")
    t0 = time.perf_counter()
    try:
        rows, curve = build(args, work, catalog)
        runs = add(args, work, catalog)
        report(args, catalog, rows, curve, runs, time.perf_counter() - t0)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            t_rm = time.perf_counter()
            shutil.rmtree(work, ignore_errors=True)
            print(f"deleted {work} in {time.perf_counter() - t_rm:.0f} s")


if __name__ == "__main__":
    main()
