"""Leases: a lock with an expiry, kept as one small JSON object in the catalog's own store.

Two overlapping runs (two cron runs, two Luigi workers, two machines each with its own
scheduler) may start the same per-window task at once. Catalog documents survive that
(compare-and-swap), but the work would be done twice and two writers of one Zarr product
directory can clobber each other. A task therefore holds the lease named after its window
(``_rspy/leases/<name>.json``) while it runs.

Protocol, on nothing but the store's conditional writes (S3 ``If-None-Match`` /
``If-Match``; local ``link()`` / ``flock``):

- *Acquire*: absent → create it (``expect=None``); present but released or expired →
  replace that version (``expect=<version>``). Losing either race means someone else got
  it: re-read and decide again. Held and live → wait, polling, or give up.
- *Renew*: a daemon thread moves ``expires`` to ``now + ttl`` every ``ttl / 3`` by
  compare-and-swap on the version it last wrote. A failed swap means another holder took
  the lease over after it expired (this process was stopped, or its clock or network
  stalled for longer than ``ttl``): the lease is *lost*, and leaving the ``with`` raises
  :class:`LeaseLost` so the work is not reported as done. A network error is retried on
  the next beat.
- *Release*: a compare-and-swap that marks the lease ``released``; it never overwrites a
  lease someone else holds. Nothing is ever deleted, because S3 deletes are not
  conditional: a delete could remove a lease just taken over by another holder.

A write whose response was lost may still have landed (boto3 retries such a request and
then sees its own write as a conflict), so after a conflict the current object is compared
with the bytes we sent: equal bytes are our own write and we keep going.

Clocks: expiry is wall-clock epoch time compared across machines, so every machine taking
leases in one store needs an NTP-synchronised clock, and ``ttl`` must be much larger than
any plausible skew between them (the default, 300 s, tolerates minutes of it). A holder
whose clock runs behind may see a lease as live for longer than its holder meant; one
running ahead may take over a lease early, which the old holder then detects as lost.
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from rspy_batch.catalog.layout import format_datetime
from rspy_batch.catalog.storage import Blob, Store
from rspy_batch.errors import ConflictError, RspyError
from rspy_batch.redact import redact

log = logging.getLogger(__name__)

LEASE_PREFIX = "_rspy/leases"

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_RELEASE_ATTEMPTS = 3
Clock = Callable[[], float]


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease file says."""

    name: str
    owner: str
    acquired: str
    expires: float
    released: bool

    def live(self, now: float | None = None) -> bool:
        """Held: not released and not expired at ``now`` (epoch seconds; default: now)."""
        return not self.released and self.expires > (time.time() if now is None else now)

    def to_bytes(self) -> bytes:
        data = {"name": self.name, "owner": self.owner, "acquired": self.acquired,
                "expires": self.expires, "released": self.released}
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


class LeaseBusy(RspyError):
    """The lease is held by someone else (and we were told not to wait, or not longer)."""

    def __init__(self, info: LeaseInfo) -> None:
        super().__init__(f"lease {info.name} is held by {info.owner} until "
                         f"{_iso(info.expires)}")
        self.info = info


class LeaseLost(RspyError):
    """Another holder took the lease over while we held it (after it expired)."""

    def __init__(self, info: LeaseInfo, taker: LeaseInfo | None) -> None:
        by = f" by {taker.owner}" if taker is not None else ""
        super().__init__(f"lease {info.name} held by {info.owner} was taken over{by} after "
                         "it expired; the work done under it may have been duplicated and "
                         "is not reported as done")
        self.info = info
        self.taker = taker


def lease_key(name: str) -> str:
    """The store key of the lease ``name`` (``/``-separated safe segments)."""
    _check_name(name)
    return f"{LEASE_PREFIX}/{name}.json"


