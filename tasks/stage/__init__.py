"""Stage tasks: ``luigi --module tasks.stage Stage --collection ID --start ISO --stop ISO``.

:class:`StageWindow` requires the :class:`~tasks.ingest.IngestWindow` of the same window
and is complete when every item of the window is staged, read from the catalog.
"""

from __future__ import annotations

import luigi

from rspy_batch.catalog.storage import open_store
from rspy_batch.mapping.common import iso
from rspy_batch.settings import (
    default_catalog,
    default_staging,
    default_stations,
    default_templates,
)
from rspy_batch.staging.sinks import open_sink
from rspy_batch.staging.stage import stage_window, window_staged
from rspy_batch.stations.config import load_stations
from rspy_batch.templates import get_template
from rspy_batch.windows import parse_when, split_windows
from tasks.ingest import IngestWindow


class StageWindow(luigi.Task):
    """Stage every unstaged asset of one window of one collection."""

    collection = luigi.Parameter()
    start = luigi.Parameter()
    stop = luigi.Parameter()
    catalog = luigi.Parameter(default=default_catalog())
    stations = luigi.Parameter(default=default_stations())
    templates = luigi.OptionalParameter(default=default_templates())
    staging = luigi.Parameter(default=default_staging())
    transfers = luigi.IntParameter(default=4, significant=False,
                                   description="files copied at once")
    order_timeout = luigi.FloatParameter(default=600.0, significant=False)

    def requires(self) -> IngestWindow:
        return IngestWindow(collection=self.collection, start=self.start, stop=self.stop,
                            catalog=self.catalog, stations=self.stations,
                            templates=self.templates)

    def complete(self) -> bool:
        return window_staged(open_store(self.catalog), self.collection,
                             parse_when(self.start), parse_when(self.stop))

    def run(self) -> None:
        stage_window(get_template(self.collection, self.templates), parse_when(self.start),
                     parse_when(self.stop), store=open_store(self.catalog),
                     stations=load_stations(self.stations), sink=open_sink(self.staging),
                     workers=self.transfers, order_timeout=self.order_timeout,
                     progress=lambda done, total: self.set_progress_percentage(
                         100 * done // max(total, 1)))


class Stage(luigi.WrapperTask):
    """Stage ``[start, stop)`` of a collection, window by window (ingesting first)."""

    collection = luigi.Parameter()
    start = luigi.Parameter()
    stop = luigi.Parameter()
    catalog = luigi.Parameter(default=default_catalog())
    stations = luigi.Parameter(default=default_stations())
    templates = luigi.OptionalParameter(default=default_templates())
    staging = luigi.Parameter(default=default_staging())
    transfers = luigi.IntParameter(default=4, significant=False)
    order_timeout = luigi.FloatParameter(default=600.0, significant=False)

    def requires(self) -> list[StageWindow]:
        template = get_template(self.collection, self.templates)
        return [StageWindow(collection=self.collection, start=iso(s), stop=iso(e),
                            catalog=self.catalog, stations=self.stations,
                            templates=self.templates, staging=self.staging,
                            transfers=self.transfers, order_timeout=self.order_timeout)
                for s, e in split_windows(parse_when(self.start), parse_when(self.stop),
                                          template.window_days)]
