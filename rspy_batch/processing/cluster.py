"""The Dask cluster processing runs on: a LocalCluster by default, or a given scheduler."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster


@contextmanager
def dask_client(address: str | None = None, *, workers: int = 1,
                threads_per_worker: int | None = None) -> Iterator[Client]:
    """A client on ``address``, or on a loopback LocalCluster for the duration.

    The local cluster uses threads (``processes=False``): Luigi and the CLI call this from
    any module, and process workers would need a ``__main__`` guard in the caller. Its
    scheduler is in-process (``inproc://``); the scheduler's and worker's HTTP servers
    cannot be switched off in distributed 2026.8 (``dashboard_address=None`` still binds
    0.0.0.0:8787), so they are pinned to loopback on ephemeral ports.
    """
    if address:
        with Client(address, set_as_default=True) as client:
            yield client
        return
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=False,
                      dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                      scheduler_kwargs={"dashboard": False}) as cluster, \
            Client(cluster, set_as_default=True) as client:
        yield client
