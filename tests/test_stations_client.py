"""Station config, token handling and the OData client, against real loopback HTTP.

Each test scripts a tiny threaded ``http.server`` (one per host) with exactly the
station behaviour it needs, so failures point at the client, not at a simulator.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from rspy_batch.errors import ConfigError, StationError
from rspy_batch.redact import redact
from rspy_batch.stations import (
    AuthConfig,
    ODataClient,
    StationConfig,
    StationHTTPError,
    auxip,
    cadip,
    client_for,
    entities_from_payload,
    load_stations,
    lta,
    prip,
)
from rspy_batch.stations.auth import TokenManager
from rspy_batch.stations.client import parse_retry_after

PASSWORD = "pw-Zq8!unique-PASSWORD-4471"
CLIENT_SECRET = "cs-Kx3-unique-CLIENT-SECRET-9920"
BASIC = "Basic dW5pcXVlLUJBU0lDLWhlYWRlcg=="


# -- fake station ---------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str/bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        server: FakeServer = self.server.fake  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        form = {}
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        req = Req(
            self.command,
            split.path,
            {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            dict(self.headers.items()),
            form,
            body,
        )
        with server.lock:
            server.requests.append(req)
        reply = server.handler(req)
        if reply.delay:
            time.sleep(reply.delay)
        if isinstance(reply.body, dict | list):
            raw = json.dumps(reply.body).encode()
            ctype = "application/json"
        elif isinstance(reply.body, str):
            raw, ctype = reply.body.encode(), "application/json"
        else:
            raw, ctype = reply.body or b"", "application/octet-stream"
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    do_GET = do_POST = _serve

    def log_message(self, *args: Any) -> None:
        pass


class FakeServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.lock = threading.Lock()
        self.requests: list[Req] = []
        self.handler: Callable[[Req], Reply] = lambda req: Reply(404, {"message": "no route"})
        self.httpd = ThreadingHTTPServer((host, 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hits(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FakeServer()
    yield srv
    srv.close()


@pytest.fixture
def other_host_server():
    srv = FakeServer("127.0.0.2")
    yield srv
    srv.close()


class TokenIssuer:
    """The station's OAuth2 endpoint: numbered tokens, optional refresh, revocation."""

    def __init__(
        self,
        *,
        expires_in: int = 1200,
        refresh_expires_in: int | None = 3600,
        refresh_ok: bool = True,
        delay: float = 0.0,
    ) -> None:
        self.expires_in = expires_in
        self.refresh_expires_in = refresh_expires_in
        self.refresh_ok = refresh_ok
        self.delay = delay
        self.grants: list[str] = []
        self.valid: set[str] = set()
        self.count = 0

    def __call__(self, req: Req) -> Reply:
        grant = req.form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "password":
            if req.form.get("password") != PASSWORD:
                # Servers do echo things back; the client must not pass them on unredacted.
                return Reply(401, {"error": f"bad credentials {req.form.get('password')}"})
        elif grant == "refresh_token":
            if not self.refresh_ok:
                return Reply(401, {"error": "refresh token expired"})
        else:
            return Reply(400, {"error": "Unsupported grant_type"})
        self.count += 1
        token = f"tok-{self.count}-unique-ACCESS-TOKEN"
        self.valid.add(token)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": f"ref-{self.count}-unique-REFRESH",
        }
        if self.refresh_expires_in is not None:
            body["refresh_expires_in"] = self.refresh_expires_in
        return Reply(200, body, delay=self.delay)

    def authorized(self, req: Req) -> bool:
        header = req.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header.split()[1] in self.valid


def make_station(
    srv: FakeServer, *, auth: bool = False, service: str = "cadip", **overrides: Any
) -> StationConfig:
    auth_cfg = None
    if auth:
        auth_cfg = AuthConfig(
            token_url=f"{srv.base}/oauth2/token",
            client_id="rspy-test",
            username="rspy",
            password=PASSWORD,
            client_secret=CLIENT_SECRET,
        )
    values: dict[str, Any] = {
        "id": "teststation",
        "service": service,
        "url": f"{srv.base}/odata/v1/",
        "auth": auth_cfg,
        "max_retries": 3,
        "timeout": 2.0,
        "backoff_base": 0.001,
    }
    values.update(overrides)
    return StationConfig(**values)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_sleep(_: float) -> None:
    pass


# -- config ---------------------------------------------------------------------