def read_lease(store: Store, name: str) -> LeaseInfo | None:
    """The lease as stored; None when there is none (or it cannot be parsed)."""
    blob = store.read(lease_key(name))
    return None if blob is None else _parse(blob.data)


def live_leases(store: Store, prefix: str = "", *, now: float | None = None) -> list[LeaseInfo]:
    """Every live lease whose name starts with ``prefix``, sorted by name."""
    # Only the directory part narrows the listing: a name prefix may end mid-segment.
    head = prefix.rpartition("/")[0]
    if head:
        _check_name(head)
    where = f"{LEASE_PREFIX}/{head}" if head else LEASE_PREFIX
    keys = [k for k in store.list(where) if k.endswith(".json")]
    at = time.time() if now is None else now
    with ThreadPoolExecutor(max(1, min(store.write_concurrency, len(keys) or 1))) as pool:
        blobs = list(pool.map(store.read, keys))
    infos = (_parse(b.data) for b in blobs if b is not None)
    return sorted((i for i in infos if i is not None and i.name.startswith(prefix)
                   and i.live(at)), key=lambda i: i.name)


def default_owner() -> str:
    """``<hostname>:<pid>:<8 hex>``: tells an operator where the holder runs, nothing more."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """A held lease (what :func:`hold` yields). ``lost`` turns true if it was taken over."""

    def __init__(self, store: Store, info: LeaseInfo, version: str, *, ttl: float,
                 clock: Clock) -> None:
        self.info = info
        self.lost = False
        self.taker: LeaseInfo | None = None
        self._store = store
        self._key = lease_key(info.name)
        self._version = version
        self._ttl = ttl
        self._clock = clock
        self._unsure: bytes | None = None  # sent, outcome unknown (transport error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease {info.name}",
                                         daemon=True)

    def _start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            renewed = replace(self.info, expires=self._clock() + self._ttl)
            try:
                written = self._swap(renewed.to_bytes())
            except Exception as exc:  # transport trouble: the next beat retries
                log.warning("lease %s: renewal failed (%s), retrying in %.3g s",
                            self.info.name, redact(str(exc)), self._ttl / 3)
                continue
            if not written:
                self._mark_lost()
                return
            self.info = renewed

    def _swap(self, data: bytes) -> bool:
        """Compare-and-swap ``data`` over our last version; False if someone else holds it."""
        for _ in range(2):
            try:
                self._version = self._store.put(self._key, data, expect=self._version)
            except ConflictError:
                current = self._store.read(self._key)
                if current is not None and current.data == data:
                    self._version, self._unsure = current.version, None
                    return True
                if current is not None and current.data == self._unsure:
                    # An earlier write we thought failed did land: swap over it now.
                    self._version, self._unsure = current.version, None
                    continue
                self.taker = None if current is None else _parse(current.data)
                return False
            except Exception:
                self._unsure = data
                raise
            self._unsure = None
            return True
        return False

    def _mark_lost(self) -> None:
        self.lost = True
        holder = self.taker.owner if self.taker is not None else "nobody (file gone)"
        log.warning("lease %s was taken over by %s after it expired; stopped renewing",
                    self.info.name, holder)

    def _release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.lost:
            return
        released = replace(self.info, released=True,
                           expires=min(self.info.expires, self._clock()))
        for attempt in range(1, _RELEASE_ATTEMPTS + 1):
            try:
                written = self._swap(released.to_bytes())
            except Exception as exc:  # it expires by itself if this keeps failing
                if attempt == _RELEASE_ATTEMPTS:
                    log.warning("lease %s: release failed (%s); it expires at %s",
                                self.info.name, redact(str(exc)), _iso(self.info.expires))
                    return
                time.sleep(0.2 * attempt)
                continue
            if written:
                self.info = released
            else:
                self._mark_lost()
            return


@contextmanager
def hold(store: Store, name: str, *, ttl: float = 300.0, wait: float | None = None,
         poll: float = 1.0, owner: str | None = None,
         on_wait: Callable[[LeaseInfo], None] | None = None,
         clock: Clock = time.time) -> Iterator[Lease]:
    """Hold the lease ``name`` for the body.

    ``wait=None``: wait as long as another live holder keeps it (it expires if that holder
    dies); ``wait=0``: raise :class:`LeaseBusy` at once if held; ``wait=N``: give up with
    :class:`LeaseBusy` after about N seconds. ``on_wait`` is called once, with the holder's
    lease, when we start waiting. ``clock`` gives epoch seconds (for expiry; tests).

    The lease is released when the body ends, also on an exception, which is re-raised.
    A body that completes after the lease was taken over raises :class:`LeaseLost`.
    """
    if ttl <= 0 or poll <= 0 or (wait is not None and wait < 0):
        raise ValueError(f"lease {name}: ttl and poll must be > 0, wait >= 0 or None")
    lease = _acquire(store, name, ttl=ttl, wait=wait, poll=poll,
                     owner=redact(owner or default_owner()), on_wait=on_wait, clock=clock)
    lease._start()
    try:
        yield lease
    except BaseException:
        lease._release()
        raise
    lease._release()
    if lease.lost:
        raise LeaseLost(lease.info, lease.taker)


def _acquire(store: Store, name: str, *, ttl: float, wait: float | None, poll: float,
             owner: str, on_wait: Callable[[LeaseInfo], None] | None,
             clock: Clock) -> Lease:
    key = lease_key(name)
    deadline = None if wait is None else time.monotonic() + wait
    waiting = False
    while True:
        blob = store.read(key)
        current = None if blob is None else _parse(blob.data)
        now = clock()
        if current is None or not current.live(now) or _holder_died_here(current):
            mine = LeaseInfo(name=name, owner=owner, acquired=_iso(now), expires=now + ttl,
                             released=False)
            version = _create(store, key, mine.to_bytes(), blob)
            if version is not None:
                log.debug("lease %s acquired by %s", name, owner)
                return Lease(store, mine, version, ttl=ttl, clock=clock)
            continue  # someone else won the race: look again
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise LeaseBusy(current)
        if not waiting:
            waiting = True
            if on_wait is not None:
                on_wait(current)
        # Jitter keeps several waiters from polling (and racing) in lockstep.
        step = poll * random.uniform(0.75, 1.25)
        time.sleep(step if left is None else min(step, left))


def _holder_died_here(info: LeaseInfo) -> bool:
    """True when the holder ran on this host and its process is gone (a crashed or killed
    run re-run on the same machine need not wait for the lease to expire)."""
    host, _, rest = info.owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's: not ours to judge
        return False
    return False


def _create(store: Store, key: str, data: bytes, old: Blob | None) -> str | None:
    """Write our lease over ``old`` (absent, released, expired); its version, or None if
    another writer got there first."""
    try:
        return store.put(key, data, expect=None if old is None else old.version)
    except ConflictError:
        pass
    except Exception:
        # The write may have landed before the connection broke: if so it is ours.
        current = store.read(key)
        if current is not None and current.data == data:
            return current.version
        raise
    current = store.read(key)
    return current.version if current is not None and current.data == data else None


def _check_name(name: str) -> None:
    parts = name.split("/")
    if not name or any(p in (".", "..") or not _SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"invalid lease name {name!r}: '/'-separated segments of "
                         "[A-Za-z0-9._-], no '.' or '..'")


def _parse(data: bytes) -> LeaseInfo | None:
    # An unreadable lease is treated as free (and replaced), never as held for ever.
    try:
        raw: Any = orjson.loads(data)
        return LeaseInfo(name=str(raw["name"]), owner=str(raw["owner"]),
                         acquired=str(raw["acquired"]), expires=float(raw["expires"]),
                         released=bool(raw["released"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("unreadable lease file ignored: %s", redact(repr(data[:80])))
        return None


def _iso(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC))
