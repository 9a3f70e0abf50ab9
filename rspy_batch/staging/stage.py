"""Stage one collection window: every unstaged asset of its items, in parallel, verified.

Items are read from the catalog (the record of what is ingested and what is staged),
their unstaged assets copied with bounded concurrency, and each item is updated through
the catalog writer as soon as its assets are done, so a crash loses at most the files in
flight; a re-run finds the finished copies (same size and checksum) and does not
download them again. Files that fail after retries are recorded in the window's run
record with their reason and their assets stay unstaged.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.catalog.reader import read_json
from rspy_batch.catalog.records import (
    COMPLETE,
    FAILED,
    Rejection,
    RunRecord,
    now,
    read_record,
    recording,
)
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.errors import EntityRejected, RspyError
from rspy_batch.ingest import STAGE as INGEST
from rspy_batch.ingest import station_for
from rspy_batch.mapping.common import iso
from rspy_batch.staging import state
from rspy_batch.staging.keys import DEFAULT_KEY_TEMPLATE, object_key
from rspy_batch.staging.lta import wait_for_product
from rspy_batch.staging.sinks import Sink
from rspy_batch.staging.transfer import TransferFailed, copy_file
from rspy_batch.stations.client import client_for
from rspy_batch.stations.config import StationConfig
from rspy_batch.templates import CollectionTemplate

log = logging.getLogger(__name__)

STAGE = "stage"
Progress = Callable[[int, int], None]  # (files done, files planned)


def window_items(store: Store, collection: str, start: datetime, stop: datetime
                 ) -> list[dict] | None:
    """The items the ingest of this window wrote (None when it is not ingested).

    Taken from the ingest run record rather than by item datetime: a window is selected
    at the station by the template's time field (publication date by default), and an
    item's own datetime (sensing start, validity start) may lie outside it.
    """
    record = read_record(store, INGEST, collection, iso(start), iso(stop))
    if record is None or record.status != COMPLETE:
        return None
    return [item for key in record.items if (item := read_json(store, key)) is not None]


def window_staged(store: Store, collection: str, start: datetime, stop: datetime) -> bool:
    """True when the window is ingested and every item it ingested is staged."""
    items = window_items(store, collection, start, stop)
    return items is not None and all(state.is_staged(item) for item in items)


def stage_window(template: CollectionTemplate, start: datetime, stop: datetime, *,
                 store: Store, stations: dict[str, StationConfig], sink: Sink,
                 workers: int = 4, retries: int = 3, order_timeout: float = 600,
                 order_poll: float = 2.0, progress: Progress | None = None) -> RunRecord:
    record = RunRecord(stage=STAGE, collection=template.id, start=iso(start), stop=iso(stop),
                       started=now())
    counts = {"items": 0, "files": 0, "staged": 0, "already_staged": 0, "failed": 0,
              "bytes": 0}
    with recording(store, record, counts):
        station = station_for(template, stations)
        client = client_for(station)
        writer = CatalogWriter(store)
        key_template = template.staging.get("key_template", DEFAULT_KEY_TEMPLATE)
        ingested = window_items(store, template.id, start, stop)
        if ingested is None:
            raise RspyError(f"{template.id} {record.start}..{record.stop} is not ingested yet")
        items = [it for it in ingested if not state.is_staged(it)]
        jobs = []
        for item in items:
            dt = layout.item_datetime(item)
            for name, asset in item["assets"].items():
                if state.is_staged_asset(asset):
                    continue
                try:
                    key = object_key(key_template, collection=template.id, item_id=item["id"],
                                     dt=dt, file_name=name)
                except EntityRejected as exc:
                    record.rejected.append(Rejection(f"{item['id']}/{name}", exc.reason))
                    counts["failed"] += 1
                    continue
                jobs.append((item, name, asset, key))
        counts["items"], counts["files"] = len(items), len(jobs) + counts["failed"]
        present = sink.existing(common_prefix([key for *_, key in jobs])) if jobs else {}
        pending = defaultdict(int)
        for item, *_ in jobs:
            pending[item["id"]] += 1
        staged: dict[str, dict[str, Any]] = defaultdict(dict)
        lock = threading.Lock()
        done = 0

        def run(job: tuple) -> tuple[dict, str, dict]:
            item, name, asset, key = job
            if template.service == "lta":
                wait_for_product(client, item["properties"]["lta:id"], timeout=order_timeout,
                                 poll=order_poll)
            result = copy_file(client, state.station_href(asset), sink, key,
                               expected_size=int(asset["file:size"]),
                               expected_md5=state.expected_md5(asset), retries=retries,
                               existing=present.get(key))
            return item, name, {"asset": state.staged_asset(
                asset, href=sink.href(key), size=result.size, md5=result.md5, when=now()),
                "result": result}

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(run, job): job for job in jobs}
            for future in as_completed(futures):
                item, name, _asset, _key = futures[future]
                try:
                    _, _, out = future.result()
                except TransferFailed as exc:
                    record.rejected.append(Rejection(f"{item['id']}/{name}", str(exc)))
                    counts["failed"] += 1
                    log.warning("staging %s/%s failed: %s", item["id"], name, exc)
                else:
                    staged[item["id"]][name] = out["asset"]
                    counts["already_staged" if out["result"].skipped else "staged"] += 1
                    counts["bytes"] += 0 if out["result"].skipped else out["result"].size
                with lock:
                    done += 1
                    pending[item["id"]] -= 1
                    finished = pending[item["id"]] == 0
                if finished and staged.get(item["id"]):
                    _write_staged(writer, template.id, item, staged.pop(item["id"]))
                if progress:
                    progress(done, len(jobs))
        record.status = FAILED if counts["failed"] else COMPLETE
        if counts["failed"]:
            record.error = f"{counts['failed']} of {counts['files']} files failed (see rejected)"
    log.info("stage %s %s..%s: %s", template.id, record.start[:10], record.stop[:10], counts)
    return record


def common_prefix(keys: list[str]) -> str:
    """The deepest folder (``a/b/``) holding every key; '' when they share none."""
    first = min(keys).split("/")[:-1]
    last = max(keys).split("/")[:-1]
    shared = []
    for a, b in zip(first, last, strict=False):
        if a != b:
            break
        shared.append(a)
    return "/".join(shared) + "/" if shared else ""


def _write_staged(writer: CatalogWriter, collection: str, item: dict,
                  assets: dict[str, dict]) -> None:
    key = layout.item_key(collection, item["id"], layout.item_datetime(item))
    writer.update(key, lambda current: state.apply_staging(current, assets))
