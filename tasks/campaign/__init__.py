"""Campaign tasks: ``rspy-batch campaign run FILE``, or with Luigi's own command line
``luigi --module tasks.campaign Campaign --file FILE [--scheduler-host ...]``.

A campaign is no new kind of work: it is the window tasks of the single stages
(:class:`~tasks.ingest.IngestWindow`, :class:`~tasks.stage.StageWindow`,
:class:`~tasks.process.ProcessWindow`, :class:`~tasks.publish.PublishWindow`) for its
collections, windows and processors, so its task ids are the ones a manual run of the
same window would use, and finished work is shared both ways.
"""

from __future__ import annotations

from collections.abc import Iterable

import luigi

from rspy_batch.campaign.config import Campaign as Spec
from rspy_batch.campaign.config import load_campaign
from rspy_batch.campaign.plan import Step, steps
from tasks.ingest import IngestWindow
from tasks.process import ProcessWindow
from tasks.publish import PublishWindow
from tasks.stage import StageWindow


def window_params(campaign: Spec, step: Step) -> dict:
    return {"collection": step.window.collection, "start": step.window.start,
            "stop": step.window.stop, "catalog": campaign.catalog,
            "stations": campaign.stations, "templates": campaign.templates,
            "lease_ttl": campaign.options.lease_ttl}


def stage_params(campaign: Spec, step: Step) -> dict:
    return {**window_params(campaign, step), "staging": campaign.staging,
            "transfers": campaign.options.transfers,
            "order_timeout": campaign.options.order_timeout}


def process_params(campaign: Spec, step: Step) -> dict:
    proc = step.processing
    assert proc is not None
    return {**stage_params(campaign, step), "processor": proc.processor,
            "output_collection": proc.output, "version_of": proc.series,
            "params": proc.params, "zarr_format": proc.zarr_format,
            "dask_scheduler": campaign.options.dask_scheduler}


def step_task(campaign: Spec, step: Step) -> luigi.Task:
    """The Luigi task of one campaign step."""
    if step.stage == "ingest":
        return IngestWindow(**window_params(campaign, step))
    if step.stage == "stage":
        return StageWindow(**stage_params(campaign, step))
    if step.stage == "process":
        return ProcessWindow(**process_params(campaign, step))
    pub = campaign.publish
    assert pub is not None and step.stage == "publish"
    upstream = process_params(campaign, step) if step.processing else stage_params(campaign, step)
    return PublishWindow(catalog=campaign.catalog, to=pub.to, public_url=pub.public_url,
                         publish_config=pub.config, staging=campaign.staging,
                         stations=campaign.stations, start=step.window.start,
                         stop=step.window.stop, collection=step.target, upstream=upstream,
                         lease_ttl=campaign.options.lease_ttl)


def campaign_tasks(campaign: Spec, chosen: Iterable[Step]) -> list[luigi.Task]:
    return [step_task(campaign, s) for s in chosen]


class Campaign(luigi.WrapperTask):
    """Every window task of a campaign file (Luigi's command-line entry point)."""

    file = luigi.Parameter(description="campaign YAML")

    def requires(self) -> list[luigi.Task]:
        from rspy_batch.campaign.run import published_collections

        campaign = load_campaign(self.file)
        return campaign_tasks(campaign, steps(campaign,
                                              published=published_collections(campaign)))
