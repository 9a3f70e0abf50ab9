"""Ingest tasks: ``luigi --module tasks.ingest Ingest --collection ID --start ISO --stop ISO``.

One :class:`IngestWindow` per aligned time window (a week by default, set per template),
so a month of one collection is a handful of tasks; its completeness is the window's run
record in the catalog.
"""

from __future__ import annotations

import luigi

from rspy_batch.catalog.storage import open_store
from rspy_batch.ingest import STAGE, ingest_window
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration.targets import RunRecordTarget
from rspy_batch.settings import default_catalog, default_stations, default_templates
from rspy_batch.stations.config import load_stations
from rspy_batch.templates import get_template
from rspy_batch.windows import parse_when, split_windows


class IngestWindow(luigi.Task):
    """Ingest one window of one collection."""

    collection = luigi.Parameter()
    start = luigi.Parameter(description="ISO datetime, inclusive")
    stop = luigi.Parameter(description="ISO datetime, exclusive")
    catalog = luigi.Parameter(default=default_catalog())
    stations = luigi.Parameter(default=default_stations())
    templates = luigi.OptionalParameter(default=default_templates())
    writers = luigi.IntParameter(default=0, significant=False,
                                 description="threads writing items (0: the store's default)")

    def output(self) -> RunRecordTarget:
        return RunRecordTarget(self.catalog, STAGE, self.collection, self.start, self.stop)

    def run(self) -> None:
        ingest_window(get_template(self.collection, self.templates),
                      parse_when(self.start), parse_when(self.stop),
                      store=open_store(self.catalog), stations=load_stations(self.stations),
                      workers=self.writers or None, progress=self._progress)

    def _progress(self, entities: int, written: int) -> None:
        # Shown by luigid's web UI for the running task.
        self.set_status_message(f"{entities} entities seen, {written} items written")


class Ingest(luigi.WrapperTask):
    """Ingest ``[start, stop)`` of a collection, window by window."""

    collection = luigi.Parameter()
    start = luigi.Parameter()
    stop = luigi.Parameter()
    catalog = luigi.Parameter(default=default_catalog())
    stations = luigi.Parameter(default=default_stations())
    templates = luigi.OptionalParameter(default=default_templates())

    def requires(self) -> list[IngestWindow]:
        template = get_template(self.collection, self.templates)
        return [IngestWindow(collection=self.collection, start=iso(s), stop=iso(e),
                             catalog=self.catalog, stations=self.stations,
                             templates=self.templates)
                for s, e in split_windows(parse_when(self.start), parse_when(self.stop),
                                          template.window_days)]
