"""Run records: what each stage did for each (collection, window), kept beside the catalog.

A record is written last, after every catalog write of its window, so its presence with
``status: complete`` is what makes a Luigi task complete. A window that failed still gets
a record (``status: failed``) so that ``rspy-batch status`` can show why; its task stays
incomplete and the next run retries it. Entities a station served that could not become
STAC items are listed under ``rejected`` with their reason. Records pass through
:func:`rspy_batch.redact.redact` before they are stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import dumps, loads
from rspy_batch.catalog.storage import Store
from rspy_batch.redact import redact

COMPLETE = "complete"
FAILED = "failed"


@dataclass
class Rejection:
    entity: str
    reason: str


@dataclass
class RunRecord:
    stage: str
    collection: str
    start: str
    stop: str
    status: str = FAILED
    started: str = ""
    finished: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    error: str | None = None
    items: list[str] = field(default_factory=list)
    """Catalog keys of the items the run wrote: ingest lists them so that the later stages
    of the same window work on exactly those items, whatever their own datetime."""

    @property
    def window_id(self) -> str:
        return window_id(self.start, self.stop)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["error"]:
            data["error"] = redact(data["error"])
        data["rejected"] = [{"entity": redact(r["entity"]), "reason": redact(r["reason"])}
                            for r in data["rejected"]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        data = dict(data)
        data["rejected"] = [Rejection(**r) for r in data.get("rejected", [])]
        return cls(**data)


def window_id(start: str, stop: str) -> str:
    """File-name-safe id of a window: ``20260101T000000Z_20260108T000000Z``."""
    def compact(s: str) -> str:
        return layout.parse_datetime(s).strftime("%Y%m%dT%H%M%SZ")
    return f"{compact(start)}_{compact(stop)}"


def now() -> str:
    return layout.format_datetime(datetime.now(UTC))


@contextmanager
def recording(store: Store, record: RunRecord, counts: dict[str, int]) -> Iterator[RunRecord]:
    """Write ``record`` (with ``counts``) when the block ends, however it ends: an exception
    marks it failed with the redacted reason and propagates."""
    try:
        yield record
    except Exception as exc:
        record.error = redact(f"{type(exc).__name__}: {exc}")
        record.status = FAILED
        raise
    finally:
        record.counts = counts
        record.finished = now()
        write_record(store, record)


def write_record(store: Store, record: RunRecord) -> None:
    store.put(layout.record_key(record.stage, record.collection, record.window_id),
              dumps(record.to_dict()))


def read_record(store: Store, stage: str, collection: str, start: str, stop: str
                ) -> RunRecord | None:
    blob = store.read(layout.record_key(stage, collection, window_id(start, stop)))
    return RunRecord.from_dict(loads(blob.data)) if blob else None


def items_span(record: RunRecord) -> tuple[datetime, datetime] | None:
    """``[first day, day after the last)`` of the items a run wrote, from their keys.

    A station window selects by publication date, and its items' own datetimes (sensing
    or validity start) may lie days or months outside it; publishing "that window's
    items" must therefore cover these days, not the window."""
    days = [d for key in record.items if (d := layout.item_day(key)) is not None]
    if not days:
        return None
    return min(days), max(days) + timedelta(days=1)


def window_scope(store: Store, stage: str, collection: str, start: str, stop: str
                 ) -> tuple[datetime, datetime, frozenset[str] | None]:
    """What "the items of this window" are for a later stage: the days they are filed
    under (:func:`items_span`) and their keys, from the window's ``stage`` run record;
    before that run, the window itself and no key filter."""
    record = read_record(store, stage, collection, start, stop)
    span = items_span(record) if record else None
    if record is None or span is None:
        return datetime.fromisoformat(start), datetime.fromisoformat(stop), (
            frozenset() if record is not None else None)
    return span[0], span[1], frozenset(record.items)


def is_complete(store: Store, stage: str, collection: str, start: str, stop: str) -> bool:
    record = read_record(store, stage, collection, start, stop)
    return record is not None and record.status == COMPLETE


def iter_records(store: Store, stage: str | None = None, collection: str | None = None
                 ) -> Iterator[RunRecord]:
    prefix = layout.RECORDS_PREFIX
    if stage:
        prefix += f"/{stage}"
        if collection:
            prefix += f"/{collection}"
    for key in sorted(store.list(prefix)):
        if key.endswith(".json"):
            blob = store.read(key)
            if blob:
                yield RunRecord.from_dict(loads(blob.data))