STATIONS_YAML = """
stations:
  mti:
    service: cadip
    url: http://127.0.0.1:8765/mti/odata/v1
    auth:
      type: oauth2
      token_url: http://127.0.0.1:8765/mti/oauth2/token
      client_id: rspy-mti
      username: rspy
      client_secret_env: TEST_MTI_CLIENT_SECRET
      password_env: TEST_MTI_PASSWORD
      scope: openid
      token_request_authorization_env: TEST_MTI_BASIC
    trusted_hosts: [storage.example.com]
    page_size: 500
    timeout: 10
    max_retries: 2
  adgs:
    service: auxip
    url: http://127.0.0.1:8765/adgs/odata/v1/
"""


def test_load_stations_resolves_secrets_from_env_and_secrets_file(tmp_path, monkeypatch):
    path = tmp_path / "stations.yaml"
    path.write_text(STATIONS_YAML)
    secrets = tmp_path / "secrets.env"
    secrets.write_text(
        f"# comment\nexport TEST_MTI_PASSWORD='{PASSWORD}'\nTEST_MTI_BASIC={BASIC}\n"
    )
    monkeypatch.setenv("TEST_MTI_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("RSPY_SECRETS_FILE", str(secrets))
    monkeypatch.delenv("TEST_MTI_PASSWORD", raising=False)

    stations = load_stations(path)

    mti = stations["mti"]
    assert mti.service == "cadip" and mti.url.endswith("/odata/v1/")
    assert mti.host == "127.0.0.1"
    assert mti.auth is not None
    assert (mti.auth.password, mti.auth.client_secret) == (PASSWORD, CLIENT_SECRET)
    assert mti.auth.token_request_authorization == BASIC
    assert mti.auth.scope == "openid"
    assert (mti.page_size, mti.timeout, mti.max_retries) == (500, 10.0, 2)
    assert mti.trusted_hosts == ("storage.example.com",)
    assert stations["adgs"].auth is None and stations["adgs"].page_size == 1000
    for secret in (PASSWORD, CLIENT_SECRET, BASIC):
        assert secret not in repr(mti)
        assert redact(f"x{secret}y") == "x***y"  # registered for redaction


def test_literal_secret_in_stations_file_is_refused(tmp_path):
    path = tmp_path / "stations.yaml"
    path.write_text(
        STATIONS_YAML.replace(
            "password_env: TEST_MTI_PASSWORD", "password: literal-Secret-Value-123"
        )
    )
    with pytest.raises(ConfigError) as err:
        load_stations(path, environ={})
    assert "password_env" in str(err.value)
    assert "literal-Secret-Value-123" not in str(err.value)


def test_unset_secret_variable_is_named(tmp_path):
    path = tmp_path / "stations.yaml"
    path.write_text(STATIONS_YAML)
    env = {
        "TEST_MTI_CLIENT_SECRET": CLIENT_SECRET,
        "TEST_MTI_BASIC": BASIC,
        "RSPY_SECRETS_FILE": str(tmp_path / "missing.env"),
    }
    with pytest.raises(ConfigError) as err:
        load_stations(path, environ=env)
    assert "TEST_MTI_PASSWORD" in str(err.value)
    assert CLIENT_SECRET not in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("service: cadip", "service: foo", "service"),
        ("page_size: 500", "page_size: 0", "page_size"),
        ("max_retries: 2", "max_retries: many", "max_retries"),
        ("timeout: 10", "timeuot: 10", "unknown key"),
        ("url: http://127.0.0.1:8765/mti/odata/v1", "url: ftp://x/", "url"),
    ],
)
def test_config_validation_errors(tmp_path, old, new, message):
    path = tmp_path / "stations.yaml"
    path.write_text(STATIONS_YAML.replace(old, new))
    env = {
        "TEST_MTI_CLIENT_SECRET": "x" * 8,
        "TEST_MTI_PASSWORD": "y" * 8,
        "TEST_MTI_BASIC": "z" * 8,
    }
    with pytest.raises(ConfigError, match=message):
        load_stations(path, environ=env)


# -- envelopes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"value": [{"Id": "a"}, {"Id": "b"}]},
        {"@odata.context": "$metadata", "responses": [{"Id": "a"}, {"Id": "b"}]},
        [{"Id": "a"}, {"Id": "b"}],
    ],
)
def test_envelopes(payload):
    assert [e["Id"] for e in entities_from_payload(payload)] == ["a", "b"]


