"""Stage tasks: ``luigi --module tasks.stage Stage --collection ID --start ISO --stop ISO``.

:class:`StageWindow` requires the :class:`~tasks.ingest.IngestWindow` of the same window
and is complete when every item that window ingested is staged, read from the catalog.
"""

from __future__ import annotations

import luigi

from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration.leases import window_lease
from rspy_batch.settings import default_staging
from rspy_batch.staging.sinks import open_sink
from rspy_batch.staging.stage import STAGE, stage_window, window_staged
from rspy_batch.stations.config import load_stations
from rspy_batch.windows import split_windows
from tasks.ingest import IngestWindow
from tasks.lease import Leased
from tasks.params import CollectionWindow


class StagingParameters:
    staging = luigi.Parameter(default=default_staging())
    transfers = luigi.IntParameter(default=4, significant=False,
                                   description="files copied at once")
    order_timeout = luigi.FloatParameter(default=600.0, significant=False,
                                         description="seconds to wait for an LTA order")


class StageWindow(Leased, StagingParameters, CollectionWindow, luigi.Task):
    """Stage every unstaged asset of one window of one collection."""

    def requires(self) -> IngestWindow:
        return IngestWindow(**self.window_params())

    def complete(self) -> bool:
        return window_staged(open_store(self.catalog), self.collection, *self.window())

    def lease(self) -> tuple[Store, str]:
        return open_store(self.catalog), window_lease(STAGE, self.collection, self.start,
                                                      self.stop)

    def work(self) -> None:
        stage_window(self.template(), *self.window(), store=open_store(self.catalog),
                     stations=load_stations(self.stations), sink=open_sink(self.staging),
                     workers=self.transfers, order_timeout=self.order_timeout,
                     progress=lambda done, total: self.set_progress_percentage(
                         100 * done // max(total, 1)))


class Stage(StagingParameters, CollectionWindow, luigi.WrapperTask):
    """Stage ``[start, stop)`` of a collection, window by window (ingesting first)."""

    def requires(self) -> list[StageWindow]:
        params = {**self.window_params(), "staging": self.staging,
                  "transfers": self.transfers, "order_timeout": self.order_timeout}
        return [StageWindow(**{**params, "start": iso(s), "stop": iso(e)})
                for s, e in split_windows(*self.window(), self.template().window_days)]
