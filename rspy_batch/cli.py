"""``rspy-batch``: the command line, a thin layer over the library and the Luigi tasks."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import luigi
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rspy_batch.browser.serve import StaticServer

from rspy_batch import __version__
from rspy_batch.campaign.cli import campaign as campaign_group
from rspy_batch.catalog import layout
from rspy_batch.catalog.records import RunRecord, iter_records, read_record, window_id
from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.errors import RspyError
from rspy_batch.logs import setup_logging
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration import run as orun
from rspy_batch.redact import redact
from rspy_batch.settings import (
    default_catalog,
    default_publish,
    default_publish_config,
    default_staging,
    default_stations,
    default_templates,
)
from rspy_batch.simulator.cli import station_sim
from rspy_batch.templates import load_templates
from rspy_batch.windows import parse_when, split_windows

# Off a terminal (cron mail, CI logs) rich would cut tables at 80 columns.
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)

catalog_option = click.option("--catalog", default=default_catalog, show_default="$RSPY_CATALOG "
                              "or ./catalog", help="Catalog root: a directory or s3://bucket/prefix.")
stations_option = click.option("--stations", default=default_stations, show_default="$RSPY_STATIONS"
                               " or ./stations.yaml", help="Stations file (YAML).")
templates_option = click.option("--templates", default=default_templates,
                                help="Collection template directory [default: catalog_templates/].")


def window_options(command: Callable) -> Callable:
    """Which collections over which range, and where catalog, stations and templates are."""
    for option in reversed([
        click.option("--collection", "collections", multiple=True, required=True,
                     help="Collection id (repeatable), or 'all' for every template."),
        click.option("--start", required=True, help="ISO date/datetime, inclusive (UTC)."),
        click.option("--stop", required=True, help="ISO date/datetime, exclusive (UTC)."),
        catalog_option, stations_option, templates_option]):
        command = option(command)
    return command


class _Main(click.Group):
    """Every command: an explainable failure (configuration, an S3 endpoint, bucket or
    credentials that no retry mends) exits 1 with one sentence, wherever it is raised;
    botocore's traceback would bury the reason."""

    def invoke(self, ctx: click.Context) -> object:
        from rspy_batch.s3 import explain

        try:
            return super().invoke(ctx)
        except RspyError as exc:
            _fail(exc)
        except Exception as exc:
            message = explain(exc)
            if message is None:
                raise
            _fail(RspyError(message))
        return None  # unreachable: _fail exits


