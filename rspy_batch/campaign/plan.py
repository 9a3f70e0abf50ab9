"""What a campaign runs, window by window (pure).

A campaign is cut into the same aligned windows as the single-stage commands (a week by
default, set per collection template), so a campaign and a manual ``rspy-batch process``
over the same dates share their windows and each other's finished work. Every window is
one Luigi task per stage that batches all of the window's items: a year of ten collections
is about 2,000 tasks however many products the stations hold, which keeps Luigi's
scheduler (quadratic in its task count) in its comfortable range.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from rspy_batch.campaign.config import Campaign, Processing
from rspy_batch.catalog.records import window_id
from rspy_batch.mapping.common import iso
from rspy_batch.windows import parse_when, split_windows

STAGES = ("ingest", "stage", "process", "publish")


@dataclass(frozen=True)
class Window:
    """One collection over one window: the unit every stage's task works on."""

    collection: str              # the station collection the window selects
    start: str
    stop: str

    @property
    def id(self) -> str:
        return window_id(self.start, self.stop)


@dataclass(frozen=True)
class Step:
    """One stage of one window; ``processing`` is set for process and for publishing a
    processed collection (``target`` is then the output collection)."""

    stage: str
    window: Window
    processing: Processing | None = None

    @property
    def target(self) -> str:
        """The collection this step writes (and whose run record it leaves)."""
        return self.processing.output if self.processing else self.window.collection


def windows(campaign: Campaign, collection: str) -> list[Window]:
    tpl = campaign.template(collection)
    return [Window(collection, iso(s), iso(e))
            for s, e in split_windows(campaign.start, campaign.stop, tpl.window_days)]


def steps(campaign: Campaign, *, published: Iterable[str] | None = None) -> list[Step]:
    """Every step of the campaign. ``published`` are the collections the publish
    configuration selects (None: every collection of the campaign)."""
    chosen = None if published is None else set(published)
    out: list[Step] = []
    for cid in campaign.collections:
        for w in windows(campaign, cid):
            out += [Step("ingest", w), Step("stage", w)]
            if campaign.publish and (chosen is None or cid in chosen):
                out.append(Step("publish", w))
    for proc in campaign.processing:
        for w in windows(campaign, proc.input):
            out.append(Step("process", w, proc))
            if campaign.publish and (chosen is None or proc.output in chosen):
                out.append(Step("publish", w, proc))
    return out


def restrict(all_steps: Iterable[Step], windows_: Iterable[Window]) -> list[Step]:
    """The steps of the given windows only (``campaign rerun --failed``)."""
    keep = set(windows_)
    return [s for s in all_steps if s.window in keep]


def as_datetimes(window: Window) -> tuple[datetime, datetime]:
    return parse_when(window.start), parse_when(window.stop)
