"""Where a campaign stands, read from the catalog, the run records and the leases.

Each step (one stage of one window) is

- ``done``: the same check its Luigi task's ``complete()`` makes (the catalog is the
  record: ingested, every item staged, every product of this version made, every item
  published in its current form);
- ``running``: not done, and a live lease says another run is on it;
- ``failed``: not done, and its last run record says it failed;
- ``pending``: none of these (never run, or waiting for an earlier stage).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rspy_batch.campaign.config import Campaign
from rspy_batch.campaign.plan import STAGES, Step, Window, as_datetimes
from rspy_batch.catalog.lease import live_leases
from rspy_batch.catalog.records import COMPLETE, RunRecord, read_record, window_scope
from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration.leases import publish_lease, window_lease
from rspy_batch.processing.registry import get_processor
from rspy_batch.processing.run import ProcessingSettings, window_processed
from rspy_batch.staging.stage import window_staged

STATES = ("done", "failed", "running", "pending")


@dataclass(frozen=True)
class StepStatus:
    step: Step
    state: str
    rejected: int = 0            # entities, files, products or items its record rejected
    error: str | None = None     # the failed record's message (redacted when written)


def campaign_status(campaign: Campaign, steps: Iterable[Step]) -> list[StepStatus]:
    store = open_store(campaign.catalog)
    running = {info.name for info in live_leases(store)}
    publication = None
    if campaign.publish:
        from rspy_batch.publish.config import load_config
        from rspy_batch.publish.publication import make_publication
        from rspy_batch.publish.run import plan_targets

        pub = make_publication(campaign.catalog, campaign.publish.to,
                               config=load_config(campaign.publish.config),
                               public_url=campaign.publish.public_url,
                               staging=campaign.staging, stations=campaign.stations)
        running |= {info.name for info in live_leases(pub.dest)}
        publication = (pub, plan_targets(pub.source, pub.config))
    return [_status(campaign, store, step, running, publication) for step in steps]


def _status(campaign: Campaign, store: Store, step: Step, running: set[str],
            publication: tuple | None) -> StepStatus:
    w = step.window
    record = step_record(store, step)
    rejected = len(record.rejected) if record else 0
    if _done(campaign, store, step, record, publication):
        return StepStatus(step, "done", rejected)
    lease = (publish_lease(step.target) if step.stage == "publish"
             else window_lease(step.stage, step.target, w.start, w.stop))
    if lease in running:
        return StepStatus(step, "running", rejected)
    if record is not None and record.status != COMPLETE:
        return StepStatus(step, "failed", rejected, record.error)
    return StepStatus(step, "pending", rejected)


def step_record(store: Store, step: Step) -> RunRecord | None:
    """The step's last run record. A publish step's record is filed under the days its
    items fall on (see :func:`~rspy_batch.catalog.records.window_scope`)."""
    w = step.window
    if step.stage != "publish":
        return read_record(store, step.stage, step.target, w.start, w.stop)
    start, stop, _only = _publish_scope(store, step)
    return read_record(store, "publish", step.target, iso(start), iso(stop))


def _publish_scope(store: Store, step: Step) -> tuple[datetime, datetime, frozenset[str] | None]:
    return window_scope(store, "process" if step.processing else "ingest", step.target,
                        step.window.start, step.window.stop)


def _done(campaign: Campaign, store: Store, step: Step, record: RunRecord | None,
          publication: tuple | None) -> bool:
    start, stop = as_datetimes(step.window)
    if step.stage == "ingest":
        return record is not None and record.status == COMPLETE
    if step.stage == "stage":
        return window_staged(store, step.window.collection, start, stop)
    proc = step.processing
    if step.stage == "process":
        assert proc is not None
        settings = ProcessingSettings(products=campaign.staging, output_collection=proc.output,
                                      params=proc.params, zarr_format=proc.zarr_format,
                                      version_of=proc.series)
        return window_processed(store, get_processor(proc.processor), proc.input, start, stop,
                                settings)
    from rspy_batch.publish.run import pending

    assert publication is not None
    pub, targets = publication
    target = next((t for t in targets if t.collection_id == step.target), None)
    upstream = Step("process" if proc else "stage", step.window, proc)
    if target is None or not _done(campaign, store, upstream, None, publication):
        return False
    start, stop, only = _publish_scope(store, step)
    return pending(pub, targets, target, start=start, stop=stop, only=only) == 0


def failed_windows(statuses: Iterable[StepStatus]) -> list[Window]:
    """Windows with a failed step, for ``campaign rerun --failed``."""
    return sorted({s.step.window for s in statuses if s.state == "failed"},
                  key=lambda w: (w.collection, w.start))


def counts(statuses: Iterable[StepStatus]) -> dict[tuple[str, str], Counter[str]]:
    """(stage, collection) → how many windows are in each state."""
    table: dict[tuple[str, str], Counter[str]] = {}
    for s in sorted(statuses, key=lambda s: (STAGES.index(s.step.stage), s.step.target)):
        table.setdefault((s.step.stage, s.step.target), Counter())[s.state] += 1
    return table


def rejected(campaign: Campaign, steps: Iterable[Step]) -> int:
    """Entities, files, products and items the steps' last run records rejected."""
    store = open_store(campaign.catalog)
    return sum(len(r.rejected) for s in steps if (r := step_record(store, s)))