@click.group(cls=_Main)
@click.version_option(__version__)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Copernicus ground-segment batch jobs over a static STAC catalog."""
    setup_logging(verbose)


main.add_command(station_sim, name="station-sim")
main.add_command(campaign_group, name="campaign")


@main.command()
@window_options
@click.option("--workers", default=1, show_default=True, help="Luigi worker processes.")
@click.option("--scheduler-url", default=None, help="Use this luigid instead of an in-process "
              "scheduler, e.g. http://127.0.0.1:8082.")
@click.option("--force", is_flag=True, help="Re-run windows already recorded as complete.")
def ingest(collections: tuple[str, ...], start: str, stop: str, catalog: str, stations: str,
           templates: str | None, workers: int, scheduler_url: str | None, force: bool) -> None:
    """Ingest station metadata of collections over [START, STOP) into the catalog.

    Exit codes: 0 done; 1 configuration error; 3 done with rejected entities;
    4 a window failed; 5 scheduling failed; 6 nothing ran.
    """
    from tasks.ingest import Ingest

    ids, windows, (t0, t1) = _plan(collections, start, stop, stations, templates)
    store = open_store(catalog, check=True)
    if force:
        for cid, wins in windows.items():
            for s, e in wins:
                store.delete(layout.record_key("ingest", cid, window_id(iso(s), iso(e))))
    err.print(f"Ingesting {len(ids)} collection(s), "
              f"{sum(len(w) for w in windows.values())} window(s) into {store.url}")
    status = orun.build([Ingest(collection=cid, start=iso(t0), stop=iso(t1), catalog=catalog,
                                stations=stations, templates=templates) for cid in ids],
                        workers=workers, scheduler_url=scheduler_url)
    records = [r for cid, wins in windows.items() for s, e in wins
               if (r := read_record(store, "ingest", cid, iso(s), iso(e)))]
    _print_records(records)
    rejected = sum(len(r.rejected) for r in records)
    code = orun.exit_code(status, rejected)
    err.print(f"Catalog: {store.url}/catalog.json  (exit code {code})")
    sys.exit(code)


staging_option = click.option("--staging", default=default_staging, show_default="$RSPY_STAGING "
                              "or ./staging", help="Staging store: a directory or "
                              "s3://bucket/prefix.")


@main.command()
@window_options
@staging_option
@click.option("--workers", default=4, show_default=True, help="Files copied at once.")
@click.option("--order-timeout", default=600.0, show_default=True,
              help="Seconds to wait for an LTA order to complete.")
@click.option("--scheduler-url", default=None, help="Use this luigid.")
def stage(collections: tuple[str, ...], start: str, stop: str, catalog: str, stations: str,
          templates: str | None, staging: str, workers: int, order_timeout: float,
          scheduler_url: str | None) -> None:
    """Copy station files of [START, STOP) into the staging store, verified, and point the
    catalog at them (ingesting windows not yet ingested).

    Exit codes: 0 all staged; 1 configuration error; 3 some files failed (see
    `rspy-batch status --stage stage --rejected`); 4 a window failed; 5/6 as for ingest.
    """
    from tasks.stage import StageWindow

    ids, windows, _ = _plan(collections, start, stop, stations, templates)
    store = open_store(catalog, check=True)
    open_store(staging, check=True)
    err.print(f"Staging {len(ids)} collection(s) into {staging}")
    # The windows, not the Stage wrapper: a window with failed files is recorded, and the
    # wrapper would turn that into a scheduling failure instead of exit code 3.
    status = orun.build([StageWindow(collection=cid, start=iso(s), stop=iso(e),
                                     catalog=catalog, stations=stations, templates=templates,
                                     staging=staging, transfers=workers,
                                     order_timeout=order_timeout)
                         for cid, wins in windows.items() for s, e in wins],
                        workers=1, scheduler_url=scheduler_url)
    records = [r for cid, wins in windows.items() for s, e in wins
               if (r := read_record(store, "stage", cid, iso(s), iso(e)))]
    _print_records(records)
    failed_files = sum(len(r.rejected) for r in records)
    sys.exit(orun.exit_code(status, failed_files))


@main.command()
@window_options
@staging_option
@click.option("--processor", required=True, help="Registered processor (see `rspy-batch "
              "processors`).")
@click.option("--output-collection", default=None,
              help="Output collection id [default: <collection>-<processor>].")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Processor parameter (repeatable); VALUE is parsed as JSON if it can be.")
@click.option("--zarr-format", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="2 = EOPF-compatible (blosc-zstd, .zmetadata); 3 = zstd.")
@click.option("--dask-scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:port) [default: a LocalCluster per window].")
@click.option("--workers", default=4, show_default=True, help="Files staged at once.")
@click.option("--order-timeout", default=600.0, show_default=True,
              help="Seconds to wait for an LTA order to complete.")
@click.option("--scheduler-url", default=None, help="Use this luigid.")
def process(collections: tuple[str, ...], start: str, stop: str, catalog: str, stations: str,
            templates: str | None, staging: str, processor: str, output_collection: str | None,
            params: tuple[str, ...], zarr_format: str, dask_scheduler: str | None,
            workers: int, order_timeout: float, scheduler_url: str | None) -> None:
    """Run PROCESSOR on the staged items of collections over [START, STOP) and catalog the
    products (staging and ingesting windows that need it first).

    Products are written under the staging store, items into the output collection.
    Exit codes: 0 all processed; 1 configuration error; 3 some products failed (see
    `rspy-batch status --stage process --rejected`); 4 a window failed; 5/6 as for ingest.
    """
    from rspy_batch.processing.registry import get_processor
    from tasks.process import ProcessWindow

    try:
        get_processor(processor)  # an unknown or broken processor is a configuration error
    except RspyError as exc:
        _fail(exc)
    ids, windows, _ = _plan(collections, start, stop, stations, templates)
    if output_collection and len(ids) > 1:
        raise click.UsageError("--output-collection needs exactly one --collection")
    parsed = dict(_parse_param(p) for p in params)
    store = open_store(catalog, check=True)
    open_store(staging, check=True)
    err.print(f"Processing {len(ids)} collection(s) with {processor}; products into {staging}")
    tasks = [ProcessWindow(collection=cid, start=iso(s), stop=iso(e), catalog=catalog,
                           stations=stations, templates=templates, staging=staging,
                           transfers=workers, order_timeout=order_timeout,
                           processor=processor, output_collection=output_collection,
                           params=parsed, zarr_format=int(zarr_format),
                           dask_scheduler=dask_scheduler)
             for cid, wins in windows.items() for s, e in wins]
    status = orun.build(tasks, workers=1, scheduler_url=scheduler_url)
    records = [r for task in tasks
               if (r := read_record(store, "process", task.settings().output_collection
                                    or f"{task.collection}-{processor}", task.start,
                                    task.stop))]
    _print_records(records)
    failed = sum(len(r.rejected) for r in records)
    sys.exit(orun.exit_code(status, failed))


@main.command()
@catalog_option
@stations_option
@staging_option
@click.option("--to", default=default_publish, show_default="$RSPY_PUBLISH or ./public",
              help="Destination: a directory or s3://bucket/prefix.")
@click.option("--public-url", default=None, help="URL the destination is served at "
              "[default: the config's; http://127.0.0.1:8000/ for a directory; the bucket's "
              "URL for S3].")
@click.option("--config", "config_path", default=default_publish_config,
              help="Publish configuration (YAML) [default: $RSPY_PUBLISH_CONFIG].")
@click.option("--collection", "collections", multiple=True,
              help="Only this collection (repeatable) [default: all the config selects].")
@click.option("--start", default=None, help="Only items from this ISO date/datetime.")
@click.option("--stop", default=None, help="Only items before this ISO date/datetime.")
@click.option("--browser/--no-browser", default=None,
              help="Upload STAC Browser beside the catalog [default: the config's].")
@click.option("--print-policy", is_flag=True, help="Print the S3 bucket policy for the "
              "destination (public read of public collections, owner read of owner "
              "prefixes) and exit.")
@click.option("--owner", default=None, help="With --print-policy: this owner's statements.")
def publish(catalog: str, stations: str, staging: str, to: str, public_url: str | None,
            config_path: str | None, collections: tuple[str, ...], start: str | None,
            stop: str | None, browser: bool | None, print_policy: bool,
            owner: str | None) -> None:
    """Publish processed collections (and the station collections the config chooses) as a
    public static catalog that STAC Browser reads straight from the bucket or directory.

    Exit codes: 0 published; 1 configuration error; 3 some items were not published (see
    `rspy-batch status --stage publish --rejected`); 4 a collection failed.
    """
    import json

    from rspy_batch.catalog.records import read_record
    from rspy_batch.catalog.storage import S3Store
    from rspy_batch.publish.bucket import bucket_policy
    from rspy_batch.publish.config import load_config
    from rspy_batch.publish.publication import make_publication, publish_catalog
    from rspy_batch.publish.run import ALL_TIME, plan_targets

    try:
        config = load_config(config_path)
        t0 = parse_when(start) if start else None
        t1 = parse_when(stop) if stop else None
        if print_policy:
            pub = make_publication(catalog, to, config=config, public_url=public_url)
            if not isinstance(pub.dest, S3Store):
                raise RspyError("--print-policy needs an s3:// destination")
            policy = bucket_policy(pub.dest.bucket, pub.dest.prefix,
                                   plan_targets(pub.source, config), config, owner=owner)
            click.echo(json.dumps(policy, indent=2))
            return
        open_store(catalog, check=True)
        open_store(to, check=True)
        err.print(f"Publishing {catalog} to {to}")
        with _progress() as report:
            outcome = publish_catalog(catalog, to, config=config, public_url=public_url,
                                      staging=staging, stations=stations,
                                      collections=list(collections) or None, start=t0,
                                      stop=t1, browser=browser, progress=report)
    except RspyError as exc:
        _fail(exc)
        return
    store = open_store(catalog)
    w0, w1 = iso(t0 or ALL_TIME[0]), iso(t1 or ALL_TIME[1])
    records = [r for t in outcome.targets
               if (r := read_record(store, "publish", t.collection_id, w0, w1))]
    _print_records(records)
    out.print(f"Published catalog: {outcome.root_url}")
    if outcome.browser_url:
        out.print(f"STAC Browser: {outcome.browser_url}")
    rejected = sum(len(r.rejected) for r in records)
    sys.exit(orun.TASK_FAILED if not outcome.ok else orun.REJECTED if rejected else orun.OK)


@main.group()
def browser() -> None:
    """STAC Browser 4.0.1: build it (npm, cached) or write it into a directory."""


@browser.command("build")
@click.option("--out", "out_dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Also write the built browser into this directory (index.html, config.js, "
              "js/, css/), e.g. public/browser.")
@click.option("--catalog-url", default=None,
              help="With --out: the root catalog's URL for config.js; must equal the root's "
              "self link [default: none, the browser asks for a catalog URL].")
def browser_build(out_dir: Path | None, catalog_url: str | None) -> None:
    """Build STAC Browser once (about 3-4 min the first time, then cached).

    The build lives under ~/.cache/rspy-batch (or $RSPY_BROWSER_CACHE); `publish` with the
    browser enabled installs it beside the catalog.
    """
    from rspy_batch.browser import build_browser, install_browser

    if catalog_url and out_dir is None:
        raise click.UsageError("--catalog-url needs --out")
    try:
        dist = build_browser(log=err.print)
        out.print(f"STAC Browser build: {dist}")
        if out_dir is not None:
            written = install_browser(out_dir, catalog_url=catalog_url, prefix="",
                                      dist=dist, log=err.print)
            out.print(f"STAC Browser in {out_dir} ({len(written)} files written)")
    except RspyError as exc:
        _fail(exc)


@main.command()
@click.option("--dir", "directory", default=default_publish,
              show_default="$RSPY_PUBLISH or ./public",
              type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Directory to serve: a published catalog, with its browser/.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback unless you mean to share it).")
@click.option("--mount", "mounts", multiple=True, metavar="/PREFIX=DIR",
              help="Also serve DIR at /PREFIX/, e.g. /data=./staging for staged asset files "
              "(repeatable).")
def serve(directory: Path, port: int, host: str, mounts: tuple[str, ...]) -> None:
    """Serve a published catalog and its STAC Browser over HTTP (CORS on, no listings)."""
    from rspy_batch.browser.serve import parse_mount
    from rspy_batch.browser.serve import serve as serve_directory

    try:
        mounted = dict(parse_mount(m) for m in mounts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mount") from None
    try:
        serve_directory(directory, host=host, port=port, mounts=mounted, say=err.print)
    except OSError as exc:  # port taken, missing mount directory, ...
        _fail(RspyError(f"cannot serve {directory} on {host}:{port}: {exc}"))


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per collection on a terminal; quiet otherwise (cron, CI)."""
    from rich.progress import Progress

    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        tasks: dict[str, object] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done + 1, total=total)  # type: ignore[arg-type]

        yield report