def test_bare_entity_and_empty_envelopes():
    assert entities_from_payload({"Id": "x", "Status": "queued"}) == [
        {"Id": "x", "Status": "queued"}
    ]
    assert entities_from_payload([]) == []
    assert entities_from_payload({"value": []}) == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"error": "boom"}, "keys: ['error']"),
        ({"value": {"Id": "a"}}, "'value' is an object"),
        ([{"Id": "a"}, 3], "item 1"),
        ("text", "a string"),
        (None, "null"),
    ],
)
def test_bad_envelopes(payload, fragment):
    with pytest.raises(StationError, match="unexpected OData payload") as err:
        entities_from_payload(payload)
    assert fragment in str(err.value)


# -- paging -----------------------------------------------------------------------


def paged(
    entities: list[dict], *, cap: int, count: bool = False, ignore_skip: bool = False
) -> Callable[[Req], Reply]:
    def handler(req: Req) -> Reply:
        top = min(int(req.query.get("$top", len(entities))), cap)
        skip = 0 if ignore_skip else int(req.query.get("$skip", 0))
        body: dict[str, Any] = {"value": entities[skip : skip + top]}
        if count:
            body["@odata.count"] = len(entities)
        return Reply(200, body)

    return handler


def test_paging_survives_a_silent_top_cap(server):
    entities = [{"Id": f"id-{i}", "n": i} for i in range(25)]
    server.handler = paged(entities, cap=7)
    client = ODataClient(make_station(server))

    got = list(client.iter_entities("Files", filter="a eq 1", page_size=10))

    assert [e["n"] for e in got] == list(range(25))
    skips = [int(r.query["$skip"]) for r in server.requests]
    assert skips == [0, 7, 14, 21, 25]  # ends on the empty page
    assert all(r.query["$top"] == "10" and r.query["$filter"] == "a eq 1" for r in server.requests)
    assert all(r.query["$count"] == "true" for r in server.requests)


def test_paging_stops_on_odata_count(server):
    entities = [{"Id": f"id-{i}"} for i in range(12)]
    server.handler = paged(entities, cap=5, count=True)
    got = list(ODataClient(make_station(server)).iter_entities("Files", page_size=5))
    assert len(got) == 12
    assert len(server.requests) == 3  # no extra empty page needed


def test_paging_dedups_entities_repeated_across_pages(server):
    # A station whose data shifts between pages returns some entities twice.
    pages = {0: [{"Id": "a"}, {"Id": "b"}], 2: [{"Id": "b"}, {"Id": "c"}], 4: []}
    server.handler = lambda req: Reply(200, {"value": pages[int(req.query["$skip"])]})
    got = list(ODataClient(make_station(server)).iter_entities("Files", page_size=2))
    assert [e["Id"] for e in got] == ["a", "b", "c"]


def test_paging_stops_when_station_ignores_skip(server):
    server.handler = paged([{"Id": "a"}, {"Id": "b"}], cap=2, ignore_skip=True)
    got = list(ODataClient(make_station(server)).iter_entities("Files", page_size=2))
    assert [e["Id"] for e in got] == ["a", "b"]
    assert len(server.requests) == 2


def test_lta_404_is_an_empty_search_but_not_elsewhere(server):
    server.handler = lambda req: Reply(404, b"")
    assert list(ODataClient(make_station(server, service="lta")).iter_entities("Products")) == []
    with pytest.raises(StationHTTPError) as err:
        list(ODataClient(make_station(server, service="prip")).iter_entities("Products"))
    assert err.value.status == 404


# -- retries ----------------------------------------------------------------------


def script(*replies: Reply) -> Callable[[Req], Reply]:
    queue = list(replies)

    def handler(req: Req) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


OK = Reply(200, {"value": [{"Id": "ok"}]})


@pytest.mark.parametrize(
    "failure",
    [
        Reply(503, {"message": "maintenance"}),
        Reply(502, b"<html>bad gateway</html>"),
        Reply(429, {"message": "slow down"}),
        Reply(200, "{not json"),
        Reply(200, b""),
    ],
    ids=["503", "502", "429", "malformed-json", "empty-body"],
)
def test_transient_failures_are_retried(server, failure):
    server.handler = script(failure, failure, OK)
    sleeps: list[float] = []
    client = ODataClient(make_station(server), sleep=sleeps.append)
    assert client.get_json("Files") == {"value": [{"Id": "ok"}]}
    assert len(server.requests) == 3
    assert len(sleeps) == 2


