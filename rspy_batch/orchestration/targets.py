"""Luigi targets whose existence is read from the catalog, the system of record."""

from __future__ import annotations

import luigi

from rspy_batch.catalog.records import is_complete
from rspy_batch.catalog.storage import open_store


class RunRecordTarget(luigi.Target):
    """Exists when the run record of (stage, collection, window) says ``complete``."""

    def __init__(self, catalog: str, stage: str, collection: str, start: str, stop: str) -> None:
        self.catalog, self.stage, self.collection = catalog, stage, collection
        self.start, self.stop = start, stop

    def exists(self) -> bool:
        return is_complete(open_store(self.catalog), self.stage, self.collection,
                           self.start, self.stop)