def _parse_param(text: str) -> tuple[str, object]:
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--param")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


@main.command()
def processors() -> None:
    """List the registered processors (built-ins and entry-point plug-ins)."""
    from rspy_batch.processing.registry import available, get_processor

    table = Table("name", "version", "level", "product type", "entry point", "title")
    for name, target in sorted(available().items()):
        try:
            proc = get_processor(name)
        except RspyError as exc:
            table.add_row(name, "-", "-", "-", target, f"[red]{exc}[/red]")
            continue
        table.add_row(name, proc.version, proc.level, proc.product_type, target, proc.title)
    out.print(table)


@main.command()
@catalog_option
@click.option("--no-schemas", is_flag=True, help="Check links and tree structure only.")
def validate(catalog: str, no_schemas: bool) -> None:
    """Validate the whole catalog offline (STAC + extension schemas, links, tree)."""
    from rspy_batch.catalog.validate import validate_catalog

    store = open_store(catalog, check=True)
    report = validate_catalog(store, schemas=not no_schemas)
    for error in report.errors[:200]:
        err.print(f"[red]error[/red] {redact(error)}", markup=True, highlight=False)
    if len(report.errors) > 200:
        err.print(f"... and {len(report.errors) - 200} more errors")
    for orphan in report.orphans[:20]:
        err.print(f"[yellow]orphan[/yellow] {orphan} (unlinked; re-run its task to repair)")
    verdict = "valid" if report.ok else "INVALID"
    out.print(f"{store.url}: {verdict}: {report.objects} objects, {report.items} items, "
              f"{len(report.errors)} errors, {len(report.orphans)} orphans")
    sys.exit(0 if report.ok else 2)


