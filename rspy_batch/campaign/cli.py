"""``rspy-batch campaign run|rerun|status|plan FILE``: campaigns from the command line."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import click
from rich.table import Table

from rspy_batch.campaign.config import BUSY, Campaign, load_campaign
from rspy_batch.campaign.plan import STAGES, Step, restrict, steps
from rspy_batch.campaign.status import (
    STATES,
    StepStatus,
    campaign_status,
    counts,
    failed_windows,
    rejected,
)
from rspy_batch.errors import RspyError
from rspy_batch.orchestration import retcodes
from rspy_batch.redact import redact

file_argument = click.argument("file", type=click.Path(dir_okay=False))


def run_options(command: click.Command) -> click.Command:
    for option in reversed([
        click.option("--workers", type=int, default=None,
                     help="Luigi worker processes in this run [default: the file's, or 1]."),
        click.option("--scheduler-url", default=None,
                     help="A central luigid, e.g. http://luigid:8082 [default: the file's, "
                     "or an in-process scheduler]."),
        click.option("--dask-scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler for processing, tcp://host:8786 [default: the "
                     "file's, or a LocalCluster per window]."),
        click.option("--if-busy", type=click.Choice(BUSY), default=None,
                     help="When another run holds one of the campaign's windows: wait for "
                     "it, or skip this run (exit code 'already_running') [default: wait]."),
        click.option("--quiet", is_flag=True, help="Luigi's own log lines: warnings only."),
    ]):
        command = option(command)
    return command


@click.group()
def campaign() -> None:
    """Reprocessing campaigns: a YAML file of collections, a time range and processors,
    run as one bounded Luigi graph (ingest → stage → process → publish, one task per
    window and stage). Re-run it from cron until `campaign status` shows it done."""


@campaign.command("run")
@file_argument
@run_options
def run(file: str, **options: object) -> None:
    """Run every step of the campaign not done yet.

    Exit codes follow Luigi's [retcode] categories (values configurable in luigi.cfg):
    0 done; 1 configuration error; 3 done with rejections; 4 a task failed; 5 scheduling
    error; 6 not run; 7 already running elsewhere (--if-busy skip); 8 missing data;
    9 Luigi error.
    """
    _run(file, failed_only=False, **options)


@campaign.command("rerun")
@file_argument
@click.option("--failed", "failed_only", is_flag=True, required=True,
              help="Retry only the windows with a failed step (and their later stages).")
@run_options
def rerun(file: str, failed_only: bool, **options: object) -> None:
    """Retry the failed windows of the campaign (exit codes as for `run`)."""
    _run(file, failed_only=True, **options)


@campaign.command("status")
@file_argument
@click.option("--windows", "per_window", is_flag=True, help="One line per step.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(file: str, per_window: bool, as_json: bool) -> None:
    """Done / failed / running / pending windows per stage and collection, read from the
    catalog, the run records and the leases (exit 0 when everything is done, 2 if not)."""
    from rspy_batch.cli import out

    camp = _load(file)
    statuses = _statuses(camp, _steps(camp))
    if as_json:
        click.echo(json.dumps(_as_json(camp, statuses), indent=2))
    else:
        _print_status(camp, statuses, per_window)
        for s in statuses:
            if s.state == "failed":
                out.print(f"[red]failed[/red] {s.step.stage} {s.step.target} "
                          f"{s.step.window.id}: {s.error}", highlight=False)
    sys.exit(0 if all(s.state == "done" for s in statuses) else 2)


@campaign.command("plan")
@file_argument
def plan(file: str) -> None:
    """Print the campaign's steps and the size of its Luigi graph, without running it."""
    from rspy_batch.cli import _all_tasks, out
    from tasks.campaign import campaign_tasks

    camp = _load(file)
    chosen = _steps(camp)
    table = Table("stage", "collection", "windows", title=f"campaign {camp.name}")
    for (stage, target), n in sorted(Counter((s.stage, s.target) for s in chosen).items(),
                                     key=lambda kv: (STAGES.index(kv[0][0]), kv[0][1])):
        table.add_row(stage, target, str(n))
    out.print(table)
    out.print(f"{len(chosen)} steps → {len(_all_tasks(campaign_tasks(camp, chosen)))} "
              f"Luigi tasks")


