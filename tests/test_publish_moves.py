"""Publish follows items whose datetime moved (to another day or month) and items that
left the working catalog: the published tree holds each item once, where the working
catalog files it, and nothing it no longer links."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.publish.config import parse_config
from rspy_batch.publish.publication import publish_catalog
from rspy_batch.windows import parse_when

CONFIG = parse_config({"public_url": "https://data.example.eu/cat/", "title": "Moves",
                       "collections": {"c": {"owner": "esa"}}})
FEBRUARY = {"start": "2026-02-01", "stop": "2026-03-01"}
COLLECTION = {"type": "Collection", "stac_version": "1.1.0", "id": "c", "title": "c",
              "description": "c items", "license": "other", "links": [], "extent": {}}


def feature(item_id: str, when: str) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": item_id,
            "geometry": None, "properties": {"datetime": when}, "links": [],
            "assets": {"data": {"href": f"https://station.example.eu/{item_id}",
                                "roles": ["data"]}}}


def published_items(dest: Path) -> list[str]:
    """Keys of the published items reachable from the public root, each time reached."""
    store = LocalStore(dest)
    found, todo = [], ["catalog.json"]
    while todo:
        key = todo.pop()
        doc = loads(store.read(key).data)
        if doc.get("type") == "Feature":
            found.append(key)
            continue
        todo += [layout.resolve_href(key, lk["href"]) for lk in doc["links"]
                 if lk["rel"] in ("child", "item")]
    return sorted(found)


def stored(dest: Path) -> set[str]:
    return {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()
            and not str(p.relative_to(dest)).startswith(("_rspy/", ".rspy-locks"))}


def publish(work: Path, dest: Path, **window: str) -> dict[str, int]:
    bounds = {k: parse_when(v) for k, v in window.items()}
    outcome = publish_catalog(str(work), str(dest), config=CONFIG, browser=False, **bounds)
    (result,) = outcome.results
    assert result.record.status == "complete", result.record
    report = validate_catalog(LocalStore(dest))
    assert report.errors == [] and report.orphans == [], (report.errors, report.orphans)
    return result.counts


def test_moved_and_vanished_items_leave_the_published_tree(tmp_path: Path) -> None:
    work, dest = tmp_path / "work", tmp_path / "pub"
    writer = CatalogWriter(LocalStore(work))
    writer.ensure_collection(COLLECTION)
    writer.upsert_items("c", [feature("a", "2026-01-10T10:00:00Z"),
                              feature("b", "2026-01-10T11:00:00Z"),
                              feature("d", "2026-01-20T11:00:00Z")])
    publish(work, dest)
    assert published_items(dest) == ["esa/c/2026/01/10/a/a.json", "esa/c/2026/01/10/b/b.json",
                                     "esa/c/2026/01/20/d/d.json"]

    # a moves to another month, b to another day of its month
    writer.upsert_items("c", [feature("a", "2026-02-03T10:00:00Z"),
                              feature("b", "2026-01-12T11:00:00Z")])
    # publish only February: January's copy of a is withdrawn all the same
    counts = publish(work, dest, start="2026-02-01", stop="2026-03-01")
    assert counts["withdrawn"] == 1
    assert "esa/c/2026/02/03/a/a.json" in published_items(dest)
    assert "esa/c/2026/01/10/a/a.json" not in published_items(dest)
    publish(work, dest)  # everything: b's move
    assert published_items(dest) == ["esa/c/2026/01/12/b/b.json", "esa/c/2026/01/20/d/d.json",
                                     "esa/c/2026/02/03/a/a.json"]
    # nothing of the old places is left: day 10 lost all its items, its catalog is gone
    assert not any("/2026/01/10/" in k for k in stored(dest)), sorted(stored(dest))

    # d leaves the working catalog (as a crash-free writer never does by itself)
    shutil.rmtree(work / "c/2026/01/20")
    day = loads((work / "c/2026/01/catalog.json").read_bytes())
    day["links"] = [lk for lk in day["links"] if "20/" not in lk["href"]]
    (work / "c/2026/01/catalog.json").write_text(json.dumps(day))
    counts = publish(work, dest)
    assert counts["withdrawn"] == 1
    assert published_items(dest) == ["esa/c/2026/01/12/b/b.json", "esa/c/2026/02/03/a/a.json"]
    assert not any("/2026/01/20/" in k for k in stored(dest))

    # all of January leaves: its month catalog and index go, the year keeps February
    writer.upsert_items("c", [feature("b", "2026-02-05T11:00:00Z")])
    publish(work, dest)
    assert published_items(dest) == ["esa/c/2026/02/03/a/a.json", "esa/c/2026/02/05/b/b.json"]
    assert not any("/2026/01/" in k or "month=01" in k for k in stored(dest)), stored(dest)
    before = {k: (dest / k).read_bytes() for k in stored(dest)}
    assert publish(work, dest)["withdrawn"] == 0
    assert {k: (dest / k).read_bytes() for k in stored(dest)} == before  # converged


class Crash(Exception):
    """The publisher was killed."""


class Fuse:
    """Blows at the k-th write or delete into one store."""

    def __init__(self, root: Path, k: int) -> None:
        self.root, self.k, self.calls = root, k, 0

    def tick(self, store: LocalStore) -> None:
        if store.root == self.root:
            self.calls += 1
            if self.calls == self.k:
                raise Crash(self.k)


def test_a_withdrawal_interrupted_anywhere_converges(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The k-th write or delete into the destination fails, for every k: the re-run ends
    where an uninterrupted run ends, byte for byte, and no step leaves a broken link.
    Only February is published, so January's withdrawal is outside the window."""
    work, before = tmp_path / "work", tmp_path / "before"
    writer = CatalogWriter(LocalStore(work))
    writer.ensure_collection(COLLECTION)
    writer.upsert_items("c", [feature("a", "2026-01-10T10:00:00Z"),
                              feature("b", "2026-01-10T11:00:00Z"),
                              feature("d", "2026-01-20T11:00:00Z")])
    publish(work, before)
    writer.upsert_items("c", [feature("a", "2026-02-03T10:00:00Z"),
                              feature("b", "2026-01-12T11:00:00Z")])
    clean = tmp_path / "clean"
    shutil.copytree(before, clean)
    publish(work, clean, **FEBRUARY)
    want = {k: (clean / k).read_bytes() for k in stored(clean)}

    put, delete = LocalStore.put, LocalStore.delete
    for k in range(1, 200):
        dest = tmp_path / f"crash-{k}"
        shutil.copytree(before, dest)
        fuse = Fuse(dest, k)

        def crashing_put(self: LocalStore, key: str, data: bytes, fuse: Fuse = fuse,
                         **kw: Any) -> str:
            fuse.tick(self)
            return put(self, key, data, **kw)

        def crashing_delete(self: LocalStore, key: str, fuse: Fuse = fuse) -> None:
            fuse.tick(self)
            delete(self, key)

        monkeypatch.setattr(LocalStore, "put", crashing_put)
        monkeypatch.setattr(LocalStore, "delete", crashing_delete)
        try:  # a crash in a collection's run is recorded, one after it propagates
            publish_catalog(str(work), str(dest), config=CONFIG, browser=False,
                            **{k: parse_when(v) for k, v in FEBRUARY.items()})
        except Crash:
            pass
        finally:
            monkeypatch.undo()
        if fuse.calls < k:
            break  # the run made fewer than k writes: every point was tried
        assert not [e for e in validate_catalog(LocalStore(dest)).errors
                    if "reachable 2 times" not in e], k  # no broken link, at most a duplicate
        publish(work, dest, **FEBRUARY)
        assert {key: (dest / key).read_bytes() for key in stored(dest)} == want, k
    else:
        raise AssertionError("the publish never ran out of writes")
    assert k > 10  # the withdrawal's steps were among those interrupted
