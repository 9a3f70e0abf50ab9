"""Campaigns: the file, the plan, the exit codes, and `rspy-batch campaign run / status /
rerun --failed` end to end over the station simulator with a plug-in processor."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import pytest
import yaml
from campaign_support import (
    INPUT,
    OWNER,
    STATION_ONLY,
    catalog_view,
    duplicates,
    expected_items,
    plugin_env,
    product_arrays,
    published_ids,
    reachable_ids,
    write_campaign,
)
from e2e import run_cli

from rspy_batch.campaign.config import load_campaign, parse_campaign
from rspy_batch.campaign.plan import steps
from rspy_batch.catalog import layout
from rspy_batch.catalog.records import iter_records
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.errors import ConfigError
from rspy_batch.orchestration import retcodes
from rspy_batch.templates import get_template
from rspy_batch.windows import parse_when, split_windows

OUT = f"{INPUT}-toy-v0.1.0"


# ---------------------------------------------------------------- the file


def _doc(**changes: object) -> dict:
    doc = {"name": "c1", "start": "2026-01-01", "stop": "2026-02-01",
           "collections": ["cadip-s1a-mti"],
           "processing": [{"processor": "s2-l1c", "input": "prip-s2b-msil1c"}]}
    doc.update(changes)
    return doc


def test_campaign_file_is_checked_with_named_errors(tmp_path: Path) -> None:
    cases = {
        "unknown field(s) procesing": _doc(procesing=[]),
        "stop 2026-01-01": _doc(stop="2026-01-01"),
        "no template for 'nope'": _doc(collections=["nope"]),
        "unknown processor 'nope'": _doc(processing=[{"processor": "nope", "input": "x"}]),
        "but 1.0.0 is installed": _doc(processing=[{"processor": "s2-l1c", "version": "9.9",
                                                    "input": "prip-s2b-msil1c"}]),
        "has no parameter(s) bogus": _doc(processing=[{
            "processor": "s2-l1c", "input": "prip-s2b-msil1c", "params": {"bogus": 1}}]),
        "if_busy must be one of": _doc(options={"if_busy": "maybe"}),
        "name '../x' is not usable": _doc(name="../x"),
        "names no collections": _doc(collections=[], processing=[]),
    }
    for message, doc in cases.items():
        with pytest.raises(ConfigError) as info:
            parse_campaign(doc, base=tmp_path, source="c.yaml")
        assert message in str(info.value) and "c.yaml" in str(info.value), (message, info.value)


def test_campaign_file_paths_defaults_and_overrides(tmp_path: Path) -> None:
    from rspy_batch.processing.registry import get_processor

    path = tmp_path / "etc" / "c.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(_doc(catalog="cat", staging="s3://b/staging",
                                        stations="st.yaml", options={"workers": 2})))
    camp = load_campaign(path, workers=3, dask_scheduler=None)
    assert camp.catalog == str(path.parent / "cat")        # relative to the file
    assert camp.staging == "s3://b/staging"                # URLs as given
    assert camp.stations == str(path.parent / "st.yaml")
    assert camp.options.workers == 3                       # the command line wins
    version = get_processor("s2-l1c").version
    (proc,) = camp.processing
    assert proc.series == "prip-s2b-msil1c-s2-l1c" and proc.version == version
    assert proc.output == f"prip-s2b-msil1c-s2-l1c-v{version}"
    # the processing input is ingested and staged too
    assert camp.collections == ("cadip-s1a-mti", "prip-s2b-msil1c")


def test_plan_has_one_step_per_window_and_stage(tmp_path: Path) -> None:
    camp = parse_campaign(_doc(publish={"to": str(tmp_path / "pub")}), base=tmp_path)
    plan = steps(camp)
    t0, t1 = parse_when("2026-01-01"), parse_when("2026-02-01")
    n = {cid: len(split_windows(t0, t1, get_template(cid).window_days))
         for cid in ("cadip-s1a-mti", "prip-s2b-msil1c")}
    by_stage = {stage: sum(1 for s in plan if s.stage == stage)
                for stage in ("ingest", "stage", "process", "publish")}
    assert by_stage == {"ingest": sum(n.values()), "stage": sum(n.values()),
                        "process": n["prip-s2b-msil1c"],
                        "publish": sum(n.values()) + n["prip-s2b-msil1c"]}
    # a publish config that selects nothing publishes nothing
    assert not [s for s in steps(camp, published=[]) if s.stage == "publish"]


def test_exit_codes_follow_luigi_retcode_rules(tmp_path: Path) -> None:
    table = dict(retcodes.DEFAULTS)
    assert retcodes.exit_code(set(), table=table) == 0
    assert retcodes.exit_code(set(), rejected=2, table=table) == 3
    assert retcodes.exit_code({"task_failed"}, rejected=2, table=table) == 4
    # the highest configured code wins, as in luigi.retcodes
    assert retcodes.exit_code({"task_failed", "already_running"}, table=table) == 7
    config = luigi.configuration.get_config()
    config.set("retcode", "task_failed", "30")
    try:
        assert retcodes.codes()["task_failed"] == 30
        assert retcodes.codes()["already_running"] == 7
        assert retcodes.exit_code({"task_failed", "already_running"}) == 30
    finally:
        config.remove_option("retcode", "task_failed")


# ---------------------------------------------------------------- end to end


def _files(sim, tmp_path: Path, **kwargs: object) -> tuple[Path, Path, Path, Path]:
    catalog, staging, public = tmp_path / "catalog", tmp_path / "staging", tmp_path / "public"
    path = write_campaign(tmp_path / "campaign.yaml", catalog=str(catalog),
                          staging=str(staging), stations=sim.stations_file,
                          publish_to=str(public), **kwargs)
    return path, catalog, staging, public


def test_campaign_runs_every_stage_and_reruns_idempotently(simulator, tmp_path: Path) -> None:
    path, catalog, _staging, public = _files(simulator, tmp_path)
    env = plugin_env()
    first = run_cli("campaign", "run", str(path), "--quiet", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    store = LocalStore(catalog)

    # every station product of the range, once; one product per input
    for cid in (INPUT, STATION_ONLY):
        ids = reachable_ids(store, cid)
        assert set(ids) == expected_items(simulator, cid) and not duplicates(ids), cid
    outputs = reachable_ids(store, OUT)
    assert len(outputs) == len(expected_items(simulator, INPUT)) and not duplicates(outputs)
    assert validate_catalog(store).ok
    collection = json.loads((catalog / OUT / "collection.json").read_text())
    assert collection["version"] == "0.1.0"

    # published: the station collections and the versioned output, all windows
    pub = LocalStore(public)
    assert validate_catalog(pub).ok
    published = {key.split("/")[1] for key in pub.list("") if key.endswith("collection.json")}
    assert {INPUT, STATION_ONLY, OUT} <= published

    status = run_cli("campaign", "status", str(path), "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["done"] and {s["state"] for s in report["steps"]} == {"done"}
    assert {s["stage"] for s in report["steps"]} == {"ingest", "stage", "process", "publish"}

    before = catalog_view(store), catalog_view(pub), product_arrays(store, OUT)
    again = run_cli("campaign", "run", str(path), "--quiet", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (catalog_view(store), catalog_view(pub), product_arrays(store, OUT)) == before


def test_failed_window_is_reported_and_rerun_failed_retries_it(simulator,
                                                              tmp_path: Path) -> None:
    path, catalog, _staging, public = _files(simulator, tmp_path)
    store = LocalStore(catalog)
    # Products of 2026-01-07 fail: the first window fails, the second does not.
    failing = run_cli("campaign", "run", str(path), "--quiet",
                      env={**plugin_env(), "TOYPROC_FAIL_ON": "_20260107"})
    assert failing.returncode == retcodes.DEFAULTS["task_failed"], failing.stderr[-3000:]

    status = run_cli("campaign", "status", str(path), "--json", env=plugin_env())
    assert status.returncode == 2
    states = {(s["stage"], s["collection"], s["start"][:10]): s["state"]
              for s in json.loads(status.stdout)["steps"]}
    assert states[("process", OUT, "2026-01-05")] == "failed"
    assert states[("process", OUT, "2026-01-12")] == "done"
    # the failed window's publication waits; the other window's went ahead
    assert states[("publish", OUT, "2026-01-05")] == "pending"
    assert states[("publish", OUT, "2026-01-12")] == "done"
    record = next(r for r in iter_records(store, "process", OUT) if r.start.startswith(
        "2026-01-05"))
    assert record.status == "failed" and all("toy failure" in r.reason for r in record.rejected)
    text = run_cli("campaign", "status", str(path), env=plugin_env())
    assert "toy failure" in text.stdout or "products failed" in text.stdout

    retry = run_cli("campaign", "rerun", str(path), "--failed", "--quiet", env=plugin_env())
    assert retry.returncode == 0, retry.stderr[-3000:]
    assert "Retrying 1 failed window" in retry.stderr
    outputs = reachable_ids(store, OUT)
    assert len(outputs) == len(expected_items(simulator, INPUT)) and not duplicates(outputs)
    assert sorted(published_ids(str(public), f"{OWNER}/{OUT}/collection.json")) == \
        sorted(outputs)
    nothing = run_cli("campaign", "rerun", str(path), "--failed", env=plugin_env())
    assert nothing.returncode == 0 and "no failed window" in nothing.stdout


def test_new_processor_version_writes_a_new_collection_and_keeps_the_old(
        simulator, tmp_path: Path) -> None:
    from campaign_support import PLUGINS_V2

    path, catalog, _staging, _public = _files(simulator, tmp_path)
    first = run_cli("campaign", "run", str(path), "--quiet", env=plugin_env())
    assert first.returncode == 0, first.stderr[-3000:]
    store = LocalStore(catalog)
    old = catalog_view(store)
    old_items = {k: v for k, v in old.items() if k.startswith(f"{OUT}/")}

    # the processor team ships 0.2.0; the campaign file asks for it
    write_campaign(path, catalog=str(catalog), staging=str(tmp_path / "staging"),
                   stations=simulator.stations_file, publish_to=str(tmp_path / "public"),
                   version="0.2.0")
    stale = run_cli("campaign", "run", str(path), env=plugin_env())
    assert stale.returncode == 1 and "0.1.0 is installed" in stale.stderr
    second = run_cli("campaign", "run", str(path), "--quiet", env=plugin_env(PLUGINS_V2))
    assert second.returncode == 0, second.stderr[-3000:]
    new_out = f"{INPUT}-toy-v0.2.0"
    view = catalog_view(store)
    # the old version's items are untouched; the new ones are 0.2.0's
    assert {k: v for k, v in view.items() if k.startswith(f"{OUT}/") and
            not k.endswith("collection.json")} == \
        {k: v for k, v in old_items.items() if not k.endswith("collection.json")}
    assert len(reachable_ids(store, new_out)) == len(reachable_ids(store, OUT))
    def rels(cid: str) -> dict[str, str]:
        key = layout.collection_key(cid)
        return {lk["rel"]: layout.resolve_href(key, lk["href"])
                for lk in view[key]["links"] if lk["rel"].endswith("-version")}

    assert rels(new_out) == {"predecessor-version": layout.collection_key(OUT),
                             "latest-version": layout.collection_key(new_out)}
    assert rels(OUT) == {"successor-version": layout.collection_key(new_out),
                         "latest-version": layout.collection_key(new_out)}
    assert view[layout.collection_key(OUT)]["version"] == "0.1.0"
    assert view[layout.collection_key(new_out)]["version"] == "0.2.0"
    assert validate_catalog(store).ok