def test_timeout_is_retried(server):
    server.handler = script(Reply(200, {"value": []}, delay=0.6), OK)
    client = ODataClient(make_station(server, timeout=0.2), sleep=no_sleep)
    assert client.get_json("Files") == {"value": [{"Id": "ok"}]}


def test_connection_refused_is_retried_then_reported(server):
    port = server.port
    server.close()
    station = replace(make_station(server), url=f"http://127.0.0.1:{port}/odata/v1/")
    sleeps: list[float] = []
    with pytest.raises(StationError, match="ConnectionError"):
        ODataClient(station, sleep=sleeps.append).get_json("Files")
    assert len(sleeps) == 3


def test_retry_after_is_honoured_and_capped(server):
    server.handler = script(
        Reply(429, headers={"Retry-After": "7"}), Reply(503, headers={"Retry-After": "3600"}), OK
    )
    sleeps: list[float] = []
    client = ODataClient(make_station(server), sleep=sleeps.append, retry_after_cap=30)
    client.get_json("Files")
    assert sleeps == [7.0, 30.0]


def test_backoff_grows_exponentially_with_jitter_and_cap(server):
    server.handler = lambda req: Reply(503)
    sleeps: list[float] = []
    station = make_station(server, max_retries=6)
    client = ODataClient(station, sleep=sleeps.append, backoff_base=1.0, backoff_cap=8.0)
    with pytest.raises(StationError):
        client.get_json("Files")
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def test_real_sleeps_are_short_with_a_small_backoff_base(server):
    server.handler = script(Reply(503), Reply(503), OK)
    started = time.monotonic()
    ODataClient(make_station(server), backoff_base=0.01).get_json("Files")
    assert time.monotonic() - started < 1.0


def test_gives_up_with_a_clear_error(server):
    server.handler = lambda req: Reply(503, {"message": "down for maintenance"})
    client = ODataClient(make_station(server), sleep=no_sleep)
    with pytest.raises(StationHTTPError) as err:
        client.get_json("Sessions", params={"$filter": "Satellite eq 'S1A'"})
    text = str(err.value)
    assert "teststation" in text and "GET" in text
    assert f"{server.base}/odata/v1/Sessions?$filter=" in text
    assert "4 attempts" in text and "HTTP 503" in text and "down for maintenance" in text
    assert err.value.status == 503
    assert len(server.requests) == 4  # max_retries=3 -> 4 attempts


def test_other_4xx_fail_at_once_with_station_message(server):
    server.handler = lambda req: Reply(400, {"message": "Unknown field Foo"})
    with pytest.raises(StationHTTPError) as err:
        ODataClient(make_station(server), sleep=no_sleep).get_json("Files")
    assert "HTTP 400" in str(err.value) and "Unknown field Foo" in str(err.value)
    assert err.value.status == 400
    assert len(server.requests) == 1


def test_parse_retry_after_http_date():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now) == 5.0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None


# -- tokens -----------------------------------------------------------------------


def station_with_issuer(
    srv: FakeServer, issuer: TokenIssuer, data: Callable[[Req], Reply], **overrides: Any
) -> StationConfig:
    def handler(req: Req) -> Reply:
        if req.path == "/oauth2/token":
            return issuer(req)
        if not issuer.authorized(req):
            return Reply(401, {"message": "Token is invalid!"})
        return data(req)

    srv.handler = handler
    return make_station(srv, auth=True, **overrides)


def test_token_acquired_once_and_reused(server):
    issuer = TokenIssuer()
    station = station_with_issuer(server, issuer, lambda req: OK)
    station = replace(
        station, auth=replace(station.auth, scope="openid", token_request_authorization=BASIC)
    )
    client = ODataClient(station)
    for _ in range(5):
        client.get_json("Files")
    (token_req,) = server.hits("/oauth2/token")
    assert token_req.form == {
        "grant_type": "password",
        "client_id": "rspy-test",
        "client_secret": CLIENT_SECRET,
        "username": "rspy",
        "password": PASSWORD,
        "scope": "openid",
    }
    assert token_req.headers["Authorization"] == BASIC
    data_reqs = server.hits("/odata/v1/Files")
    assert len(data_reqs) == 5
    assert {r.headers["Authorization"] for r in data_reqs} == {"Bearer tok-1-unique-ACCESS-TOKEN"}
    assert redact("tok-1-unique-ACCESS-TOKEN") == "***"


