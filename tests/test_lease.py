"""Leases in the catalog store: exclusion across threads and processes, waiting and giving
up, expiry of a dead holder, take-over detection, release, listing, names, contents."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from rspy_batch.catalog.lease import (
    LEASE_PREFIX,
    LeaseBusy,
    LeaseInfo,
    LeaseLost,
    hold,
    lease_key,
    live_leases,
    read_lease,
)
from rspy_batch.catalog.storage import ANY, Blob, LocalStore, S3Store, Store
from rspy_batch.redact import register_secret

COUNTER = "counter.txt"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "catalog")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/catalogs/main")


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def bump(store: Store, pause: float) -> None:
    """A lost-update-prone increment: plain read, pause, unconditional write."""
    blob = store.read(COUNTER)
    n = int(blob.data) if blob else 0
    time.sleep(pause)
    store.put(COUNTER, str(n + 1).encode(), expect=ANY, content_type="text/plain")


def count(store: Store) -> int:
    blob = store.read(COUNTER)
    return int(blob.data) if blob else 0


def write_lease(store: Store, info: LeaseInfo) -> None:
    store.put(lease_key(info.name), info.to_bytes(), expect=ANY)


def epoch(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# --- exclusion under contention ------------------------------------------------------------

def run_threads(store: Store, *, use_lease: bool, threads: int = 4, rounds: int = 3) -> int:
    """Every round, all threads pass a barrier together and then increment the counter."""
    barrier = threading.Barrier(threads)
    inside = 0
    most_inside = 0
    guard = threading.Lock()
    errors: list[BaseException] = []

    def body() -> None:
        nonlocal inside, most_inside
        with guard:
            inside += 1
            most_inside = max(most_inside, inside)
        bump(store, 0.03)
        with guard:
            inside -= 1

    def worker() -> None:
        try:
            for _ in range(rounds):
                barrier.wait(timeout=30)
                if use_lease:
                    with hold(store, "ingest/coll/w1", ttl=30, poll=0.02):
                        body()
                else:
                    body()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not errors, errors
    if use_lease:
        assert most_inside == 1
    return count(store)


def test_threads_with_lease_lose_no_increment(store: Store) -> None:
    assert run_threads(store, use_lease=True) == 4 * 3
    info = read_lease(store, "ingest/coll/w1")
    assert info is not None and info.released and not info.live()


def test_threads_without_lease_lose_increments(store: Store) -> None:
    # The same workload unprotected: proves the counter can detect a missing lease.
    assert run_threads(store, use_lease=False) < 4 * 3


CHILD = r"""
import sys, time
from pathlib import Path
from rspy_batch.catalog.storage import ANY, open_store
from rspy_batch.catalog.lease import hold

mode, url = sys.argv[1], sys.argv[2]
store = open_store(url)
if mode == "hold":
    with hold(store, sys.argv[3], ttl=float(sys.argv[4])) as lease:
        print(lease.info.owner, flush=True)
        time.sleep(600)
else:
    go, rounds = Path(sys.argv[3]), int(sys.argv[4])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    for _ in range(rounds):
        def bump():
            blob = store.read("counter.txt")
            n = int(blob.data) if blob else 0
            time.sleep(0.03)
            store.put("counter.txt", str(n + 1).encode(), expect=ANY, content_type="text/plain")
        if mode == "lease":
            with hold(store, "process/coll/w1", ttl=30, poll=0.02):
                bump()
        else:
            bump()
