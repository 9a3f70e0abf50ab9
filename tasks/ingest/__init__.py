"""Ingest tasks: ``luigi --module tasks.ingest Ingest --collection ID --start ISO --stop ISO``.

One :class:`IngestWindow` per aligned time window (a week by default, set per template),
so a month of one collection is a handful of tasks; its completeness is the window's run
record in the catalog.
"""

from __future__ import annotations

import luigi

from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.ingest import STAGE, ingest_window
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration.leases import window_lease
from rspy_batch.orchestration.targets import RunRecordTarget
from rspy_batch.stations.config import load_stations
from rspy_batch.windows import split_windows
from tasks.lease import Leased
from tasks.params import CollectionWindow


class IngestWindow(Leased, CollectionWindow, luigi.Task):
    """Ingest one window of one collection."""

    writers = luigi.IntParameter(default=0, significant=False,
                                 description="threads writing items (0: the store's default)")

    def output(self) -> RunRecordTarget:
        return RunRecordTarget(self.catalog, STAGE, self.collection, self.start, self.stop)

    def lease(self) -> tuple[Store, str]:
        return open_store(self.catalog), window_lease(STAGE, self.collection, self.start,
                                                      self.stop)

    def work(self) -> None:
        ingest_window(self.template(), *self.window(), store=open_store(self.catalog),
                      stations=load_stations(self.stations), workers=self.writers or None,
                      progress=self._progress)

    def _progress(self, entities: int, written: int) -> None:
        # Shown by luigid's web UI for the running task.
        self.set_status_message(f"{entities} entities seen, {written} items written")


class Ingest(CollectionWindow, luigi.WrapperTask):
    """Ingest ``[start, stop)`` of a collection, window by window."""

    def requires(self) -> list[IngestWindow]:
        params = self.window_params()
        return [IngestWindow(**{**params, "start": iso(s), "stop": iso(e)})
                for s, e in split_windows(*self.window(), self.template().window_days)]