def test_token_refreshed_near_expiry_then_relogin_after_refresh_expiry(server):
    issuer = TokenIssuer(expires_in=100, refresh_expires_in=1000)
    station = station_with_issuer(server, issuer, lambda req: OK)
    clock = FakeClock()
    tokens = TokenManager(station.id, station.auth, clock=clock, sleep=no_sleep)
    client = ODataClient(station, token_manager=tokens)

    client.get_json("Files")
    clock.now += 60  # still inside expires_in minus the safety margin
    client.get_json("Files")
    assert issuer.grants == ["password"]
    clock.now += 15  # past expires_in - margin(30): refresh
    client.get_json("Files")
    assert issuer.grants == ["password", "refresh_token"]
    refresh_req = server.hits("/oauth2/token")[1]
    assert refresh_req.form["refresh_token"] == "ref-1-unique-REFRESH"
    assert "password" not in refresh_req.form
    clock.now += 2000  # refresh token expired too: full login
    client.get_json("Files")
    assert issuer.grants == ["password", "refresh_token", "password"]
    assert (tokens.logins, tokens.refreshes) == (2, 1)


def test_failed_refresh_falls_back_to_password_when_refresh_expiry_unknown(server):
    issuer = TokenIssuer(expires_in=100, refresh_expires_in=None, refresh_ok=False)
    station = station_with_issuer(server, issuer, lambda req: OK)
    clock = FakeClock()
    client = ODataClient(
        station, token_manager=TokenManager(station.id, station.auth, clock=clock, sleep=no_sleep)
    )
    client.get_json("Files")
    clock.now += 500
    client.get_json("Files")
    assert issuer.grants == ["password", "refresh_token", "password"]
    assert (
        server.hits("/odata/v1/Files")[-1]
        .headers["Authorization"]
        .endswith("tok-2-unique-ACCESS-TOKEN")
    )


def test_one_token_shared_by_threads(server):
    issuer = TokenIssuer(delay=0.2)  # slow endpoint: every thread arrives before the token
    station = station_with_issuer(server, issuer, lambda req: OK)
    client = ODataClient(station)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                client.get_json("Files")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert issuer.grants == ["password"]
    assert len(server.hits("/odata/v1/Files")) == 40


def test_client_for_shares_the_token_between_clients(server):
    issuer = TokenIssuer()
    station = station_with_issuer(server, issuer, lambda req: OK)
    client_for(station).get_json("Files")
    client_for(station).get_json("Files")
    assert issuer.grants == ["password"]


def test_401_mid_run_gets_a_fresh_token(server):
    issuer = TokenIssuer()
    calls = {"n": 0}

    def data(req: Req) -> Reply:
        calls["n"] += 1
        if calls["n"] == 3:
            issuer.valid.clear()  # the station restarts and forgets every token
            return Reply(401, {"message": "Token is valid but is expired!"})
        return OK

    client = ODataClient(station_with_issuer(server, issuer, data), sleep=no_sleep)
    for _ in range(5):
        assert client.get_json("Files") == {"value": [{"Id": "ok"}]}
    assert issuer.grants == ["refresh_token" if i else "password" for i in range(2)]


def test_401_twice_is_a_station_error(server):
    issuer = TokenIssuer()
    station = station_with_issuer(
        server, issuer, lambda req: Reply(401, {"message": "Token is invalid!"})
    )
    with pytest.raises(StationHTTPError) as err:
        ODataClient(station, sleep=no_sleep).get_json("Files")
    assert err.value.status == 401 and "Token is invalid!" in str(err.value)
    assert len(server.hits("/odata/v1/Files")) == 2


def test_bad_credentials_error_names_station_and_token_url_only(server, caplog):
    caplog.set_level(logging.DEBUG)
    issuer = TokenIssuer()
    station = station_with_issuer(server, issuer, lambda req: OK)
    wrong = "wrong-pw-unique-VALUE-5531"
    station = replace(station, auth=replace(station.auth, password=wrong))
    from rspy_batch.redact import register_secret

    register_secret(wrong)  # as load_stations would
    with pytest.raises(StationError) as err:
        ODataClient(station, sleep=no_sleep).get_json("Files")
    text = str(err.value)
    assert "teststation" in text and f"{server.base}/oauth2/token" in text
    assert "HTTP 401" in text
    assert wrong not in text and "***" in text  # the echoed password is masked
    assert all(wrong not in r.getMessage() for r in caplog.records)