"""


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("mode", ["lease", "bare"])
def test_processes_exclude_each_other(store: Store, tmp_path: Path, mode: str) -> None:
    go = tmp_path / "go"
    procs = [child(mode, store.url, str(go), "4") for _ in range(3)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()  # all start together, so the unprotected run really overlaps
        for p in procs:
            assert p.wait(60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if mode == "lease":
        assert count(store) == 3 * 4
    else:
        assert count(store) < 3 * 4


def test_one_winner_when_many_take_over_an_expired_lease(store: Store) -> None:
    write_lease(store, LeaseInfo("stage/c/w", "ghost:1:00000000", "2026-01-01T00:00:00.000Z",
                                 time.time() - 5, False))
    n = 6
    barrier = threading.Barrier(n)
    winners: list[str] = []
    busy: list[str] = []
    guard = threading.Lock()

    def worker() -> None:
        barrier.wait(timeout=30)
        try:
            with hold(store, "stage/c/w", ttl=30, wait=0) as lease:
                with guard:
                    winners.append(lease.info.owner)
                # Hold until every other contender has been refused.
                wait_until(lambda: len(busy) >= n - 1, timeout=10)
        except LeaseBusy as exc:
            with guard:
                busy.append(exc.info.owner)

    pool = [threading.Thread(target=worker) for _ in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert len(winners) == 1
    assert busy == winners * (n - 1)


# --- busy, waiting, giving up ----------------------------------------------------------

def test_wait_zero_raises_busy_naming_the_holder(store: Store) -> None:
    with hold(store, "publish/c/w", ttl=30) as held:
        before = store.read(lease_key("publish/c/w"))
        with pytest.raises(LeaseBusy) as caught, hold(store, "publish/c/w", wait=0):
            pytest.fail("acquired a held lease")
        assert caught.value.info == held.info
        message = str(caught.value)
        assert "publish/c/w" in message and held.info.owner in message
        expires = datetime.fromtimestamp(held.info.expires, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert expires in message
        assert store.read(lease_key("publish/c/w")) == before


def test_wait_n_gives_up_and_leaves_the_holder_alone(store: Store) -> None:
    seen: list[LeaseInfo] = []
    with hold(store, "process/c/w", ttl=30) as held:
        before = store.read(lease_key("process/c/w"))
        with (pytest.raises(LeaseBusy),
              hold(store, "process/c/w", wait=0.3, poll=0.05, on_wait=seen.append)):
            pytest.fail("acquired a held lease")
        assert seen == [held.info]  # once, with the holder
        assert store.read(lease_key("process/c/w")) == before
    assert not held.lost
    after = read_lease(store, "process/c/w")
    assert after is not None and after.owner == held.info.owner and after.released


def test_waiter_gets_the_lease_when_the_holder_releases(store: Store) -> None:
    seen: list[LeaseInfo] = []
    got: list[LeaseInfo] = []
    with hold(store, "ingest/c/w", ttl=30) as held:
        holder = held.info
        waiter = threading.Thread(target=lambda: got.extend(
            [_take(store, "ingest/c/w", seen)]))
        waiter.start()
        assert wait_until(lambda: bool(seen))
        assert not got  # still waiting while held
    waiter.join(30)
    assert seen == [holder]
    assert len(got) == 1 and got[0].owner != holder.owner


def _take(store: Store, name: str, seen: list[LeaseInfo]) -> LeaseInfo:
    with hold(store, name, ttl=30, poll=0.05, on_wait=seen.append) as lease:
        return lease.info


# --- expiry, take-over, lost leases ------------------------------------------------------

def test_expired_lease_file_is_taken_over(store: Store) -> None:
    dead = LeaseInfo("ingest/c/w", "ghost:1:00000000", "2026-01-01T00:00:00.000Z",
                     time.time() - 1, False)
    write_lease(store, dead)
    with hold(store, "ingest/c/w", ttl=30, wait=0) as lease:
        assert lease.info.owner != dead.owner
        assert read_lease(store, "ingest/c/w") == lease.info


def test_unreadable_lease_file_is_taken_over(store: Store) -> None:
    # A garbled file must not block the window for ever.
    store.put(lease_key("ingest/c/w"), b"{not json", expect=ANY)
    assert read_lease(store, "ingest/c/w") is None
    with hold(store, "ingest/c/w", ttl=30, wait=0) as lease:
        assert read_lease(store, "ingest/c/w") == lease.info


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"poll": 0}, {"wait": -1}])
def test_hold_refuses_bad_parameters(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError), hold(LocalStore(tmp_path), "x", **kwargs):
        pass


def test_killed_holder_on_this_host_is_taken_over_at_once(store: Store) -> None:
    # A process holding with a long ttl is SIGKILLed: a re-run on the same machine sees
    # its process is gone and need not wait for the lease to expire.
    proc = child("hold", store.url, "process/c/w", "600")
    try:
        assert proc.stdout is not None
        dead_owner = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    dead = read_lease(store, "process/c/w")
    assert dead is not None and dead.owner == dead_owner and dead.live()
    with hold(store, "process/c/w", ttl=30, wait=0) as lease:
        assert lease.info.owner != dead_owner


def test_holder_on_another_host_is_taken_over_only_after_expiry(store: Store) -> None:
    # Real time: another machine's holder cannot be checked, only outlived.
    now = time.time()
    other = LeaseInfo(name="process/c/w", owner="elsewhere:1:deadbeef",
                      acquired="2026-01-01T00:00:00.000Z", expires=now + 1.5, released=False)
    store.put(lease_key("process/c/w"), other.to_bytes())
    with pytest.raises(LeaseBusy), hold(store, "process/c/w", ttl=30, wait=0):
        pass
    with hold(store, "process/c/w", ttl=30, wait=20, poll=0.05) as lease:
        assert lease.info.owner != other.owner
        assert epoch(lease.info.acquired) >= other.expires - 0.001


def test_lost_lease_found_by_the_heartbeat(store: Store) -> None:
    key = lease_key("process/c/w")
    with ExitStack() as stack:
        first_cm = hold(store, "process/c/w", ttl=0.6)  # renews every 0.2 s
        first = first_cm.__enter__()
        # A taker whose clock runs a minute ahead sees the lease as expired.
        taker = stack.enter_context(hold(store, "process/c/w", ttl=30, wait=0,
                                         clock=lambda: time.time() + 60))
        assert taker.info.owner != first.info.owner
        assert wait_until(lambda: first.lost)
        before = store.read(key)
        with pytest.raises(LeaseLost) as caught:
            first_cm.__exit__(None, None, None)
        assert caught.value.taker is not None
        assert caught.value.taker.owner == taker.info.owner
        assert first.info.owner in str(caught.value)
        assert store.read(key) == before  # the lost holder did not write on release
        current = read_lease(store, "process/c/w")
        assert current is not None and current.owner == taker.info.owner
        assert not current.released
    after = read_lease(store, "process/c/w")
    assert after is not None and after.owner == taker.info.owner and after.released


def test_lost_lease_found_on_release(store: Store) -> None:
    # ttl 30: no heartbeat before the body ends, so the release's swap is what finds out.
    key = lease_key("stage/c/w")
    with ExitStack() as stack:
        with pytest.raises(LeaseLost), hold(store, "stage/c/w", ttl=30) as first:
            stack.enter_context(hold(store, "stage/c/w", ttl=30, wait=0,
                                     clock=lambda: time.time() + 60))
            before = store.read(key)
        assert first.lost
        assert store.read(key) == before


def test_body_exception_wins_over_a_lost_lease(store: Store) -> None:
    with ExitStack() as stack:
        with pytest.raises(KeyError), hold(store, "stage/c/w", ttl=30) as first:
            taker = stack.enter_context(hold(store, "stage/c/w", ttl=30, wait=0,
                                             clock=lambda: time.time() + 60))
            raise KeyError("body")
        assert first.lost
        assert read_lease(store, "stage/c/w") == taker.info


def test_heartbeat_keeps_a_short_lease_alive(store: Store) -> None:
    # Real time: the body outlives ttl (0.6 s) twice over; renewals keep the lease live.
    with hold(store, "ingest/c/w", ttl=0.6) as lease:
        first = read_lease(store, "ingest/c/w")
        assert first is not None
        assert wait_until(lambda: time.time() > first.expires + 0.6)
        now = read_lease(store, "ingest/c/w")
        assert now is not None and now.owner == first.owner and now.live()
        assert now.expires > first.expires
        with pytest.raises(LeaseBusy), hold(store, "ingest/c/w", wait=0):
            pass
    assert not lease.lost


class FlakyStore(Store):
    """Delegates to a real store; the first lease renewal fails in transport, after (or
    before) the write reached the store."""

    def __init__(self, inner: Store, *, landed: bool) -> None:
        self.inner, self.url, self.landed = inner, inner.url, landed
        self.failures = 0
        self.puts = 0

    def read(self, key: str) -> Blob | None:
        return self.inner.read(key)

    def put(self, key: str, data: bytes, *, expect: Any = ANY,
            content_type: str = "application/json") -> str:
        self.puts += 1
        if self.puts == 2 and key.startswith(LEASE_PREFIX):  # 1: acquire, 2: renewal
            self.failures += 1
            if self.landed:
                self.inner.put(key, data, expect=expect, content_type=content_type)
            raise ConnectionError("connection reset by peer")
        return self.inner.put(key, data, expect=expect, content_type=content_type)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


@pytest.mark.parametrize("landed", [True, False])
def test_transport_error_in_renewal_is_retried_not_lost(store: Store, landed: bool) -> None:
    flaky = FlakyStore(store, landed=landed)
    with hold(flaky, "process/c/w", ttl=0.3) as lease:
        assert wait_until(lambda: flaky.puts >= 4)  # the failure, then renewals again
        assert not lease.lost
        current = read_lease(store, "process/c/w")
        assert current is not None and current.owner == lease.info.owner and current.live()
    assert flaky.failures == 1
    after = read_lease(store, "process/c/w")
    assert after is not None and after.released and after.owner == lease.info.owner


# --- release, reacquire ------------------------------------------------------------------

def test_release_after_body_and_after_exception(store: Store) -> None:
    with hold(store, "publish/c/w", ttl=30, owner="host-a:1:0000000a") as lease:
        inside = read_lease(store, "publish/c/w")
        assert inside == lease.info and inside.live()
    done = read_lease(store, "publish/c/w")
    assert done is not None and done.released and not done.live()
    assert done.owner == "host-a:1:0000000a"

    with (pytest.raises(RuntimeError, match="boom"),
          hold(store, "publish/c/w", ttl=30, wait=0, owner="host-a:1:0000000a")):
        raise RuntimeError("boom")
    failed = read_lease(store, "publish/c/w")
    assert failed is not None and failed.released

    with hold(store, "publish/c/w", ttl=30, wait=0, owner="host-b:2:0000000b") as other:
        assert read_lease(store, "publish/c/w") == other.info
    assert read_lease(store, "publish/c/w").owner == "host-b:2:0000000b"


# --- listing, names, contents ------------------------------------------------------------

def test_live_leases_lists_only_live_ones(store: Store) -> None:
    now = time.time()
    write_lease(store, LeaseInfo("process/b/w1", "ghost:1:00000000", "x", now - 1, False))
    write_lease(store, LeaseInfo("process/a/w2", "ghost:1:00000000", "x", now + 99, True))
    with ExitStack() as stack:
        a1 = stack.enter_context(hold(store, "process/a/w1", ttl=30))
        s1 = stack.enter_context(hold(store, "stage/a/w1", ttl=30))
        assert live_leases(store) == [a1.info, s1.info]
        assert live_leases(store, "process/") == [a1.info]
        assert live_leases(store, "process/a") == [a1.info]
        assert live_leases(store, "proc") == [a1.info]
        assert live_leases(store, "publish/") == []
        assert live_leases(store, now=now + 1000) == []
    assert live_leases(store) == []


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/", "..", "a/../b", "a/./b", "a b",
                                  "a/b\\c", "über"])
def test_lease_key_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError):
        lease_key(name)


def test_lease_key_layout() -> None:
    assert lease_key("ingest/cadip-mti/2026-01-01T00-00-00_P1D") == (
        "_rspy/leases/ingest/cadip-mti/2026-01-01T00-00-00_P1D.json")
    assert lease_key("a.b_c-d") == f"{LEASE_PREFIX}/a.b_c-d.json"


def test_file_holds_no_secret(store: Store) -> None:
    secret = "lease-test-secret-7f3a9c"
    register_secret(secret)
    with hold(store, "ingest/c/w", ttl=30) as lease:
        data = store.read(lease_key("ingest/c/w")).data
    host, pid, tag = lease.info.owner.split(":")
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert re.fullmatch(r"[0-9a-f]{8}", tag)
    raw = orjson.loads(data)
    assert list(raw) == sorted(raw) == ["acquired", "expires", "name", "owner", "released"]
    for value in (os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_ACCESS_KEY_ID")):
        if value:
            assert value.encode() not in data

    with hold(store, "ingest/c/w", ttl=30, owner=f"me:{secret}") as lease:
        data = store.read(lease_key("ingest/c/w")).data
    assert secret.encode() not in data and secret not in lease.info.owner