@main.command()
@catalog_option
@click.option("--stage", default=None, help="Only this stage (ingest, stage, process, ...).")
@click.option("--collection", default=None, help="Only this collection.")
@click.option("--rejected", "show_rejected", is_flag=True,
              help="List every rejected entity with its reason.")
@click.option("--windows", is_flag=True, help="One row per window instead of per collection.")
def status(catalog: str, stage: str | None, collection: str | None, show_rejected: bool,
           windows: bool) -> None:
    """Show what each stage did per collection and window, from the run records."""
    store = open_store(catalog, check=True)
    records = [r for r in iter_records(store, stage)
               if collection is None or r.collection == collection]
    if not records:
        out.print(f"No run records in {store.url}")
        return
    _print_records(records, console=out, per_window=windows)
    if show_rejected:
        # Plain lines, never truncated: operators grep and copy entity names from here.
        for r in records:
            for rej in r.rejected:
                # repr: a hostile name (control characters, separators) shows as escaped text
                out.print(f"rejected {r.collection} {r.window_id} {rej.entity!r}: {rej.reason}",
                          highlight=False, markup=False, soft_wrap=True)
    failed = [r for r in records if r.status != "complete"]
    for r in failed:
        out.print(f"[red]failed[/red] {r.stage} {r.collection} {r.window_id}: {r.error}",
                  highlight=False)
    if failed and not show_rejected and any(r.rejected for r in failed):
        out.print("(--rejected lists each rejected entity or failed file with its reason)")


