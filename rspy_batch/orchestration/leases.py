"""Names of the leases window tasks hold (see :mod:`rspy_batch.catalog.lease`), in one
place so that ``campaign status`` and ``--if-busy skip`` find what the tasks take."""

from __future__ import annotations

from rspy_batch.catalog.records import window_id


def window_lease(stage: str, collection: str, start: str, stop: str) -> str:
    """Ingest, stage and process: one window of the collection the stage writes (for
    process, the output collection), in the working catalog's store."""
    return f"{stage}/{collection}/{window_id(start, stop)}"


def publish_lease(collection: str) -> str:
    """Publish: the whole collection, in the destination store, since every window of it
    rewrites the same month catalogs and index."""
    return f"publish/{collection}"
