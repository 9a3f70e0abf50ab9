"""Publish tasks: ``luigi --module tasks.publish Publish --to DIR_OR_S3 [--public-url URL]``.

:class:`PublishCollection` publishes one collection (over a window, or all of it) and is
complete when every item of it is published in its current form and the collection is
linked from its parent, read from the destination's manifests; a processed collection
requires the station collections, whose items its ``derived_from`` links point to.
:class:`Publish` is one such task per collection the publish configuration selects.
"""

from __future__ import annotations

import dataclasses
import functools

import luigi

from rspy_batch.catalog.records import window_scope
from rspy_batch.catalog.storage import open_store
from rspy_batch.publish.config import load_config
from rspy_batch.publish.publication import make_publication
from rspy_batch.publish.run import Publication, Target, pending, plan_targets, publish
from rspy_batch.settings import default_catalog, default_staging, default_stations
from rspy_batch.windows import parse_when

#: A campaign's graph asks for the same publish configuration thousands of times.
_config = functools.lru_cache(maxsize=16)(load_config)


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

    lease_ttl = luigi.FloatParameter(default=300.0, significant=False,
                                     description="seconds a dead publisher keeps a lease")

    def publication(self) -> Publication:
        pub = make_publication(self.catalog, self.to, config=_config(self.publish_config),
                               public_url=self.public_url, staging=self.staging,
                               stations=self.stations)
        return dataclasses.replace(pub, lease_ttl=self.lease_ttl)

    def window(self) -> dict:
        return {"start": parse_when(self.start) if self.start else None,
                "stop": parse_when(self.stop) if self.stop else None}

    def publish_params(self) -> dict:
        return {"catalog": self.catalog, "to": self.to, "public_url": self.public_url,
                "publish_config": self.publish_config, "staging": self.staging,
                "stations": self.stations, "start": self.start, "stop": self.stop}


class PublishCollection(PublishParameters, luigi.Task):
    """Publish one collection of the working catalog (the library holds the collection's
    lease in the destination: two publishers of it take turns)."""

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


class PublishWindow(PublishCollection):
    """One window of a collection, published once that window is staged (a station
    collection) or processed (an output collection), so a failed window holds back only
    its own publication (campaigns).

    ``upstream`` holds the parameters of that window's
    :class:`~tasks.stage.StageWindow`, or of its :class:`~tasks.process.ProcessWindow`
    (then it has a ``processor``). A processed window also waits for its input window's
    publication, because ``derived_from`` is only written to published inputs.
    """

    upstream = luigi.DictParameter(description="StageWindow or ProcessWindow parameters")

    def requires(self) -> list[luigi.Task]:
        from tasks.process import ProcessWindow
        from tasks.stage import StageWindow

        upstream = dict(self.upstream)
        if "processor" not in upstream:
            return [StageWindow(**upstream)]
        tasks: list[luigi.Task] = [ProcessWindow(**upstream)]
        # From the config, not the catalog: before its first run the input collection
        # may not be in the catalog yet.
        if _config(self.publish_config).placement(upstream["collection"],
                                                      processed=False):
            stage = {k: v for k, v in upstream.items()
                     if k in StageWindow.get_param_names(include_significant=True)}
            tasks.append(PublishWindow(**self.publish_params(), lease_ttl=self.lease_ttl,
                                       collection=upstream["collection"], upstream=stage))
        return tasks

    def window(self) -> dict:
        # The window's own items, on the days they are filed under (a station window
        # selects by publication date, which does not bound the items' datetimes).
        stage = "process" if "processor" in self.upstream else "ingest"
        start, stop, only = window_scope(open_store(self.catalog), stage, self.collection,
                                         self.start, self.stop)
        return {"start": start, "stop": stop, "only": only}

    def complete(self) -> bool:
        # Before its window ran, a window has nothing to publish; "complete" then would
        # make Luigi prune the whole branch, so the upstream must be complete too.
        return (all(t.complete() for t in luigi.task.flatten(self.requires()))
                and super().complete())