@main.command()
@templates_option
def collections(templates: str | None) -> None:
    """List the collection templates."""
    table = Table("id", "service", "station", "query", "title")
    for tpl in load_templates(templates).values():
        query = {**tpl.fields, **tpl.attributes}
        table.add_row(tpl.id, tpl.service, tpl.station,
                      ", ".join(f"{k}={v}" for k, v in query.items()), tpl.title)
    out.print(table)


@main.command()
@click.option("--workdir", default="demo", show_default=True, type=click.Path(path_type=Path),
              help="Where the demo writes its stations file, secrets, catalogs and files.")
@click.option("--start", default="2026-01-01", show_default=True)
@click.option("--stop", default="2026-01-15", show_default=True)
@click.option("--scale", default="1.0", show_default=True, help="Simulator rate multiplier.")
@click.option("--workers", default=2, show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the local server (another free one when taken).")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Serve the published catalog in STAC Browser until Ctrl-C.")
def demo(workdir: Path, start: str, stop: str, scale: str, workers: int, port: int,
         serve: bool) -> None:
    """Run the embedded default: station simulator → ingest → stage → process (each
    collection's default processors) → publish, then serve it in STAC Browser."""
    from rspy_batch.browser import build_browser
    from rspy_batch.browser.serve import serve_server
    from rspy_batch.catalog.reader import collection_ids
    from rspy_batch.catalog.validate import validate_catalog
    from rspy_batch.publish.config import load_config
    from rspy_batch.publish.publication import publish_catalog
    from rspy_batch.simulator import SimConfig, Simulator
    from rspy_batch.simulator.config import parse_scale
    from tasks.process import ProcessWindow
    from tasks.stage import StageWindow

    t0, t1 = parse_when(start), parse_when(stop)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    stations_file, secrets_file = workdir / "stations.yaml", workdir / "secrets.env"
    catalog, staging = str(workdir / "catalog"), str(workdir / "staging")
    public = workdir / "public"
    public.mkdir(exist_ok=True)
    overall, per_station = parse_scale(scale)
    config = SimConfig(seed=42, start=t0, stop=t1, scale=overall, station_scale=per_station,
                       order_delay=0.5)
    try:  # the browser first: the one step that needs Node.js, and the slowest the first time
        err.print("[bold]1/4[/bold] STAC Browser (built once with npm, then cached)")
        build_browser(log=err.print)
    except RspyError as exc:
        _fail(exc)
    with Simulator(config) as sim:
        sim.write_stations_file(stations_file)
        sim.write_secrets_file(secrets_file)
        os.environ["RSPY_SECRETS_FILE"] = str(secrets_file)
        err.print(f"Station simulator on {sim.base_url} ({', '.join(sim.stations)})")
        templates = load_templates()
        common = {"catalog": catalog, "stations": str(stations_file), "staging": staging}
        tasks: list[luigi.Task] = []
        for cid, tpl in sorted(templates.items()):
            for s, e in split_windows(t0, t1, tpl.window_days):
                window = {"collection": cid, "start": iso(s), "stop": iso(e), **common}
                tasks.append(StageWindow(**window))
                tasks += [ProcessWindow(**window, processor=name) for name in tpl.processors]
        err.print(f"[bold]2/4[/bold] ingest → stage → process, {start} to {stop}")
        with _window_progress(open_store(catalog), tasks):
            status = orun.build(tasks, workers=workers, quiet=True)
    store = open_store(catalog)
    records = list(iter_records(store))
    _print_records(records)
    report = validate_catalog(store)
    out.print(f"Working catalog: {catalog}/catalog.json: {report.items} items in "
              f"{len(collection_ids(store))} collections, "
              f"{'valid' if report.ok else 'INVALID'}")

    err.print("[bold]3/4[/bold] publish")
    server = _bind(public, port, staging)
    publish_yaml = workdir / "publish.yaml"
    publish_yaml.write_text(demo_publish_config(server.url, staging))
    with _progress() as progress:
        outcome = publish_catalog(catalog, str(public), config=load_config(publish_yaml),
                                  staging=staging, stations=str(stations_file), browser=True,
                                  progress=progress)
    published = [r.record for r in outcome.results]
    _print_records(published)
    public_report = validate_catalog(open_store(str(public)))
    out.print(f"Published catalog: {public}/catalog.json ({public_report.items} items, "
              f"{'valid' if public_report.ok else 'INVALID'}); configuration: {publish_yaml}")
    rejected = sum(len(r.rejected) for r in records + published)
    code = (orun.exit_code(status, rejected)
            or (0 if report.ok and public_report.ok and outcome.ok else orun.TASK_FAILED))
    if not serve:
        server.server_close()
        sys.exit(code)
    err.print("[bold]4/4[/bold] serve")
    out.print(f"\n[bold green]STAC Browser: {outcome.browser_url}[/bold green]  (Ctrl-C stops)")
    serve_server(server)
    sys.exit(code)


