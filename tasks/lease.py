"""Per-window leases: two runs (two cron jobs, two machines, each with its own scheduler)
never work on the same window at once.

``luigid`` already keeps one task id to one worker, but only among the workers that share
it; the lease lives in the catalog's own store, so it also holds between runs that do not
share a scheduler. The second run waits for the first to finish the window (or for the
first's lease to expire, if it died), then finds the window complete and moves on.
"""

from __future__ import annotations

import logging

import luigi

from rspy_batch.catalog.lease import LeaseInfo, hold
from rspy_batch.catalog.storage import Store

log = logging.getLogger("rspy_batch.tasks")


class Leased:
    """Mix-in for a task whose ``work()`` must run in one place at a time.

    Subclasses give ``lease()`` (the store the lease lives in and its name) and
    ``work()``; ``run()`` holds the lease, and works unless it had to wait for another
    holder that finished the window meanwhile.
    """

    lease_ttl = luigi.FloatParameter(default=300.0, significant=False,
                                     description="seconds a dead holder keeps the window")

    def lease(self) -> tuple[Store, str]:
        raise NotImplementedError

    def work(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        store, name = self.lease()
        waited: list[LeaseInfo] = []

        def waiting(info: LeaseInfo) -> None:
            waited.append(info)
            log.warning("%s is held by %s until %s; waiting", info.name, info.owner,
                        info.expires)
            self.set_status_message(f"waiting for {info.owner}")  # type: ignore[attr-defined]

        with hold(store, name, ttl=self.lease_ttl, on_wait=waiting):
            # Only after waiting: the run we waited for may have done the work. (Without
            # a wait, run() always works, so that even an empty window leaves its record.)
            if waited and self.complete():  # type: ignore[attr-defined]
                log.info("%s: done by another run while we waited", name)
                return
            self.work()