def _run(file: str, *, failed_only: bool, workers: int | None, scheduler_url: str | None,
         dask_scheduler: str | None, if_busy: str | None, quiet: bool) -> None:
    from rspy_batch.campaign.run import configure_workers, held_by_others
    from rspy_batch.cli import err, out
    from rspy_batch.orchestration.run import run_graph
    from tasks.campaign import campaign_tasks

    camp = _load(file, workers=workers, scheduler_url=scheduler_url,
                 dask_scheduler=dask_scheduler, if_busy=if_busy)
    chosen = _steps(camp)
    if failed_only:
        windows = failed_windows(_statuses(camp, chosen))
        if not windows:
            out.print(f"campaign {camp.name}: no failed window")
            sys.exit(retcodes.OK)
        chosen = restrict(chosen, windows)
        err.print(f"Retrying {len(windows)} failed window(s)")
    if camp.options.if_busy == "skip":
        held = _guard(lambda: held_by_others(camp, chosen))
        if held:
            for info in held[:10]:
                err.print(f"{info.name} is held by {info.owner}", highlight=False)
            err.print(f"campaign {camp.name}: another run is on {len(held)} of its windows; "
                      "skipping (--if-busy skip)")
            sys.exit(retcodes.codes()["already_running"])
    tasks = campaign_tasks(camp, chosen)
    configure_workers(shared_scheduler=bool(camp.options.scheduler_url),
                      idle_seconds=camp.options.idle_timeout)
    where = redact(camp.options.scheduler_url or "an in-process scheduler")
    err.print(f"campaign {camp.name}: {len(chosen)} steps, {camp.options.workers} worker(s) "
              f"on {where}; catalog {camp.catalog}")
    started = time.monotonic()
    result = run_graph(tasks, workers=camp.options.workers,
                       scheduler_url=camp.options.scheduler_url, quiet=quiet)
    statuses = _statuses(camp, chosen)
    _print_status(camp, statuses, per_window=False)
    found = retcodes.categories(result, tasks)
    code = retcodes.exit_code(found, rejected=_guard(lambda: rejected(camp, chosen)))
    out.print(f"campaign {camp.name}: {result.one_line_summary} in "
              f"{time.monotonic() - started:.0f} s (exit code {code}"
              f"{': ' + ', '.join(sorted(found)) if found else ''})", highlight=False)
    sys.exit(code)


def _load(file: str, **overrides: object) -> Campaign:
    return _guard(lambda: load_campaign(file, **overrides))


def _steps(camp: Campaign) -> list[Step]:
    from rspy_batch.campaign.run import published_collections

    return _guard(lambda: steps(camp, published=published_collections(camp)))


def _statuses(camp: Campaign, chosen: list[Step]) -> list[StepStatus]:
    return _guard(lambda: campaign_status(camp, chosen))


def _guard(call):  # noqa: ANN001, ANN202 - any callable, its result
    """Configuration problems exit 1 with the message, never a traceback."""
    from rspy_batch.cli import _fail

    try:
        return call()
    except RspyError as exc:
        _fail(exc)


def _print_status(camp: Campaign, statuses: list[StepStatus], per_window: bool) -> None:
    from rspy_batch.cli import out

    if per_window:
        table = Table("stage", "collection", "window", "state", "rejected",
                      title=f"campaign {camp.name}")
        for s in statuses:
            table.add_row(s.step.stage, s.step.target, s.step.window.id, _coloured(s.state),
                          str(s.rejected))
    else:
        table = Table("stage", "collection", *STATES, "rejected", title=f"campaign {camp.name}")
        rejected: dict[tuple[str, str], int] = {}
        for s in statuses:
            key = (s.step.stage, s.step.target)
            rejected[key] = rejected.get(key, 0) + s.rejected
        for (stage, target), n in counts(statuses).items():
            table.add_row(stage, target, *(_coloured(st, n[st]) for st in STATES),
                          str(rejected[(stage, target)]))
    out.print(table)


def _coloured(state: str, n: int | None = None) -> str:
    text = state if n is None else str(n)
    if n == 0:
        return text
    colour = {"done": "green", "failed": "red", "running": "yellow"}.get(state)
    return f"[{colour}]{text}[/{colour}]" if colour else text


def _as_json(camp: Campaign, statuses: list[StepStatus]) -> dict:
    return {
        "campaign": camp.name,
        "catalog": camp.catalog,
        "done": all(s.state == "done" for s in statuses),
        "steps": [{"stage": s.step.stage, "collection": s.step.target,
                   "window": s.step.window.id, "start": s.step.window.start,
                   "stop": s.step.window.stop, "state": s.state, "rejected": s.rejected,
                   "error": s.error} for s in statuses],
    }
