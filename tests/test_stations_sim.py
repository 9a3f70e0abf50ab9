"""The station clients against the station simulator: searches equal ground truth."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from rspy_batch.simulator import FaultSpec, SimConfig, Simulator
from rspy_batch.stations import ODataClient, auxip, cadip, load_stations, lta, prip

START = datetime(2026, 1, 1, tzinfo=UTC)
STOP = datetime(2026, 1, 3, tzinfo=UTC)


def _clients(sim: Simulator, tmp_path, **kwargs) -> dict[str, ODataClient]:
    stations_file = sim.write_stations_file(tmp_path / "stations.yaml")
    secrets_file = sim.write_secrets_file(tmp_path / "secrets.env")
    stations = load_stations(stations_file, environ={"RSPY_SECRETS_FILE": str(secrets_file)})
    return {
        sid: ODataClient(st, backoff_base=0.001, retry_after_cap=0.01, **kwargs)
        for sid, st in stations.items()
    }


@pytest.fixture
def sim_factory():
    started: list[Simulator] = []

    def make(**kwargs) -> Simulator:
        config = SimConfig(seed=7, start=START, stop=STOP, order_delay=0.3, **kwargs)
        sim = Simulator(config).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def _search(client: ODataClient) -> list[dict]:
    kind = client.station.service
    if kind == "cadip":
        return list(cadip.search_sessions(client, start=START, stop=STOP))
    module = {"auxip": auxip, "prip": prip, "lta": lta}[kind]
    return list(module.search_products(client, start=START, stop=STOP))


FAULTS = "http-5xx=0.2,http-429=0.1,malformed-json=0.1,truncate=0.1"


def _in_window(entity: dict) -> bool:
    return START.isoformat()[:19] <= entity["PublicationDate"][:19] < STOP.isoformat()[:19]


@pytest.mark.parametrize("faults", ["", FAULTS])
def test_searches_match_ground_truth(sim_factory, tmp_path, faults):
    sim = sim_factory(faults=FaultSpec.parse(faults), page_cap=5)
    for sid, client in _clients(sim, tmp_path).items():
        got = _search(client)
        truth = [e for e in sim.truth(sid) if _in_window(e)]
        assert sorted(e["Id"] for e in got) == sorted(e["Id"] for e in truth), sid
        if client.station.service == "cadip":
            by_id = {s["Id"]: s for s in truth}
            for session in got:
                expected = sorted(f["Id"] for f in by_id[session["Id"]]["Files"])
                assert sorted(f["Id"] for f in session["Files"]) == expected


@pytest.mark.parametrize("trusted", [False, True])
def test_redirected_download_to_other_host(sim_factory, tmp_path, trusted):
    sim = sim_factory(redirect="other")
    client = _clients(sim, tmp_path)["nsg"]
    if trusted:  # the operator vouches for the storage host: the token follows
        station = replace(client.station, trusted_hosts=("127.0.0.2",))
        client = ODataClient(station, backoff_base=0.001, token_manager=client.tokens)
    session = next(cadip.search_sessions(client, start=START, stop=STOP))
    file_id = session["Files"][0]["Id"]
    with client.open_download(cadip.file_download_url(client, file_id)) as resp:
        assert resp.url.startswith(sim.other_url)
        data = resp.content
    assert data
    assert sim.stats()["auth_leaks"] == (1 if trusted else 0)


def test_short_token_lifetime_is_renewed(sim_factory, tmp_path):
    sim = sim_factory(faults=FaultSpec.parse("token-ttl=1"))
    client = _clients(sim, tmp_path)["adgs"]
    first = len(list(auxip.search_products(client, start=START, stop=STOP)))
    time.sleep(1.2)
    assert len(list(auxip.search_products(client, start=START, stop=STOP))) == first


def test_lta_order_then_download(sim_factory, tmp_path):
    sim = sim_factory()
    client = _clients(sim, tmp_path)["lta"]
    # LTA products are published after sensing; search the whole simulated span.
    product = next(iter(lta.search_products(client, start=START)))
    order = lta.create_order(client, product["Id"])
    assert order["Status"] in lta.ORDER_STATUSES
    assert lta.create_order(client, product["Id"])["Id"] == order["Id"]  # idempotent
    deadline = time.monotonic() + 5
    while lta.order_status(client, order["Id"])["Status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with client.open_download(lta.product_download_url(client, product["Id"])) as resp:
        data = resp.content
    truth = {t["Id"]: t for t in sim.truth("lta")}[product["Id"]]
    assert hashlib.md5(data).hexdigest() == truth["_md5"]