def demo_publish_config(public_url: str, staging: str) -> str:
    """The demo's publish configuration, written beside its catalog for users to edit."""
    return f"""# rspy-batch publish configuration of the demo (see rspy_batch/publish/config.py)
public_url: {public_url}
title: rspy-batch demo catalog
description: Simulated Copernicus station products and what rspy-batch made of them
default_owner: processing
collections:
  "cadip-*": {{owner: ground-stations}}
  "auxip-*": {{owner: ground-stations}}
  "prip-*": {{owner: esa}}
  "lta-*": {{owner: archive, public: false}}    # published, but not linked from the root
owners:
  archive: {{principal: "arn:aws:iam::111122223333:role/archive-read"}}
assets:
  - {{from: "{staging}", url: "{public_url}data/"}}   # `rspy-batch serve --mount /data=...`
"""


def _bind(directory: Path, port: int, staging: str) -> StaticServer:
    """The demo's server, bound before publishing so the public URL is known: the given
    port, or any free one when it is taken."""
    from rspy_batch.browser import make_server

    try:
        return make_server(directory, port=port, mounts={"/data": Path(staging)})
    except OSError:
        return make_server(directory, port=0, mounts={"/data": Path(staging)})


@contextlib.contextmanager
def _window_progress(store: Store, tasks: list[luigi.Task]) -> Iterator[None]:
    """A progress bar over every window task of the graph, driven by the run records the
    tasks write (Luigi runs tasks in worker processes, so no in-process event would do)."""
    import threading

    from rich.progress import Progress

    graph = _all_tasks(tasks)
    total = len(graph)
    stop = threading.Event()
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task_id = bar.add_task("windows", total=total)

        def poll() -> None:
            while not stop.wait(1.0):
                done = sum(1 for _ in store.list(layout.RECORDS_PREFIX))
                bar.update(task_id, completed=min(done, total))

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _all_tasks(tasks: list[luigi.Task]) -> set[luigi.Task]:
    seen: set[luigi.Task] = set()
    todo = list(tasks)
    while todo:
        task = todo.pop()
        if task not in seen:
            seen.add(task)
            todo += luigi.task.flatten(task.requires())
    return seen


