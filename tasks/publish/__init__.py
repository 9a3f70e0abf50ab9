"""Publish tasks: ``luigi --module tasks.publish Publish --to DIR_OR_S3 [--public-url URL]``.

:class:`PublishCollection` publishes one collection (over a window, or all of it) and is
complete when every item of it is published in its current form and the collection is
linked from its parent, read from the destination's manifests; a processed collection
requires the station collections, whose items its ``derived_from`` links point to.
:class:`Publish` is one such task per collection the publish configuration selects.
"""

from __future__ import annotations

import luigi

from rspy_batch.publish.config import load_config
from rspy_batch.publish.publication import make_publication
from rspy_batch.publish.run import Publication, Target, pending, plan_targets, publish
from rspy_batch.settings import default_catalog, default_staging, default_stations
from rspy_batch.windows import parse_when


class PublishParameters:
    catalog = luigi.Parameter(default=default_catalog())
    to = luigi.Parameter(description="destination: a directory or s3://bucket/prefix")
    public_url = luigi.OptionalParameter(default=None,
                                         description="URL the destination is served at")
    publish_config = luigi.OptionalParameter(default=None, description="publish YAML")
    staging = luigi.Parameter(default=default_staging(), significant=False)
    stations = luigi.Parameter(default=default_stations(), significant=False)
    start = luigi.OptionalParameter(default=None, description="ISO datetime (default: all)")
    stop = luigi.OptionalParameter(default=None, description="ISO datetime, exclusive")

    def publication(self) -> Publication:
        return make_publication(self.catalog, self.to, config=load_config(self.publish_config),
                                public_url=self.public_url, staging=self.staging,
                                stations=self.stations)

    def window(self) -> dict:
        return {"start": parse_when(self.start) if self.start else None,
                "stop": parse_when(self.stop) if self.stop else None}

    def publish_params(self) -> dict:
        return {"catalog": self.catalog, "to": self.to, "public_url": self.public_url,
                "publish_config": self.publish_config, "staging": self.staging,
                "stations": self.stations, "start": self.start, "stop": self.stop}


class PublishCollection(PublishParameters, luigi.Task):
    """Publish one collection of the working catalog."""

    collection = luigi.Parameter()

    def _targets(self) -> tuple[Publication, list[Target], Target]:
        pub = self.publication()
        targets = plan_targets(pub.source, pub.config)
        target = next((t for t in targets if t.collection_id == self.collection), None)
        if target is None:
            raise ValueError(f"{self.collection} is not selected by the publish config")
        return pub, targets, target

    def requires(self) -> list[PublishCollection]:
        # A processed collection's derived_from links are written only to input items
        # already published, so the station collections go first (as in run.publish).
        _pub, targets, target = self._targets()
        if not target.processed:
            return []
        return [PublishCollection(**self.publish_params(), collection=t.collection_id)
                for t in targets if not t.processed]

    def complete(self) -> bool:
        pub, targets, target = self._targets()
        return pending(pub, targets, target, **self.window()) == 0

    def run(self) -> None:
        pub, targets, target = self._targets()
        publish(pub, [target], **self.window(),
                progress=lambda _cid, done, total: self.set_progress_percentage(
                    100 * done // max(total, 1)))


class Publish(PublishParameters, luigi.WrapperTask):
    """Publish every collection the publish configuration selects."""

    def requires(self) -> list[PublishCollection]:
        pub = self.publication()
        return [PublishCollection(**self.publish_params(), collection=t.collection_id)
                for t in plan_targets(pub.source, pub.config)]
