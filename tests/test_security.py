"""Security: planted secrets never leak, redirects never carry credentials to untrusted
hosts, and untrusted names never escape their place.

1. Canary secrets are planted in every place a secret comes from (station secrets in the
   environment and in the secrets file, the station's Basic header for its token endpoint,
   the tokens the station issues, S3 keys and session tokens from the environment, from a
   shared credentials file and from a config file). The whole pipeline then runs through
   the real command line at ``-vv`` against the station simulator (transient faults, tokens
   that expire every two seconds, hostile names, a download redirect to another host) and
   the moto S3 server: ingest, stage, process (a plug-in that fails with every secret of
   its environment in its error), publish with presigning; and runs that fail on purpose
   (wrong password, missing secret, refused endpoint, missing bucket, an S3 store refusing
   the credentials and quoting the token). Every output, every file written, every object
   in the bucket is scanned for every canary in every common encoding.
2. Redirects of every kind, through the real query and download paths, against real HTTP
   servers on 127.0.0.1 and 127.0.0.2.
3. Hostile station names against the pure key functions (property tests), and the
   simulator's evil names end to end.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, unquote

import boto3
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from prop_support import hostile_names, prop_settings
from security_support import (
    AWS_SPECIALS,
    Canary,
    HopServer,
    RefusingS3,
    Run,
    bucket_blobs,
    clean_env,
    closed_port,
    dotenv,
    ensure,
    fake_browser_cache,
    find_canaries,
    issued_canary,
    make_canary,
    run_all,
    tree_blobs,
    write_leaky_plugin,
)

HERE = Path(__file__).parent
START, STOP = "2026-01-05", "2026-01-12"
AUX, NSG = "auxip-s1a-aux-resorb", "cadip-s2b-nsg"
LEAKY_OUT = f"{AUX}-leaky-bytes"
PROFILE_FILE, PROFILE_CONFIG = "rspy-sec-file", "rspy-sec-config"
#: Input items whose id ends so fail in the leaky processor (about half of them).
FAIL_SUFFIXES = "0,2,4,6,8"


# -- 1. planted secrets: the world they are planted in ---------------------------------------------


@dataclass
class World:
    root: Path
    work: Path  # everything the runs may write below (HOME and TMPDIR too)
    bucket: str
    s3: Any
    canaries: dict[str, Canary]
    runs: dict[str, Run]
    config_files: list[Path]  # where canaries live on purpose
    tokens: list[str] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    sim_stats: dict[str, Any] = field(default_factory=dict)
    refused: list[dict[str, str]] = field(default_factory=list)
    before: set[str] = field(default_factory=set)
    stations_file: Path = Path()

    def all_canaries(self) -> list[Canary]:
        issued = [issued_canary(f"station-token-{i}", t) for i, t in enumerate(self.tokens)]
        return [*self.canaries.values(), *issued]


def _plant_canaries() -> dict[str, Canary]:
    c: dict[str, Canary] = {}

    def add(name: str, **kw: Any) -> None:
        c[name] = make_canary(name, **kw)

    # Station secrets: adgs from the environment (decoys in the file), nsg from the file.
    add("adgs_client_secret", pairs=("rspy-adgs-client:",))
    add("adgs_password", pairs=("adgs-operator:",))
    add("adgs_basic_header")
    add("adgs_file_client_secret", pairs=("rspy-adgs-client:",))
    add("adgs_file_password", pairs=("adgs-operator:",))
    add("nsg_client_secret", pairs=("rspy-nsg-client:",))
    add("nsg_password", pairs=("nsg-operator:",))
    add("wrong_password", pairs=("adgs-operator:",))
    add("scheduler_password", specials="", pairs=("luigi-op:",))  # a URL's userinfo
    # S3 credentials, shaped like AWS's (key ids are letters and digits).
    for source in ("env", "file", "config"):
        add(f"aws_key_id_{source}", prefix="AKIA", specials="", upper=True)
        add(f"aws_secret_key_{source}", specials=AWS_SPECIALS)
        add(f"aws_session_token_{source}", specials=AWS_SPECIALS)
    return c


def _aws_env(c: dict[str, Canary], source: str, aws_dir: Path) -> dict[str, str]:
    """The environment that makes boto3 (and s3fs) find one set of canary credentials."""
    if source == "env":
        return {"AWS_ACCESS_KEY_ID": c["aws_key_id_env"].value,
                "AWS_SECRET_ACCESS_KEY": c["aws_secret_key_env"].value,
                "AWS_SESSION_TOKEN": c["aws_session_token_env"].value,
                "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "none"),
                "AWS_CONFIG_FILE": str(aws_dir / "none")}
    if source == "file":
        return {"AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
                "AWS_CONFIG_FILE": str(aws_dir / "none"), "AWS_PROFILE": PROFILE_FILE}
    return {"AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "none"),
            "AWS_CONFIG_FILE": str(aws_dir / "config"), "AWS_PROFILE": PROFILE_CONFIG}


def _write_aws_files(c: dict[str, Canary], aws_dir: Path) -> list[Path]:
    ensure(aws_dir)
    creds = aws_dir / "credentials"
    creds.write_text(f"[{PROFILE_FILE}]\naws_access_key_id = {c['aws_key_id_file'].value}\n"
                     f"aws_secret_access_key = {c['aws_secret_key_file'].value}\n"
                     f"aws_session_token = {c['aws_session_token_file'].value}\n")
    config = aws_dir / "config"
    config.write_text(f"[profile {PROFILE_CONFIG}]\nregion = us-east-1\n"
                      f"aws_access_key_id = {c['aws_key_id_config'].value}\n"
                      f"aws_secret_access_key = {c['aws_secret_key_config'].value}\n"
                      f"aws_session_token = {c['aws_session_token_config'].value}\n")
    return [creds, config]


def _station_env(c: dict[str, Canary], *, password: str = "adgs_password") -> dict[str, str]:
    return {"RSPY_STATION_ADGS_CLIENT_SECRET": c["adgs_client_secret"].value,
            "RSPY_STATION_ADGS_PASSWORD": c[password].value,
            "RSPY_STATION_ADGS_BASIC": c["adgs_basic_header"].value}


def _start_simulator(c: dict[str, Canary], world: World) -> Any:
    from rspy_batch.simulator import SimConfig, Simulator
    from rspy_batch.simulator.auth import Credentials
    from rspy_batch.simulator.faults import FaultSpec

    config = SimConfig(
        seed=23, start=datetime(2026, 1, 1, tzinfo=UTC), stop=datetime(2026, 1, 20, tzinfo=UTC),
        scale=0.3, stations=("adgs", "nsg"), redirect="other", cadu_chunk_bytes=4096,
        product_bytes=2048, eopf_scale=0,
        faults=FaultSpec(http_5xx=0.05, http_429=0.01, slow=0.05, slow_seconds=0.6,
                         token_ttl=0.1, evil_name=0.2))
    sim = Simulator(config)
    # The station accepts exactly the planted canaries.
    for sid, secret, password in (("adgs", "adgs_client_secret", "adgs_password"),
                                  ("nsg", "nsg_client_secret", "nsg_password")):
        old = sim.app.credentials[sid]
        sim.app.credentials[sid] = Credentials(old.client_id, c[secret].value, old.username,
                                               c[password].value)
    grant = sim.app.tokens.grant

    def recording(station: str, form: dict[str, str], creds: Any) -> tuple[int, dict]:
        world.grants.append(form.get("grant_type", ""))
        status, body = grant(station, form, creds)
        if status == 200:
            world.tokens.extend([body["access_token"], body["refresh_token"]])
        return status, body

    sim.app.tokens.grant = recording  # type: ignore[method-assign]
    return sim.start()


def _stations_file(sim: Any, path: Path) -> Path:
    doc = sim.stations_document()
    for entry in doc["stations"].values():
        entry.update(backoff_base=0.01, timeout=10, max_retries=6)
    doc["stations"]["adgs"]["auth"]["token_request_authorization_env"] = "RSPY_STATION_ADGS_BASIC"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _publish_config(path: Path, bucket: str, staging_dir: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "public_url": "http://127.0.0.1:9/pub/",
        "title": "Security test",
        "collections": {"auxip-*": {"owner": "esa"}, "cadip-*": {"owner": "ops", "public": False}},
        "assets": [
            {"from": f"s3://{bucket}/stg/{AUX}/", "presign": 3600},
            {"from": f"s3://{bucket}/stg/", "url": "http://127.0.0.1:9/stg/"},
            {"from": str(staging_dir), "copy": True},
        ],
    }))
    return path


@pytest.fixture(scope="module")
def world(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("security")
    work = ensure(root / "work")
    s3 = boto3.client("s3", endpoint_url=s3_server)
    bucket = f"rspy-sec-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    c = _plant_canaries()
    aws_dir = root / "aws"
    config_files = _write_aws_files(c, aws_dir)
    w = World(root, work, bucket, s3, c, {}, config_files)
    sim = _start_simulator(c, w)
    refusing = RefusingS3(echo=True)
    try:
        w.stations_file = _stations_file(sim, root / "stations.yaml")
        secrets_file = root / "secrets.env"
        secrets_file.write_text(dotenv({
            "RSPY_STATION_ADGS_CLIENT_SECRET": c["adgs_file_client_secret"].value,
            "RSPY_STATION_ADGS_PASSWORD": c["adgs_file_password"].value,
            "RSPY_STATION_ADGS_BASIC": c["adgs_basic_header"].value,
            "RSPY_STATION_NSG_CLIENT_SECRET": c["nsg_client_secret"].value,
            "RSPY_STATION_NSG_PASSWORD": c["nsg_password"].value}))
        missing_file = root / "secrets-missing.env"
        missing_file.write_text(dotenv({
            "RSPY_STATION_ADGS_CLIENT_SECRET": c["adgs_client_secret"].value,
            "RSPY_STATION_ADGS_PASSWORD": c["adgs_password"].value,
            "RSPY_STATION_ADGS_BASIC": c["adgs_basic_header"].value,
            "RSPY_STATION_NSG_CLIENT_SECRET": c["nsg_client_secret"].value}))
        config_files += [w.stations_file, secrets_file, missing_file]
        plugins = write_leaky_plugin(root / "plugins")
        base = clean_env(
            os.environ, HOME=str(ensure(work / "home")), TMPDIR=str(ensure(work / "tmp")),
            PYTHONPATH=os.pathsep.join([str(plugins), str(HERE / "plugins")]),
            RSPY_SECRETS_FILE=str(secrets_file),
            RSPY_BROWSER_CACHE=str(fake_browser_cache(root / "browser-cache")),
            AWS_ENDPOINT_URL=s3_server, AWS_DEFAULT_REGION="us-east-1",
            AWS_REQUEST_CHECKSUM_CALCULATION="when_required",
            AWS_RESPONSE_CHECKSUM_VALIDATION="when_required")
        s3cat, s3stg = f"s3://{bucket}/cat", f"s3://{bucket}/stg"
        window = ["--start", START, "--stop", STOP, "--stations", str(w.stations_file)]
        staging_dir = work / "staging"
        publish_yaml = _publish_config(root / "publish.yaml", bucket, staging_dir)
        config_files.append(publish_yaml)

        def env(aws: str, **extra: str) -> dict[str, str]:
            return {**base, **_aws_env(c, aws, aws_dir), **extra}

        ingest = ["-vv", "ingest", "--collection", AUX, *window]
        luigi_cfg = root / "luigi.cfg"  # one attempt at a scheduler that is not there
        luigi_cfg.write_text("[core]\nrpc-retry-attempts=1\nrpc-retry-wait=0\n")
        scheduler = f"http://luigi-op:{c['scheduler_password'].value}@127.0.0.1:{closed_port()}"
        campaign = root / "campaign.yaml"
        campaign.write_text(yaml.safe_dump({
            "name": "security", "start": START, "stop": STOP, "catalog": str(work / "c-catalog"),
            "staging": str(work / "c-staging"), "stations": str(w.stations_file),
            "collections": [AUX], "options": {"scheduler_url": scheduler}}))
        config_files.append(campaign)
        # Two batches, each run in parallel: the second needs the catalog the first wrote.
        first = [
            Run("process", ["-vv", "process", "--processor", "leaky-bytes", "--collection", AUX,
                            *window, "--catalog", s3cat, "--staging", s3stg],
                env("env", **_station_env(c), LEAKY_FAIL_SUFFIXES=FAIL_SUFFIXES)),
            Run("stage", ["-vv", "stage", "--collection", NSG, *window, "--catalog", s3cat,
                          "--staging", str(staging_dir)], env("file")),
            Run("wrong-password", [*ingest, "--catalog", str(work / "f-catalog")],
                env("env", **_station_env(c, password="wrong_password"))),
            Run("missing-secret", ["-vv", "ingest", "--collection", NSG, *window, "--catalog",
                                   str(work / "m-catalog")],
                env("env", RSPY_SECRETS_FILE=str(missing_file))),
            Run("campaign-scheduler", ["-vv", "campaign", "run", str(campaign)],
                env("env", **_station_env(c), LUIGI_CONFIG_PATH=str(luigi_cfg))),
        ]
        second = [
            Run("publish", ["-vv", "publish", "--catalog", s3cat, "--to", f"s3://{bucket}/pub",
                            "--config", str(publish_yaml), "--staging", s3stg, "--stations",
                            str(w.stations_file), "--browser"], env("config")),
            # The real CLI, its own retries: a refused connection is told after two quick
            # attempts; a missing bucket and refused credentials are not retried.
            # Station work over the simulator's three weeks (a window each, one after the
            # other, catalog writes between): far longer than a token's tenth of a second,
            # so tokens are refreshed. The runs below stop at the store check, before any
            # station is asked.
            Run("ingest", ["-vv", "ingest", "--collection", AUX, "--collection", NSG,
                           "--start", "2026-01-01", "--stop", "2026-01-20", "--stations",
                           str(w.stations_file), "--catalog", str(work / "i-catalog")],
                env("env", **_station_env(c))),
            Run("refused-endpoint", [*ingest, "--catalog", s3cat],
                env("env", **_station_env(c), AWS_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}")),
            Run("no-such-bucket", [*ingest, "--catalog", f"s3://rspy-sec-missing-{bucket}/c"],
                env("env", **_station_env(c))),
            Run("refused-credentials", [*ingest, "--catalog", s3cat],
                env("file", **_station_env(c), AWS_ENDPOINT_URL=refusing.url)),
        ]
        w.before = {str(p) for p in work.rglob("*")}
        run_all(first, cwd=work)
        run_all(second, cwd=work)
        w.sim_stats = sim.stats()
        w.refused = list(refusing.requests)
        w.runs = {r.name: r for r in first + second}
        yield w
    finally:
        refusing.close()
        sim.stop()


def _run_blobs(w: World) -> list[tuple[str, bytes]]:
    return [(f"{name} stdout+stderr", r.output.encode()) for name, r in w.runs.items()]


def _leaks(w: World, blobs: list[tuple[str, bytes]]) -> list[str]:
    return sorted({f"{leak.canary} ({leak.form}) in {leak.where}"
                   for leak in find_canaries(blobs, w.all_canaries())})


# -- the runs did what they are for --------------------------------------------------------


def test_scanner_finds_what_it_looks_for(world: World, tmp_path: Path) -> None:
    """The scan can fail: every encoded form of a canary, and a part of one, is found."""
    token = world.tokens[0]
    password = world.canaries["adgs_password"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "a.json").write_text(json.dumps({"x": f"pw {password.value}"}))
    basic = base64.b64encode(b"adgs-operator:" + password.value.encode()).decode()
    (scratch / "b.txt").write_text(f"Authorization: Basic {basic}")
    (scratch / "c.log").write_text(f"...{token[:30]}")  # a token cut short
    (scratch / "d.url").write_text("?X-Amz-Security-Token=" + quote(
        world.canaries["aws_session_token_file"].value, safe=""))
    found = find_canaries(tree_blobs(scratch), world.all_canaries())
    assert {(lk.canary, Path(lk.where).name) for lk in found} >= {
        ("adgs_password", "a.json"), ("adgs_password", "b.txt"),
        ("station-token-0", "c.log"), ("aws_session_token_file", "d.url")}
    assert not find_canaries([("clean", b"nothing to see")], world.all_canaries())
    # And the canaries were planted where the runs read them from.
    planted = {lk.canary for lk in find_canaries(
        [(str(p), p.read_bytes()) for p in world.config_files], world.all_canaries())}
    assert planted >= {f"aws_{kind}_{source}" for kind in ("key_id", "secret_key",
                                                           "session_token")
                       for source in ("file", "config")} | {
        "nsg_client_secret", "nsg_password", "adgs_file_password", "scheduler_password"}


def test_runs_went_through_every_path(world: World) -> None:
    """Each run did what it was planted for, so a clean scan means something."""
    from rspy_batch.catalog.records import iter_records
    from rspy_batch.catalog.storage import S3Store

    runs = world.runs
    out = {name: r.output for name, r in runs.items()}
    codes = {name: r.returncode for name, r in runs.items()}
    # The pipeline: the leaky processor failed some products, the rest went through.
    assert codes["process"] == 3, out["process"][-3000:]
    assert "cannot read" in out["process"] and "DEBUG" in out["process"]
    assert world.s3.list_objects_v2(Bucket=world.bucket, Prefix=f"stg/{LEAKY_OUT}/")["KeyCount"]
    assert codes["stage"] in (0, 3), out["stage"][-3000:]
    # Tokens lived a tenth of a second (and some answers took longer): they were refreshed.
    assert "refresh_token" in world.grants and "password" in world.grants
    # nsg's downloads were redirected to 127.0.0.2, which never got a token.
    assert world.sim_stats["auth_leaks"] == 0
    assert any(k.endswith(":redirect") for k in world.sim_stats["requests"]), world.sim_stats
    # Presigning with the config file's session token would put it in every URL: the
    # leak guard withheld those items (and only the guard could have known the token).
    assert codes["publish"] == 3, out["publish"][-3000:]
    reasons = [r.reason for rec in iter_records(_s3_store(world, "cat", S3Store), "publish", AUX)
               for r in rec.rejected]
    assert reasons and all("registered secret" in r for r in reasons), reasons
    # Failures, each for its reason.
    assert codes["wrong-password"] == 4 and "HTTP 401" in out["wrong-password"]
    assert codes["missing-secret"] == 1
    assert "RSPY_STATION_NSG_PASSWORD" in out["missing-secret"]
    assert codes["ingest"] in (0, 3), out["ingest"][-3000:]
    # The object store's configuration: exit 1 and one sentence naming it, no traceback.
    for name, says in (("refused-endpoint", "cannot connect to the S3 endpoint http://127.0.0.1:"),
                       ("no-such-bucket", f"bucket 'rspy-sec-missing-{world.bucket}' does "
                                          "not exist"),
                       ("refused-credentials", f"S3 refused access to bucket '{world.bucket}' "
                                               "(InvalidToken)")):
        assert codes[name] == 1 and says in out[name], out[name][-3000:]
        assert "Traceback" not in out[name], out[name][-3000:]
    assert codes["campaign-scheduler"] != 0 and "remote scheduler" in out["campaign-scheduler"]
    # Refused, and masked, not left out: the outputs name what failed. (A refused S3
    # credential is named by its error code only; the canary scans check its token.)
    assert "***" in out["campaign-scheduler"]
    assert "***" in out["process"]
    # The refusing store got the session token of the credentials file: that path was used.
    tokens = {r.get("X-Amz-Security-Token") for r in world.refused}
    assert tokens == {world.canaries["aws_session_token_file"].value}


def test_no_canary_in_any_output(world: World) -> None:
    leaks = _leaks(world, _run_blobs(world))
    assert not leaks, "\n".join(leaks)


def test_no_canary_in_any_file_written(world: World) -> None:
    blobs = list(tree_blobs(world.work))
    assert len(blobs) > 50
    leaks = _leaks(world, blobs)
    assert not leaks, "\n".join(leaks)


def test_no_canary_in_any_s3_object(world: World) -> None:
    blobs = list(bucket_blobs(world.s3, world.bucket))
    keys = {where.split("/", 1)[1] for where, _ in blobs if where.startswith("s3:")}
    assert any(k.startswith("cat/") for k in keys) and any(k.startswith("pub/") for k in keys)
    assert "pub/browser/config.js" in keys
    leaks = _leaks(world, blobs)
    assert not leaks, "\n".join(leaks)


# -- confinement, end to end ---------------------------------------------------------------


def test_nothing_written_outside_its_place(world: World) -> None:
    """Hostile station names (the simulator's evil-name fault) were rejected, and every
    byte the runs wrote sits where it belongs: local files only under the catalog,
    staging and scratch folders, staged files only as <collection>/<YYYY>/<MM>/<item>/<file>
    of a cataloged item, S3 keys only below the three roots, all normalised."""
    from rspy_batch.catalog.reader import iter_items
    from rspy_batch.catalog.records import iter_records
    from rspy_batch.catalog.storage import S3Store

    rejected = [r.reason for cid in (AUX, NSG)
                for rec in iter_records(_s3_store(world, "cat", S3Store), "ingest", cid)
                for r in rec.rejected]
    assert any("unsafe" in reason for reason in rejected), rejected
    allowed = {"f-catalog", "i-catalog", "m-catalog", "c-catalog", "c-staging", "staging",
               "tmp", "home"}
    new = {Path(p) for p in {str(p) for p in world.work.rglob("*")} - world.before}
    outside = sorted(str(p) for p in new if p.relative_to(world.work).parts[0] not in allowed)
    assert outside == []
    leftovers = [p for p in (world.work / "tmp").rglob("*")
                 if p.is_file() and "dask-scratch-space" not in p.parts]
    assert leftovers == []  # processing's local copies went away with their folder
    # Staged files: exactly the assets of the cataloged items, in their item's folder.
    catalog = _s3_store(world, "cat", S3Store)
    nsg_items = {it["id"]: it for it in iter_items(catalog, NSG)}
    staged = sorted(p.relative_to(world.work / "staging").as_posix()
                    for p in (world.work / "staging").rglob("*") if p.is_file())
    assert staged
    for key in staged:
        cid, year, month, item_id, name = key.split("/")
        assert cid == NSG and item_id in nsg_items and name in nsg_items[item_id]["assets"]
        props = nsg_items[item_id]["properties"]
        assert f"{year}-{month}" == (props.get("datetime") or props["start_datetime"])[:7]
    keys = [k for page in world.s3.get_paginator("list_objects_v2").paginate(Bucket=world.bucket)
            for k in (o["Key"] for o in page.get("Contents", []))]
    assert {k.split("/", 1)[0] for k in keys} == {"cat", "stg", "pub"}
    for key in keys:
        parts = key.split("/")
        assert not {"", ".", ".."} & set(parts) and "\\" not in key, key
        assert all(c.isprintable() for c in key), key
    aux_items = {it["id"] for it in iter_items(catalog, AUX)}
    for key in keys:
        parts = key.split("/")
        if parts[:2] == ["stg", AUX]:
            assert len(parts) == 6 and parts[4] in aux_items, key
        elif parts[:2] == ["stg", LEAKY_OUT]:
            assert parts[4].endswith((".zarr", ".png")), key
        elif parts[0] == "stg":
            pytest.fail(f"unexpected staged key {key}")


def _s3_store(world: World, prefix: str, cls: Any) -> Any:
    return cls(f"s3://{world.bucket}/{prefix}", client=world.s3)


# -- exceptions, in process ------------------------------------------------------------------


def _exception_texts(exc: BaseException) -> list[tuple[str, bytes]]:
    return [("str", str(exc).encode()), ("repr", repr(exc).encode()),
            ("traceback", "".join(traceback.format_exception(exc)).encode())]


def test_station_errors_hide_secrets(world: World) -> None:
    """A wrong password and the station's refusal: the exception names the station and
    the token URL, never a secret."""
    from rspy_batch.errors import StationError
    from rspy_batch.stations import ODataClient, load_stations

    c = world.canaries
    environ = {"RSPY_SECRETS_FILE": str(world.root / "secrets.env"),
               **_station_env(c, password="wrong_password")}
    stations = load_stations(world.stations_file, environ=environ)
    client = ODataClient(stations["adgs"], sleep=lambda _s: None)
    with pytest.raises(StationError) as info:
        client.get_json("Products")
    assert "HTTP 401" in str(info.value) and "/adgs/oauth2/token" in str(info.value)
    blobs = _exception_texts(info.value) + [("config repr", repr(stations).encode())]
    assert find_canaries(blobs, world.all_canaries()) == []


def test_station_echo_cut_short_is_still_masked() -> None:
    """A token endpoint that quotes the password in a long error: the message is cut to
    200 characters, and the cut must not leave the password's first part behind."""
    from rspy_batch.errors import StationError
    from rspy_batch.redact import register_secret
    from rspy_batch.stations import AuthConfig
    from rspy_batch.stations.auth import TokenManager

    password = make_canary("echoed_password")
    register_secret(password.value)  # as load_stations does
    server = HopServer("127.0.0.1")
    try:
        server.respond = lambda path: (401, json.dumps(
            {"error_description": "x" * 170 + " password " + password.value}).encode())
        auth = AuthConfig(token_url=f"{server.base}/oauth2/token", client_id="c",
                          username="u", password=password.value)
        with pytest.raises(StationError) as info:
            TokenManager("echo", auth, sleep=lambda _s: None).token()
    finally:
        server.close()
    assert "HTTP 401" in str(info.value)
    assert find_canaries(_exception_texts(info.value), [password]) == []


@pytest.mark.parametrize("source", ["env", "file", "config"])
def test_s3_errors_hide_secrets(world: World, monkeypatch: pytest.MonkeyPatch,
                                source: str) -> None:
    """A store that refuses the credentials the way AWS does (the token repeated in the
    error body): what the S3 store raises shows none of them."""
    from rspy_batch.catalog.storage import S3Store

    refusing = RefusingS3(echo=False)
    try:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            monkeypatch.delenv(name)
        for name, value in {**_aws_env(world.canaries, source, world.root / "aws"),
                            "AWS_ENDPOINT_URL": refusing.url,
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        store = S3Store(f"s3://{world.bucket}/cat")
        blobs = []
        for op in (lambda: store.read("catalog.json"), lambda: list(store.list("x")),
                   lambda: store.put("x.json", b"{}")):
            with pytest.raises(Exception) as info:  # noqa: PT011 - botocore's own errors
                op()
            assert "InvalidToken" in str(info.value)
            blobs += _exception_texts(info.value)
    finally:
        refusing.close()
    token = world.canaries[f"aws_session_token_{source}"].value
    assert {r.get("X-Amz-Security-Token") for r in refusing.requests} == {token}
    assert find_canaries(blobs, world.all_canaries()) == []


# -- credentials in URLs -------------------------------------------------------------------


def test_credentials_in_urls_are_refused_without_echo(tmp_path: Path) -> None:
    """A ``user:password@`` in a station URL, a token URL, a catalog or staging URL, or a
    public URL is refused, and the message does not repeat the password; a scheduler URL
    may carry one (a luigid behind basic auth), which is then masked everywhere."""
    from rspy_batch.campaign.config import load_campaign
    from rspy_batch.catalog.storage import open_store
    from rspy_batch.errors import ConfigError
    from rspy_batch.publish.config import parse_config
    from rspy_batch.redact import redact
    from rspy_batch.stations import load_stations

    secret = make_canary("url_password", specials="")
    userinfo = f"op:{secret.value}@"
    attempts: list[Callable[[], object]] = []
    for url, token_url in ((f"http://{userinfo}127.0.0.1:1/nsg/odata/v1/", "http://127.0.0.1:1/t"),
                           ("http://127.0.0.1:1/nsg/odata/v1/", f"http://{userinfo}127.0.0.1:1/t")):
        path = tmp_path / f"stations-{len(attempts)}.yaml"
        path.write_text(yaml.safe_dump({"stations": {"nsg": {
            "service": "cadip", "url": url, "auth": {
                "token_url": token_url, "client_id": "c", "username": "u",
                "password_env": "SEC_TEST_PASSWORD"}}}}))
        attempts.append(lambda path=path: load_stations(
            path, environ={"SEC_TEST_PASSWORD": "pw-not-the-canary"}))
    attempts += [
        lambda: open_store(f"s3://AKIAEXAMPLE:{secret.value}@bucket/cat"),
        lambda: open_store(f"https://op:{secret.value}@example.org/cat"),
        lambda: parse_config({"public_url": f"https://op:{secret.value}@cdn.example/"}),
        lambda: parse_config({"assets": [{"from": "s3://b/", "url":
                                          f"https://op:{secret.value}@cdn.example/"}]}),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError) as info:
            attempt()
        assert find_canaries(_exception_texts(info.value), [secret]) == [], str(info.value)
        assert "credentials" in str(info.value) or "***" in str(info.value)
    campaign = tmp_path / "campaign.yaml"
    scheduler = f"http://op:{secret.value}@127.0.0.1:8082"
    campaign.write_text(yaml.safe_dump({
        "name": "c", "start": START, "stop": STOP, "catalog": str(tmp_path / "cat"),
        "stations": str(tmp_path / "stations-0.yaml"), "collections": [AUX],
        "options": {"scheduler_url": scheduler}}))
    camp = load_campaign(campaign)
    assert camp.options.scheduler_url == scheduler
    assert secret.core not in redact(f"connecting to {scheduler}")


def test_scheduler_password_is_masked_in_luigis_messages(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """``--scheduler-url http://user:password@luigid`` (ingest, stage, process): Luigi
    quotes the URL when it cannot connect; the password is masked there."""
    from rspy_batch.orchestration import run as orun
    from rspy_batch.redact import redact

    secret = make_canary("scheduler_flag_password", specials="")
    url = f"http://op:{secret.value}@127.0.0.1:8082"
    seen: dict[str, object] = {}
    monkeypatch.setattr(orun.luigi, "build", lambda tasks, **kw: seen.update(kw))
    orun.run_graph([], scheduler_url=url)
    assert seen["scheduler_url"] == url  # Luigi still gets the password, to log in
    assert redact(f"Failed connecting to remote scheduler {url!r}") == (
        "Failed connecting to remote scheduler 'http://op:***@127.0.0.1:8082'")


# -- 2. redirects ----------------------------------------------------------------------------

HOSTS = {"A": "127.0.0.1", "B": "127.0.0.1", "C": "127.0.0.2"}  # A is the station
DOWNLOAD, QUERY = "/odata/v1/Products(p1)/$value", "/odata/v1/Products"


@dataclass
class Hops:
    servers: dict[str, HopServer]
    token: str
    cookie: str


@pytest.fixture(scope="module")
def hops() -> Iterator[Hops]:
    token, cookie = (make_canary(n, specials="").value for n in ("redirect_token", "cookie"))
    servers = {"A": HopServer(HOSTS["A"], token=token, cookie=cookie),
               "B": HopServer(HOSTS["B"]), "C": HopServer(HOSTS["C"])}
    try:
        yield Hops(servers, token, cookie)
    finally:
        for server in servers.values():
            server.close()


def _station(hops: Hops, trusted: tuple[str, ...]) -> Any:
    from rspy_batch.stations import AuthConfig, StationConfig

    base = hops.servers["A"].base
    return StationConfig(
        id="redir", service="auxip", url=f"{base}/odata/v1/", trusted_hosts=trusted,
        auth=AuthConfig(token_url=f"{base}/oauth2/token", client_id="c", username="u",
                        password="pw-redirect-test"),
        max_retries=0, timeout=5.0, backoff_base=0.01)


def _follow(hops: Hops, via: str, status: int, chain: list[tuple[str, str]],
            trusted: tuple[str, ...]) -> list[dict[str, str]]:
    """Request ``via`` the download or the query path; the station redirects along
    ``chain`` ([(server, path)], each hop redirecting to the next). The headers each hop got."""
    from rspy_batch.stations import ODataClient

    for server in hops.servers.values():
        server.reset()
    here, path = hops.servers["A"], DOWNLOAD if via == "download" else QUERY
    for name, next_path in chain:
        here.routes[path] = (status, hops.servers[name].base + next_path)
        here, path = hops.servers[name], next_path
    client = ODataClient(_station(hops, trusted), sleep=lambda _s: None)
    if via == "download":
        with client.open_download(client.download_url("Products", "p1")) as resp:
            assert resp.content == b'{"value": []}'
    else:
        assert client.get_json("Products") == {"value": []}
    got = []
    for name, hop_path in chain:
        (hit,) = [h for h in hops.servers[name].hits if h.path == hop_path]
        got.append(hit.headers)
    (first,) = [h for h in hops.servers["A"].hits if h.path in (DOWNLOAD, QUERY)]
    assert first.headers["Authorization"] == f"Bearer {hops.token}"
    return got


def _expected(chain: list[tuple[str, str]], trusted: tuple[str, ...]) -> list[bool]:
    """Authorization at each hop: only the station's own origin (server A) and hosts the
    operator listed keep it, and once dropped it never comes back."""
    kept, out = True, []
    for name, _path in chain:
        kept = kept and (name == "A" or HOSTS[name] in trusted)
        out.append(kept)
    return out


def _check(hops: Hops, got: list[dict[str, str]], expected: list[bool], label: str) -> None:
    for i, (headers, keep) in enumerate(zip(got, expected, strict=True)):
        where = f"{label}, hop {i + 1}"
        if keep:
            assert headers.get("Authorization") == f"Bearer {hops.token}", where
        else:
            assert "Authorization" not in headers, where
            assert hops.token not in json.dumps(headers), where
        assert "Proxy-Authorization" not in headers, where


SINGLE_HOPS = [
    ([("A", "/moved")], ()),                      # same origin
    ([("B", "/moved")], ()),                      # same host, other port
    ([("B", "/moved")], ("127.0.0.1",)),          # ... which the operator trusts
    ([("C", "/moved")], ()),                      # other host
    ([("C", "/moved")], ("127.0.0.2",)),          # ... trusted
    ([("C", "/moved")], ("127.0.0.20", "27.0.0.2", "127.0.0")),  # look-alikes are not it
]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("via", ["download", "query"])
def test_redirect_keeps_authorization_only_where_trusted(hops: Hops, via: str,
                                                         status: int) -> None:
    for chain, trusted in SINGLE_HOPS:
        got = _follow(hops, via, status, chain, trusted)
        _check(hops, got, _expected(chain, trusted), f"{status} {via} {chain} {trusted}")
        # The station's cookie stays with the station's host name (cookies know no
        # ports: RFC 6265), so it does travel, just never to another host.
        for (name, _path), headers in zip(chain, got, strict=True):
            assert (f"sid={hops.cookie}" in headers.get("Cookie", "")) is (
                HOSTS[name] == HOSTS["A"]), (status, via, chain)


CHAINS = [
    ([("C", "/out"), ("A", "/back")], ()),                       # trusted, untrusted, trusted
    ([("A", "/same"), ("C", "/away")], ()),                      # same host, then other host
    ([("C", "/storage"), ("B", "/port")], ("127.0.0.2",)),       # trusted host, then a port
    ([("A", "/one"), ("B", "/two"), ("A", "/three")], ()),
    ([("C", "/one"), ("C", "/two")], ("127.0.0.2",)),
]


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize(("chain", "trusted"), CHAINS)
def test_redirect_chains_never_bring_authorization_back(hops: Hops, chain: Any,
                                                        trusted: Any, status: int) -> None:
    for via in ("download", "query"):
        got = _follow(hops, via, status, chain, trusted)
        _check(hops, got, _expected(chain, trusted), f"{status} {via} {chain}")


def test_token_endpoint_redirect_is_not_followed(hops: Hops) -> None:
    """The password grant is never re-posted elsewhere: a redirect from the token
    endpoint is an error, and the other host sees nothing."""
    from rspy_batch.errors import StationError
    from rspy_batch.stations import ODataClient

    for server in hops.servers.values():
        server.reset()
    hops.servers["A"].routes["/oauth2/token"] = (307, hops.servers["C"].base + "/steal")
    client = ODataClient(_station(hops, ("127.0.0.2",)), sleep=lambda _s: None)
    with pytest.raises(StationError, match="HTTP 307"):
        client.get_json("Products")
    assert hops.servers["C"].hits == []


@pytest.mark.parametrize(("station", "target", "kept"), [
    ("http://st.example:8080/odata/v1/", "http://st.example:8080/x", True),
    ("http://st.example:8080/odata/v1/", "http://ST.EXAMPLE:8080/x", True),
    ("http://st.example:8080/odata/v1/", "http://st.example:8081/x", False),
    ("http://st.example:8080/odata/v1/", "http://st.example/x", False),
    ("http://st.example:8080/odata/v1/", "https://st.example:8080/x", False),
    ("http://st.example/odata/v1/", "https://st.example/x", True),      # the https upgrade
    ("http://st.example/odata/v1/", "https://st.example:8443/x", False),
    ("https://st.example/odata/v1/", "http://st.example/x", False),     # never downgrade
    ("http://st.example/odata/v1/", "http://storage.example.com:9000/x", True),
    ("http://st.example/odata/v1/", "http://STORAGE.example.COM/x", True),
    ("https://st.example/odata/v1/", "http://storage.example.com/x", False),
    ("http://st.example/odata/v1/", "http://storage.example.com.evil.net/x", False),
    ("http://st.example/odata/v1/", "http://evilstorage.example.com/x", False),
    ("http://st.example/odata/v1/", "http://x.storage.example.com/x", False),
    ("http://st.example/odata/v1/", "http://storage.example.com@evil.net/x", False),
    ("http://st.example/odata/v1/", "http://st.example:notaport/x", False),
])
def test_trusted_hosts_allow_exactly_the_listed_hosts(station: str, target: str,
                                                      kept: bool) -> None:
    from rspy_batch.stations import StationConfig
    from rspy_batch.stations.client import station_session

    config = StationConfig(id="s", service="auxip", url=station,
                           trusted_hosts=("storage.example.com",))
    assert station_session(config).should_strip_auth(station, target) is not kept


# -- 3. confinement: hostile names against the key functions ----------------------------------

#: Names a station (or a hand-edited catalog) might send, on top of prop_support's.
MORE_HOSTILE = st.sampled_from([
    "%2e%2e%2f", "%2e%2e", "..%2f..%2fx.zip", "%2F", "\u2024\u2024", "\uff0e\uff0e\uff0fx",
    "\u2025", "~", "~root", ".\u200b.", "a" * 5000, "", ".", "..", "/", "\\", "\x00",
    "x\x00.zip", "C:", "//x", "./x", "x/.", "x/..", "\u0085", "..\\", "\u2215etc\u2215passwd",
    "S2B_x.SAFE.zip", "S1A_OPER_AUX_RESORB_OPOD_20260105T191246",
])
NAMES = st.one_of(hostile_names, MORE_HOSTILE, st.text(max_size=30))
TEMPLATES = st.sampled_from([
    "{collection}/{year}/{month}/{item}/{file}", "{collection}/{item}/{file}",
    "{item}/{file}", "{file}", "../{item}/{file}", "/{item}/{file}",
    "{collection}/../../{item}/{file}", "{collection}//{item}/{file}",
    "{collection}/{year}/{item}{file}", "x/./{item}/{file}", "{collection}/{file}/{item}/{file}",
])
JAN = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _segments_ok(key: str) -> bool:
    parts = key.split("/")
    return (not key.startswith("/") and not {"", ".", ".."} & set(parts) and "\\" not in key
            and all(ord(ch) >= 32 and ord(ch) != 127 for ch in key))


@prop_settings(300)
@given(template=TEMPLATES, item_id=NAMES, file_name=NAMES)
def test_staging_keys_stay_in_their_item(template: str, item_id: str, file_name: str) -> None:
    """Whatever the names (and the template), a staging key is refused or ends with
    <item>/<file> in a normalised relative key, locally and on S3."""
    from rspy_batch.errors import EntityRejected
    from rspy_batch.s3 import S3Prefix
    from rspy_batch.staging.keys import object_key

    try:
        key = object_key(template, collection="col", item_id=item_id, dt=JAN,
                         file_name=file_name)
    except (EntityRejected, ValueError):
        return
    assert _segments_ok(key)
    assert key.split("/")[-2:] == [item_id, file_name]
    root = "/srv/staging"
    local = os.path.normpath(os.path.join(root, key))
    assert local == f"{root}/{key}" and local.endswith(f"/{item_id}/{file_name}")
    full = S3Prefix("s3://bucket/stage", client=object()).full_key(key)
    assert full == f"stage/{key}"


@prop_settings(150)
@given(item_id=NAMES)
def test_catalog_and_published_item_keys_stay_in_their_collection(item_id: str) -> None:
    """An id is either refused by the name check every mapper applies, or its item key,
    in the working catalog and in the published tree, stays in its own folder."""
    from rspy_batch.catalog import layout
    from rspy_batch.catalog.storage import LocalStore
    from rspy_batch.publish.paths import collection_prefix, relocate

    if layout.unsafe_id_reason(item_id) is not None:
        return
    key = layout.item_key("col", item_id, JAN)
    assert _segments_ok(key) and key == f"col/2026/01/05/{item_id}/{item_id}.json"
    for public in (True, False):
        prefix = collection_prefix("esa", "col", public)
        published = relocate(key, "col", prefix)
        assert _segments_ok(published)
        assert published == f"{prefix}/2026/01/05/{item_id}/{item_id}.json"
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(tmp)
        store.put(key, b"{}")
        (written,) = [p for p in Path(tmp).rglob("*") if p.is_file() and ".rspy" not in str(p)]
        assert written == Path(tmp).resolve() / key


@prop_settings(150)
@given(name=NAMES, rel=NAMES, quoted=st.booleans())
def test_published_copies_stay_in_the_item_folder(name: str, rel: str, quoted: bool) -> None:
    """A copied asset lands in its item's folder under one usable name, or is refused;
    a file below a copied directory is refused by the store if its path would leave it."""
    from rspy_batch.catalog.storage import LocalStore
    from rspy_batch.publish.assets import plan_assets
    from rspy_batch.publish.config import AssetRule

    item_key = "esa/col/2026/01/05/ITEM/ITEM.json"
    segment = quote(name, safe="") if quoted else name
    href = f"s3://bucket/stg/col/2026/01/ITEM/{segment}"
    try:
        plan = plan_assets({"data": {"href": href, "roles": ["data"]}}, item_key=item_key,
                           rules=[AssetRule("s3://bucket/stg/", copy=True)],
                           copy_thumbnails=True, presigner=lambda u, s: u)
    except ValueError:
        return
    for copy in plan.copies:
        head, _, last = copy.key.rpartition("/")
        assert head == "esa/col/2026/01/05/ITEM" and last not in ("", ".", "..")
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalStore(Path(tmp) / "pub")
            try:
                store.put(f"{copy.key}/{rel}" if rel else copy.key, b"x")
            except (ValueError, OSError):
                continue
            files = [p for p in Path(tmp).rglob("*") if p.is_file() and ".rspy" not in str(p)]
            item_dir = (Path(tmp) / "pub").resolve() / "esa/col/2026/01/05/ITEM"
            assert files and all(p.resolve().is_relative_to(item_dir) for p in files)
    for asset in plan.assets.values():
        target = posixpath.normpath(posixpath.join("esa/col/2026/01/05/ITEM",
                                                   unquote(asset["href"])))
        assert target.startswith("esa/col/2026/01/05/ITEM/")


@prop_settings(150)
@given(name=NAMES)
def test_local_copies_stay_in_their_scratch_folder(name: str) -> None:
    """Processing's local copy of ``s3://…/<name>`` goes into its own temporary folder
    below the scratch directory, or is refused."""
    from rspy_batch.processing import product

    targets: list[str] = []

    class RecordingFS:
        def get(self, path: str, target: str, recursive: bool = False) -> None:
            targets.append(target)

    url = f"s3://bucket/stg/col/2026/01/ITEM/{name}"
    with (tempfile.TemporaryDirectory() as scratch,
          mock.patch("fsspec.core.url_to_fs", lambda location, **kw: (RecordingFS(), location))):
        try:
            with product.local_copy(url, scratch=scratch) as path:
                yielded = str(path)
        except product.ProductError:
            assert targets == []
            return
        (target,) = targets
        assert target == yielded
        norm = Path(os.path.normpath(target))
        assert norm.parent.parent == Path(scratch) and norm.parent.name.startswith("rspy-in-")
        assert os.listdir(scratch) == []  # and the folder is gone afterwards