def _print_records(records: Iterable[RunRecord], console: Console = err,
                   per_window: bool = False) -> None:
    """A table per stage: one row per collection with summed counts, or one per window."""
    by_stage: dict[str, list[RunRecord]] = {}
    for r in records:
        by_stage.setdefault(r.stage, []).append(r)
    for stage, stage_records in by_stage.items():
        counts = list(dict.fromkeys(k for r in stage_records for k in r.counts))
        rows: dict[tuple[str, ...], dict[str, int]] = {}
        for r in stage_records:
            key = (r.collection, r.window_id) if per_window else (r.collection,)
            row = rows.setdefault(key, {"_ok": 0, "_failed": 0, **dict.fromkeys(counts, 0)})
            row["_ok" if r.status == "complete" else "_failed"] += 1
            for k in counts:
                row[k] += r.counts.get(k, 0)
        table = Table("collection", *(["window"] if per_window else []), "windows ok",
                      "windows failed", *counts, title=stage)
        for key, row in sorted(rows.items()):
            failed = f"[red]{row['_failed']}[/red]" if row["_failed"] else "0"
            table.add_row(*key, str(row["_ok"]), failed, *(str(row[k]) for k in counts))
        console.print(table)


Windows = dict[str, list[tuple[datetime, datetime]]]


def _plan(collections: tuple[str, ...], start: str, stop: str, stations: str,
          templates: str | None) -> tuple[list[str], Windows, tuple[datetime, datetime]]:
    """Collections, their windows and the range, checked before any task starts, so that a
    typo fails here with a clear message (exit 1) and not inside a task."""
    from rspy_batch.stations.config import load_stations

    try:
        known = load_templates(templates)
        ids = sorted(known) if "all" in collections else list(collections)
        for cid in ids:
            if cid not in known:
                raise RspyError(f"no template for collection {cid!r} (known: "
                                f"{', '.join(sorted(known))})")
        load_stations(stations)
        t0, t1 = parse_when(start), parse_when(stop)
        return ids, {cid: split_windows(t0, t1, known[cid].window_days) for cid in ids}, (t0, t1)
    except RspyError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {redact(str(exc))}", highlight=False)
    sys.exit(orun.CONFIG_ERROR)