# -- redirects and downloads ----------------------------------------------------------


def redirecting(target: str, issuer: TokenIssuer | None = None) -> Callable[[Req], Reply]:
    def handler(req: Req) -> Reply:
        if issuer is not None and req.path == "/oauth2/token":
            return issuer(req)
        if req.path.endswith("/$value"):
            return Reply(307, headers={"Location": target})
        return Reply(200, b"payload-bytes")

    return handler


@pytest.mark.parametrize(
    ("where", "trusted", "kept"),
    [("same", (), True), ("other", (), False), ("other", ("127.0.0.2",), True)],
)
def test_authorization_on_redirect(server, other_host_server, where, trusted, kept):
    issuer = TokenIssuer()
    target_server = server if where == "same" else other_host_server
    target = f"{target_server.base}/storage/blob"
    server.handler = redirecting(target, issuer)
    other_host_server.handler = lambda req: Reply(200, b"payload-bytes")
    station = make_station(server, auth=True, trusted_hosts=trusted)
    client = ODataClient(station)

    with client.open_download(client.download_url("Files", "f-1")) as resp:
        assert b"".join(resp.iter_content(4)) == b"payload-bytes"

    assert server.requests[-2 if where == "same" else -1].path == "/odata/v1/Files(f-1)/$value"
    (final,) = target_server.hits("/storage/blob")
    assert ("Authorization" in final.headers) is kept
    if kept:
        assert final.headers["Authorization"] == "Bearer tok-1-unique-ACCESS-TOKEN"


def test_download_retries_before_the_body_starts(server):
    server.handler = script(Reply(503), Reply(429), Reply(200, b"0123456789"))
    client = ODataClient(make_station(server), sleep=no_sleep)
    with client.open_download("Products(p-1)/$value") as resp:
        assert resp.raw.read() == b"0123456789"
    assert len(server.requests) == 3


def test_download_403_is_reported_with_status(server):
    server.handler = lambda req: Reply(403, "Not allowed yet")
    client = ODataClient(make_station(server, service="lta"), sleep=no_sleep)
    with (
        pytest.raises(StationHTTPError) as err,
        client.open_download(lta.product_download_url(client, "p-1")),
    ):
        pass
    assert err.value.status == 403 and "Not allowed yet" in str(err.value)


def test_urls_resolve_against_the_station_root(server):
    client = ODataClient(make_station(server))
    root = f"{server.base}/odata/v1/"
    assert client.url_for("Files") == root + "Files"
    assert client.url_for("/Files", {"$top": "2"}) == root + "Files?$top=2"
    assert client.url_for("http://elsewhere/x?a=1", {"b": "2"}) == "http://elsewhere/x?a=1&b=2"
    assert client.download_url("Files", "e4d1-2f") == root + "Files(e4d1-2f)/$value"
    assert cadip.file_download_url(client, "x") == root + "Files(x)/$value"
    assert auxip.product_download_url(client, "x") == root + "Products(x)/$value"
    assert prip.product_download_url(client, "x") == root + "Products(x)/$value"


# -- secrets never leak ---------------------------------------------------------------


def test_no_secret_in_logs_or_errors(server, caplog):
    caplog.set_level(logging.DEBUG)
    issuer = TokenIssuer()
    calls = {"n": 0}

    def data(req: Req) -> Reply:
        calls["n"] += 1
        token = req.headers.get("Authorization", "").split()[-1]
        if calls["n"] == 1:
            return Reply(503, {"message": f"cannot validate {token}"})
        return Reply(400, {"message": f"bad request from {token} / {PASSWORD} / {CLIENT_SECRET}"})

    station = station_with_issuer(server, issuer, data)
    from rspy_batch.redact import register_secret

    for secret in (PASSWORD, CLIENT_SECRET):
        register_secret(secret)  # as load_stations does
    with pytest.raises(StationError) as err:
        ODataClient(station, sleep=no_sleep).get_json("Files", {"$filter": "a eq 1"})
    texts = [str(err.value), repr(station)] + [r.getMessage() for r in caplog.records]
    assert any("***" in t for t in texts)
    for secret in (PASSWORD, CLIENT_SECRET, "tok-1-unique-ACCESS-TOKEN", "ref-1-unique-REFRESH"):
        assert not any(secret in t for t in texts), secret


