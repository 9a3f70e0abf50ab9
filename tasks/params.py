"""Parameters every per-window task shares, in one place."""

from __future__ import annotations

import luigi

from rspy_batch.settings import default_catalog, default_stations, default_templates
from rspy_batch.templates import CollectionTemplate, get_template
from rspy_batch.windows import parse_when


class CollectionWindow:
    """One collection over ``[start, stop)``, with where its catalog and stations are."""

    collection = luigi.Parameter()
    start = luigi.Parameter(description="ISO datetime, inclusive")
    stop = luigi.Parameter(description="ISO datetime, exclusive")
    catalog = luigi.Parameter(default=default_catalog())
    stations = luigi.Parameter(default=default_stations())
    templates = luigi.OptionalParameter(default=default_templates())

    def template(self) -> CollectionTemplate:
        return get_template(self.collection, self.templates)

    def window(self) -> tuple:
        return parse_when(self.start), parse_when(self.stop)

    def window_params(self) -> dict[str, str | None]:
        return {"collection": self.collection, "start": self.start, "stop": self.stop,
                "catalog": self.catalog, "stations": self.stations,
                "templates": self.templates}
