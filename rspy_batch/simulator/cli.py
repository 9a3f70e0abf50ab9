"""``rspy-batch station-sim``: run the station simulator in the foreground."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import click

from rspy_batch.simulator.config import SimConfig, parse_scale
from rspy_batch.simulator.faults import FaultSpec
from rspy_batch.simulator.simulator import Simulator


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.command("station-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="0 picks a free port.")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--start",
    type=click.DateTime(),
    default="2026-01-01",
    show_default=True,
    help="Start of the simulated time span (UTC).",
)
@click.option(
    "--stop",
    type=click.DateTime(),
    default="2026-01-08",
    show_default=True,
    help="End of the simulated time span (UTC).",
)
@click.option(
    "--scale",
    default="1.0",
    show_default=True,
    help="Rate factor: a float, station=float pairs, or both, e.g. 0.5,s2b=300.",
)
@click.option("--faults", default="", help="Fault spec, e.g. http-5xx=0.1,truncate=0.05.")
@click.option(
    "--redirect",
    type=click.Choice(["same", "other"]),
    default="same",
    show_default=True,
    help="Where nsg downloads redirect to.",
)
@click.option("--page-cap", default=1000, show_default=True, type=int)
@click.option("--token-ttl", default=1200.0, show_default=True, type=float)
@click.option("--order-delay", default=2.0, show_default=True, type=float)
@click.option("--cadu-chunk-bytes", default=64 * 1024, show_default=True, type=int)
@click.option("--product-bytes", default=16 * 1024, show_default=True, type=int)
@click.option(
    "--eopf-size",
    default=60,
    show_default=True,
    type=int,
    help="EOPF Zarr products: S2 L1C 10 m side (multiple of 6; 10980 = full tile); "
    "S1 GRD and S3 OLCI sizes follow proportionally.",
)
@click.option(
    "--eopf-scale",
    default=1.0,
    show_default=True,
    type=float,
    help="Rate factor of the EOPF Zarr products within each station's slots (0: none).",
)
@click.option(
    "--stations-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="stations.yaml",
    show_default=True,
)
@click.option(
    "--secrets-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="station-secrets.env",
    show_default=True,
)
def station_sim(
    host: str,
    port: int,
    seed: int,
    start: datetime,
    stop: datetime,
    scale: str,
    faults: str,
    redirect: str,
    page_cap: int,
    token_ttl: float,
    order_delay: float,
    cadu_chunk_bytes: int,
    product_bytes: int,
    eopf_size: int,
    eopf_scale: float,
    stations_out: Path,
    secrets_out: Path,
) -> None:
    """Serve simulated CADIP/AUXIP/PRIP/LTA stations until Ctrl-C."""
    try:
        overall, per_station = parse_scale(scale)
        config = SimConfig(
            seed=seed,
            start=_utc(start),
            stop=_utc(stop),
            scale=overall,
            station_scale=per_station,
            faults=FaultSpec.parse(faults),
            redirect=redirect,
            host=host,
            port=port,
            page_cap=page_cap,
            token_ttl=token_ttl,
            order_delay=order_delay,
            cadu_chunk_bytes=cadu_chunk_bytes,
            product_bytes=product_bytes,
            eopf_size=eopf_size,
            eopf_scale=eopf_scale,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    sim = Simulator(config).start()
    try:
        sim.write_stations_file(stations_out)
        sim.write_secrets_file(secrets_out)
        click.echo(f"station simulator listening on {sim.base_url}")
        if sim.other_url:
            click.echo(f"redirect target host on {sim.other_url}")
        for sid, info in sim.stations.items():
            click.echo(f"  {sid:5s} {info['service']:6s} {info['url']}")
        click.echo(f"ground truth: {sim.base_url}/_sim/truth/<station>, stats: /_sim/stats")
        click.echo("point a client at it with:")
        click.echo(f"  export RSPY_STATIONS={stations_out.resolve()}")
        click.echo(f"  export RSPY_SECRETS_FILE={secrets_out.resolve()}")
        click.echo("Ctrl-C to stop.")
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        sim.stop()
