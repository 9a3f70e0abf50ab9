"""Staging pieces on their own: sinks, LTA order states, key confinement, staleness."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rspy_batch.staging import lta as staging_lta
from rspy_batch.staging.sinks import LocalSink, S3Sink, open_sink
from rspy_batch.staging.state import apply_staging, is_staged, staged_asset, unstage_if_changed
from rspy_batch.staging.transfer import TransferFailed


def test_local_sink_commit_is_atomic_and_abort_leaves_nothing(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "stage")
    upload = sink.open("c/2026/01/item/file.raw")
    upload.write(b"half")
    assert sink.stat("c/2026/01/item/file.raw") is None  # not visible before commit
    upload.abort()
    assert not any(p.is_file() for p in (tmp_path / "stage").rglob("*"))
    upload = sink.open("c/2026/01/item/file.raw")
    upload.write(b"whole file")
    upload.commit(hashlib.md5(b"whole file").hexdigest())
    info = sink.stat("c/2026/01/item/file.raw")
    assert info.size == 10 and info.md5 == hashlib.md5(b"whole file").hexdigest()
    assert set(sink.existing("c/")) == {"c/2026/01/item/file.raw"}


def test_s3_sink_multipart_only_visible_after_commit(s3_bucket: str) -> None:
    sink = S3Sink(f"s3://{s3_bucket}/p", part_size=5 * 1024 * 1024)
    data = bytes(range(256)) * (6 * 4096)  # 6 MiB: two parts
    upload = sink.open("k/file.bin")
    upload.write(data)
    assert sink.stat("k/file.bin") is None
    upload.abort()
    assert sink.stat("k/file.bin") is None
    assert sink.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    upload = sink.open("k/file.bin", hashlib.md5(data).hexdigest())
    upload.write(data)
    upload.commit(hashlib.md5(data).hexdigest())
    assert sink.read("k/file.bin") == data
    info = sink.stat("k/file.bin")
    assert info.size == len(data) and info.md5 == hashlib.md5(data).hexdigest()


def test_open_sink_dispatch(tmp_path: Path) -> None:
    assert isinstance(open_sink(tmp_path), LocalSink)
    assert isinstance(open_sink("s3://bucket/x"), S3Sink)
    with pytest.raises(Exception, match="unsupported"):
        open_sink("gs://bucket/x")


@pytest.mark.parametrize("states, outcome", [
    (["queued", "in_progress", "completed"], "completed"),
    (["queued", "failed"], "ended failed"),
    (["in_progress", "cancelled"], "ended cancelled"),
    (["queued"] * 50, "not completed after 3 s"),
])
def test_lta_order_states(monkeypatch: pytest.MonkeyPatch, states: list[str], outcome: str
                          ) -> None:
    seq = iter(states)
    clock = [0.0]
    monkeypatch.setattr(staging_lta.lta, "create_order",
                        lambda client, pid: {"Id": "o1", "Status": next(seq)})
    monkeypatch.setattr(staging_lta.lta, "order_status",
                        lambda client, oid: {"Id": oid, "Status": next(seq, "queued")})

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def run() -> dict:
        return staging_lta.wait_for_product(object(), "p1", timeout=3, poll=1,
                                            clock=lambda: clock[0], sleep=sleep)

    if outcome == "completed":
        assert run()["Status"] == "completed"
    else:
        with pytest.raises(TransferFailed, match=outcome):
            run()


def test_staging_state_and_staleness() -> None:
    asset = {"href": "https://st/Products(1)/$value", "file:size": 3,
             "file:checksum": "d510" + "a" * 32}
    staged = staged_asset(asset, href="s3://b/k", size=3, md5="a" * 32,
                          when="2026-01-01T00:00:00.000Z")
    item = {"id": "i", "assets": {"f": asset}, "stac_extensions": []}
    updated = apply_staging(item, {"f": staged})
    assert is_staged(updated) and updated["assets"]["f"]["alternate"]["station"]["href"] == \
        asset["href"]
    assert any("alternate-assets" in e for e in updated["stac_extensions"])
    assert not unstage_if_changed(staged, asset)
    assert unstage_if_changed(staged, {**asset, "file:size": 4})
    # An asset whose station href changed meanwhile (re-ingest) is left for the next run.
    moved = {"id": "i", "assets": {"f": {**asset, "href": "https://other/x"}},
             "stac_extensions": []}
    assert not is_staged(apply_staging(moved, {"f": staged}))
