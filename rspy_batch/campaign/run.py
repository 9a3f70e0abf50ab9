"""Running a campaign: which collections it publishes, who else is on its windows, and
the Luigi worker settings that let several workers share one ``luigid``."""

from __future__ import annotations

from collections.abc import Iterable

import luigi

from rspy_batch.campaign.config import Campaign
from rspy_batch.campaign.plan import Step
from rspy_batch.catalog.lease import LeaseInfo, live_leases
from rspy_batch.catalog.storage import open_store
from rspy_batch.orchestration.leases import publish_lease, window_lease


def published_collections(campaign: Campaign) -> list[str]:
    """The campaign's collections its publish configuration selects (from the
    configuration's rules, since output collections may not exist yet)."""
    if campaign.publish is None:
        return []
    from rspy_batch.publish.config import load_config

    config = load_config(campaign.publish.config)
    return ([c for c in campaign.collections if config.placement(c, processed=False)]
            + [p.output for p in campaign.processing
               if config.placement(p.output, processed=True)])


def lease_names(steps: Iterable[Step]) -> tuple[set[str], set[str]]:
    """The leases the steps' tasks take: (in the catalog, in the publish destination)."""
    catalog, destination = set(), set()
    for s in steps:
        if s.stage == "publish":
            destination.add(publish_lease(s.target))
        else:
            catalog.add(window_lease(s.stage, s.target, s.window.start, s.window.stop))
    return catalog, destination


def held_by_others(campaign: Campaign, steps: Iterable[Step]) -> list[LeaseInfo]:
    """Live leases on the steps' windows (``--if-busy skip``): another run is on them."""
    in_catalog, in_destination = lease_names(steps)
    held = [i for i in live_leases(open_store(campaign.catalog)) if i.name in in_catalog]
    if campaign.publish and in_destination:
        held += [i for i in live_leases(open_store(campaign.publish.to))
                 if i.name in in_destination]
    return held


def configure_workers(*, shared_scheduler: bool, idle_seconds: float) -> None:
    """Luigi worker settings of a campaign run (process-wide Luigi configuration).

    - ``check_complete_on_run``: a window whose run left failures (a product failed, a
      file did not stage) is not complete, so Luigi counts it as failed: the exit code
      says so and later stages of that window wait.
    - On a central ``luigid`` (``shared_scheduler``): ``keep_alive``, so a worker stays
      while other workers still run tasks it may depend on, but leaves once idle for
      ``idle_seconds``, since a failed task also counts as pending and would otherwise
      keep every worker waiting for its retry (luigi#2070).
    """
    config = luigi.configuration.get_config()
    if not config.has_section("worker"):
        config.add_section("worker")
    config.set("worker", "check_complete_on_run", "true")
    if shared_scheduler:
        config.set("worker", "keep_alive", "true")
        config.set("worker", "max_keep_alive_idle_duration", f"{int(idle_seconds)} seconds")