# -- per-kind modules -------------------------------------------------------------------


def test_cadip_sessions_fetch_missing_files(server):
    sessions = [
        {"Id": "s-1", "SessionId": "S1A_1", "Files": [{"Id": "f-0"}]},
        {"Id": "s-2", "SessionId": "S1A_2"},
    ]

    def handler(req: Req) -> Reply:
        if req.path.endswith("/Sessions"):
            return Reply(200, {"value": sessions[int(req.query["$skip"]) :]})
        if req.path.endswith("/Files"):
            assert req.query["$filter"] == "SessionId eq 'S1A_2'"
            return Reply(200, {"value": [{"Id": "f-1"}, {"Id": "f-2"}][int(req.query["$skip"]) :]})
        return Reply(404)

    server.handler = handler
    client = ODataClient(make_station(server))
    from datetime import UTC, datetime

    got = list(
        cadip.search_sessions(
            client,
            fields={"Satellite": ["S1A", "S1C"]},
            start=datetime(2026, 1, 1, tzinfo=UTC),
            stop=datetime(2026, 1, 2, tzinfo=UTC),
        )
    )
    assert [[f["Id"] for f in s["Files"]] for s in got] == [["f-0"], ["f-1", "f-2"]]
    first = server.hits("/odata/v1/Sessions")[0]
    assert first.query["$filter"] == (
        "Satellite in ('S1A', 'S1C') and PublicationDate ge 2026-01-01T00:00:00.000Z "
        "and PublicationDate lt 2026-01-02T00:00:00.000Z"
    )
    assert first.query["$expand"] == "Files"
    assert first.query["$orderby"] == "PublicationDate asc"


def test_cadip_quality_info(server):
    server.handler = lambda req: Reply(200, {"Id": "s-1", "QualityInfo": [{"Channel": 1}]})
    client = ODataClient(make_station(server))
    assert cadip.quality_info(client, "s-1") == [{"Channel": 1}]
    assert server.requests[0].path == "/odata/v1/Sessions(s-1)"
    assert server.requests[0].query["$expand"] == "qualityInfo"


def test_auxip_and_prip_filters(server):
    server.handler = lambda req: Reply(200, [])
    client = ODataClient(make_station(server, service="prip"))
    list(
        prip.search_products(
            client,
            fields={"ContentType": "application/zip"},
            attributes={"productType": "IW_RAW__0N"},
            intersects="POINT(1 2)",
        )
    )
    req = server.requests[-1]
    assert req.query["$expand"] == "Attributes"
    assert req.query["$filter"] == (
        "ContentType eq 'application/zip' and "
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
        "att/OData.CSC.StringAttribute/Value eq 'IW_RAW__0N') and "
        "OData.CSC.Intersects(area=geography'SRID=4326;POINT(1 2)')"
    )
    list(auxip.search_products(client, attributes={"platformSerialIdentifier": ["A", "B"]}))
    assert " or " in server.requests[-1].query["$filter"]


def test_lta_order_and_status_fallback(server):
    order = {"Id": "2b17b57d-fff4-4645-b539-91f305c27c69", "Status": "queued"}

    def handler(req: Req) -> Reply:
        if req.method == "POST" and req.path.endswith("/OData.CSC.Order"):
            return Reply(201, order)
        if req.path.endswith(f"/Orders({order['Id']})"):
            return Reply(404)
        if req.path.endswith("/Orders"):
            assert req.query["$filter"] == f"Id eq {order['Id']}"
            return Reply(200, {"responses": [{**order, "Status": "completed"}]})
        return Reply(404)

    server.handler = handler
    client = ODataClient(make_station(server, service="lta"))
    assert lta.create_order(client, "p-1") == order
    assert server.requests[0].path == "/odata/v1/Products(p-1)/OData.CSC.Order"
    assert lta.order_status(client, order["Id"])["Status"] == "completed"


def test_lta_existing_order_on_409(server):
    server.handler = lambda req: Reply(409, {"value": [{"Id": "o-1", "Status": "in_progress"}]})
    client = ODataClient(make_station(server, service="lta"))
    assert lta.create_order(client, "p-1")["Status"] == "in_progress"


def test_session_is_closed_cleanly(server):
    server.handler = lambda req: OK
    with ODataClient(make_station(server)) as client:
        assert isinstance(client.session, requests.Session)
        client.get_json("Files")
