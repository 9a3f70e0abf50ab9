"""Property: any sequence of adds, updates, identical re-adds and crashes of the catalog
writer leaves a valid catalog in which every item is reachable exactly once.

A hypothesis state machine drives :class:`CatalogWriter` over a :class:`LocalStore` in a
temporary directory, against a model (``(collection, id) → item``). A crash is the k-th
``put`` of an operation failing, before or after the object lands (a process killed
mid-sequence); a later "restart" is a fresh writer redoing the interrupted operation.

- After every step, crashed or not: no link leads to a missing file and every reachable
  item is the model's or the interrupted operation's version (a crash leaves orphans only).
- After every completed operation: no orphans either; the items reachable from the root,
  by links (walked here, independently of the library's walkers), are exactly the model's,
  each once, in the folder its UTC day gives, with the model's latest content; every
  stored document validates against its schemas; each collection's extent covers its items.
  The id index names each item's key and nothing stale.
- Re-adding identical items writes nothing.

Updates move an item's datetime within its UTC day or to another day (another folder):
mid-move, an interrupted operation may leave its item reachable at both keys, never at
none; the next run retires the old copy.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from prop_support import SAFE_ID_CHARS, prop_settings

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import ANY, Blob, LocalStore, Store
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.catalog.writer import CatalogWriter, UpsertResult
from rspy_batch.validation import validate_dict

COLLECTIONS = ("s1-aux", "cadip_mti", "prip.s2b")
ROOT = "catalog.json"


class Crash(Exception):
    """The writing process was killed."""


class CrashingStore(Store):
    """A store whose k-th ``put`` from now fails, before or after the object is written."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.write_concurrency = 1
        self.puts = 0
        self._countdown: int | None = None
        self._after = False

    def arm(self, k: int, after: bool) -> None:
        self._countdown, self._after = k, after

    def disarm(self) -> None:
        self._countdown = None

    def read(self, key: str) -> Blob | None:
        return self.inner.read(key)

    def put(self, key: str, data: bytes, *, expect: Any = ANY,
            content_type: str = "application/json") -> str:
        self.puts += 1
        if self._countdown is not None:
            self._countdown -= 1
            if self._countdown == 0:
                self._countdown = None
                if self._after:
                    self.inner.put(key, data, expect=expect, content_type=content_type)
                raise Crash(key)
        return self.inner.put(key, data, expect=expect, content_type=content_type)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def collection_doc(cid: str) -> dict[str, Any]:
    return {"type": "Collection", "stac_version": "1.1.0", "id": cid, "title": f"{cid} items",
            "description": f"the {cid} collection", "license": "other", "links": [],
            "extent": {}}


def utc_day(text: str) -> tuple[str, str, str]:
    t = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return f"{t.year:04d}", f"{t.month:02d}", f"{t.day:02d}"


def rfc3339(t: datetime, zone: str) -> str:
    """Item datetime text in UTC (STAC 1.1 wants Z or +00:00), milliseconds or none,
    written here rather than by the code under test."""
    frac = f".{t.microsecond // 1000:03d}" if t.microsecond else ""
    return f"{t.astimezone(UTC):%Y-%m-%dT%H:%M:%S}{frac}{zone}"


# Spread over days, months and years; millisecond precision as the mappers write.
instants = st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
utc_suffixes = st.sampled_from(["Z", "+00:00"])
item_ids = st.text(alphabet=SAFE_ID_CHARS, min_size=1, max_size=24).filter(
    lambda s: s[0].isalnum() and ".." not in s and s not in layout.RESERVED_NAMES)
boxes = st.tuples(st.integers(-180, 170), st.integers(-90, 80), st.integers(1, 10),
                  st.integers(1, 10)).map(lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])
extra_properties = st.dictionaries(
    st.sampled_from(["title", "platform", "rspy:note", "sat:absolute_orbit_text"]),
    st.text(max_size=12), max_size=2)


# What an item is made of besides its id (fixed strategies: drawing is then cheap).
item_parts = st.tuples(instants, utc_suffixes, extra_properties, st.none() | boxes,
                       st.text(max_size=8))
times_of_day = st.times(max_value=time(23, 59, 59, 999000)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))


def make_item(item_id: str, parts: tuple[Any, ...], when: datetime | None = None
              ) -> dict[str, Any]:
    t, suffix, extra, box, title = parts
    item: dict[str, Any] = {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": item_id,
        "geometry": None,
        "properties": {"datetime": rfc3339(when or t, suffix), **extra},
        "links": [],
        "assets": {"data": {"href": f"https://station.example.eu/Products({item_id})/$value",
                            "roles": ["data"], "title": title}},
    }
    if box is not None:
        x0, y0, x1, y1 = box
        item["geometry"] = {"type": "Polygon", "coordinates": [
            [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
        item["bbox"] = box
    return item


@dataclass
class Operation:
    """``ensure_collection`` then ``upsert_items`` of one batch, as ingest does."""

    cid: str
    items: list[dict[str, Any]]
    expected: dict[str, str] = field(default_factory=dict)  # id → added/updated/unchanged


def walk(store: Store) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(key, item) reachable from the root by child/item links (each time reached), and
    the keys linked but missing."""
    found: list[tuple[str, dict[str, Any]]] = []
    missing: list[str] = []
    seen = {ROOT}
    todo = [ROOT]
    while todo:
        key = todo.pop()
        blob = store.read(key)
        if blob is None:
            missing.append(key)
            continue
        doc = loads(blob.data)
        if doc.get("type") == "Feature":
            found.append((key, doc))
            continue
        for link in doc.get("links", []):
            if link["rel"] not in ("child", "item"):
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(key), link["href"]))
            if link["rel"] == "item":
                todo.append(target)  # an item linked twice must show twice
            elif target not in seen:
                seen.add(target)
                todo.append(target)
    return found, missing


def without_tree_fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("links", "collection")}


class WriterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="rspy-prop-writer-"))
        self.store = CrashingStore(LocalStore(self.tmp / "catalog"))
        self.model: dict[tuple[str, str], dict[str, Any]] = {}
        self.pending: Operation | None = None
        self.validated: dict[str, bytes] = {}  # documents already checked against schemas

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------

    def busy(self, cid: str, item_id: str) -> bool:
        p = self.pending
        return p is not None and p.cid == cid and any(it["id"] == item_id for it in p.items)

    def idle_keys(self) -> list[tuple[str, str]]:
        return sorted(k for k in self.model if not self.busy(*k))

    def run(self, op: Operation, writer: CatalogWriter) -> UpsertResult:
        writer.ensure_collection(collection_doc(op.cid))
        return writer.upsert_items(op.cid, op.items)

    def complete(self, op: Operation, result: UpsertResult) -> None:
        got = {i: kind for kind in ("added", "updated", "unchanged")
               for i in getattr(result, kind)}
        assert got == op.expected, (got, op.expected)
        for item in op.items:
            self.model[(op.cid, item["id"])] = item

    def operation(self, cid: str, batch: list[dict[str, Any]]) -> Operation:
        expected = {}
        for item in batch:
            old = self.model.get((cid, item["id"]))
            expected[item["id"]] = ("added" if old is None else
                                    "unchanged" if old == item else "updated")
        return Operation(cid, batch, expected)

    # -- rules ---------------------------------------------------------------------------

    @initialize(data=st.data(), cid=st.sampled_from(COLLECTIONS))
    def first_items(self, data: st.DataObject, cid: str) -> None:
        # An empty store has no root catalog; starting with items keeps every rule enabled.
        assert self.store.read(ROOT) is None
        self.add(data, cid)

    @rule(data=st.data(), cid=st.sampled_from(COLLECTIONS))
    def add(self, data: st.DataObject, cid: str) -> None:
        op = self.operation(cid, self.new_items(data, cid))
        self.complete(op, self.run(op, CatalogWriter(self.store)))

    @precondition(lambda self: self.idle_keys())
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.idle_keys()))[0]
        same = [k for k in self.idle_keys() if k[0] == cid]
        keys = data.draw(st.lists(st.sampled_from(same), min_size=1, max_size=3, unique=True))
        op = self.operation(cid, [self.changed(data, k) for k in keys])
        self.complete(op, self.run(op, CatalogWriter(self.store)))

    @precondition(lambda self: self.idle_keys())
    @rule(data=st.data())
    def readd_identical(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.idle_keys()))
        same = [self.model[k] for k in self.idle_keys() if k[0] == key[0]]
        batch = data.draw(st.lists(st.sampled_from(same), min_size=1, max_size=3,
                                   unique_by=lambda it: it["id"]))
        op = self.operation(key[0], batch)
        before = self.store.puts
        self.complete(op, self.run(op, CatalogWriter(self.store)))
        assert self.store.puts == before, "re-adding identical items wrote something"

    # No preconditions on crash/restart: hypothesis gives up on an example when it draws
    # disabled rules too often, and one of these two is always disabled.
    @rule(data=st.data(), cid=st.sampled_from(COLLECTIONS), k=st.integers(1, 12),
          after=st.booleans(), kind=st.sampled_from(["add", "update"]))
    def crash(self, data: st.DataObject, cid: str, k: int, after: bool, kind: str) -> None:
        self.restart()  # one interrupted operation at a time
        targets = [key for key in self.idle_keys() if key[0] == cid]
        if kind == "update" and targets:
            keys = data.draw(st.lists(st.sampled_from(targets), min_size=1, max_size=3,
                                      unique=True))
            batch = [self.changed(data, key) for key in keys]
        else:
            batch = self.new_items(data, cid)
        op = self.operation(cid, batch)
        self.store.arm(k, after)
        try:
            result = self.run(op, CatalogWriter(self.store))
        except Crash:
            event(f"crash: interrupted ({'after' if after else 'before'} the write)")
            self.pending = op
            return
        finally:
            self.store.disarm()
        event("crash: the operation made fewer writes than k")
        self.complete(op, result)

    @rule()
    def restart(self) -> None:
        op, self.pending = self.pending, None
        if op is None:
            return
        # The crashed run may have written part of it: only the overall outcome counts.
        result = self.run(op, CatalogWriter(self.store))
        op.expected = {i: kind for kind in ("added", "updated", "unchanged")
                       for i in getattr(result, kind)}
        self.complete(op, result)

    def new_items(self, data: st.DataObject, cid: str) -> list[dict[str, Any]]:
        ids = data.draw(st.lists(item_ids, min_size=1, max_size=4, unique=True))
        fresh = [i for i in ids if (cid, i) not in self.model and not self.busy(cid, i)]
        return [make_item(i, data.draw(item_parts)) for i in fresh or [f"new-{len(self.model)}"]]

    def changed(self, data: st.DataObject, key: tuple[str, str]) -> dict[str, Any]:
        """The item at ``key`` with new properties and a new time, on the same UTC day or
        (its own drawn instant) any other."""
        when = None
        if data.draw(st.booleans(), label="same day"):
            y, m, d = (int(p) for p in utc_day(self.model[key]["properties"]["datetime"]))
            when = datetime.combine(datetime(y, m, d).date(), data.draw(times_of_day), UTC)
        item = make_item(key[1], data.draw(item_parts), when)
        event("update: same day" if utc_day(item["properties"]["datetime"])
              == utc_day(self.model[key]["properties"]["datetime"]) else "update: moves day")
        return item

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def no_link_to_a_missing_file(self) -> None:
        report = validate_catalog(self.store, schemas=False, workers=1)
        if self.store.read(ROOT) is None:  # nothing written yet, or a crash before the root
            assert not self.model and report.errors == [f"{self.store.href(ROOT)}: no root "
                                                        "catalog"], report.errors
            return
        # Mid-move, the interrupted operation's items may be reachable at both keys.
        assert [e for e in report.errors if not self.mid_move(e)] == [], report.errors
        found, missing = walk(self.store)
        assert missing == []
        counts = Counter((doc["collection"], doc["id"]) for _, doc in found)
        assert all(n == 1 or (n == 2 and self.busy(*k)) for k, n in counts.items()), counts
        for key, doc in found:
            cid, item_id = doc["collection"], doc["id"]
            y, m, d = utc_day(doc["properties"]["datetime"])
            assert key == f"{cid}/{y}/{m}/{d}/{item_id}/{item_id}.json", key
            allowed = [self.model.get((cid, item_id))]
            if self.busy(cid, item_id):
                allowed += [it for it in self.pending.items if it["id"] == item_id]
            assert without_tree_fields(doc) in [without_tree_fields(a) for a in allowed
                                                if a is not None], (key, doc)
        if self.pending is None:
            self.complete_catalog(report.orphans, found)

    def mid_move(self, error: str) -> bool:
        p = self.pending
        return p is not None and any(
            error.startswith(f"{p.cid}/collection.json: item id {it['id']!r} is reachable 2 ")
            for it in p.items)

    def complete_catalog(self, orphans: list[str], found: list[tuple[str, dict]]) -> None:
        assert orphans == []
        reachable = {(doc["collection"], doc["id"]) for _, doc in found}
        assert reachable == set(self.model)
        assert len(found) == len(reachable)
        for key, doc in found:  # the id index: each item's key, nothing left to retire
            entry = loads(self.store.read(layout.id_key(doc["collection"], doc["id"])).data)
            assert entry == {"key": key}, (key, entry)
        for cid in {c for c, _ in self.model}:
            coll = loads(self.store.read(f"{cid}/collection.json").data)
            members = [it for (c, _), it in self.model.items() if c == cid]
            (start, end), = coll["extent"]["temporal"]["interval"]
            times = [datetime.fromisoformat(it["properties"]["datetime"].replace("Z", "+00:00"))
                     for it in members]
            parse = datetime.fromisoformat
            assert parse(start.replace("Z", "+00:00")) <= min(times)
            assert parse(end.replace("Z", "+00:00")) >= max(times)
            boxes_ = [it["bbox"] for it in members if "bbox" in it]
            if boxes_:
                (x0, y0, x1, y1), = coll["extent"]["spatial"]["bbox"]
                assert x0 <= min(b[0] for b in boxes_) and y0 <= min(b[1] for b in boxes_)
                assert x1 >= max(b[2] for b in boxes_) and y1 >= max(b[3] for b in boxes_)
        for key in self.store.list():
            if not key.endswith(".json") or key.startswith("_rspy/"):
                continue
            data = self.store.read(key).data
            # Items: once per key (the writer adds the same tree fields to each, and their
            # schema check is the slow one); catalogs and collections: on every change.
            seen = self.validated.get(key)
            is_item = key.count("/") == 5  # <collection>/YYYY/MM/DD/<id>/<id>.json
            if seen is None or (seen != data and not is_item):
                assert validate_dict(loads(data)) == [], key
                self.validated[key] = data


WriterMachine.TestCase.settings = prop_settings(10, stateful_step_count=20)
test_writer_state_machine = WriterMachine.TestCase


def feature(item_id: str, when: str, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": item_id,
            "geometry": None, "properties": {"datetime": when, **props}, "links": [],
            "assets": {}}


def keep_note(existing: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A merge that keeps what a later stage wrote into the stored item (as ingest does)."""
    if existing and "note" in existing["properties"]:
        return {**new, "properties": {**new["properties"], "note": existing["properties"]["note"]}}
    return new


def test_an_item_moved_to_another_day_is_retired_from_the_old_one(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "catalog")
    writer = CatalogWriter(store)
    writer.ensure_collection(collection_doc("c"))
    writer.upsert_items("c", [feature("a", "2026-01-01T10:00:00.000Z", note="staged")])
    result = writer.upsert_items("c", [feature("a", "2026-02-03T10:00:00.000Z")],
                                 merge=keep_note)
    assert result.updated == ["a"] and not result.added
    found, missing = walk(store)
    assert [key for key, _ in found] == ["c/2026/02/03/a/a.json"] and not missing
    # the merge saw the old copy: what a later stage wrote there moved with the item
    assert found[0][1]["properties"]["note"] == "staged"
    assert not store.exists("c/2026/01/01/a/a.json")
    day = loads(store.read("c/2026/01/01/catalog.json").data)
    assert [lk for lk in day["links"] if lk["rel"] == "item"] == []
    assert loads(store.read(layout.id_key("c", "a")).data) == {"key": "c/2026/02/03/a/a.json"}
    report = validate_catalog(store, schemas=False)
    assert report.errors == [] and report.orphans == []


def test_a_move_interrupted_then_moved_again_retires_every_earlier_copy(tmp_path: Path) -> None:
    """Crash right after the id index names the new key (nothing written there yet), then
    the next run brings yet another datetime: both earlier keys are retired."""
    store = CrashingStore(LocalStore(tmp_path / "catalog"))
    CatalogWriter(store).ensure_collection(collection_doc("c"))
    CatalogWriter(store).upsert_items("c", [feature("a", "2026-01-01T10:00:00.000Z")])
    for k, after in ((1, True), (2, True), (3, False)):  # the index, the item, the day
        store.arm(k, after)
        try:
            CatalogWriter(store).upsert_items("c", [feature("a", f"2026-01-0{k + 1}T10:00:00Z")])
        except Crash:
            pass
        finally:
            store.disarm()
        found, missing = walk(store)
        assert found and not missing  # reachable throughout, maybe twice
    entry = loads(store.read(layout.id_key("c", "a")).data)
    assert entry["key"] == "c/2026/01/04/a/a.json" and len(entry["stale"]) == 3, entry
    CatalogWriter(store).upsert_items("c", [feature("a", "2026-01-09T10:00:00Z")])
    found, _ = walk(store)
    assert [key for key, _ in found] == ["c/2026/01/09/a/a.json"]
    assert sorted(k for k in store.list() if k.count("/") == 5) == ["c/2026/01/09/a/a.json"]
    assert loads(store.read(layout.id_key("c", "a")).data) == {"key": "c/2026/01/09/a/a.json"}
    report = validate_catalog(store, schemas=False)
    assert report.errors == [] and report.orphans == []


def test_a_second_copy_of_an_item_is_reported(tmp_path: Path) -> None:
    """A catalog written before the id index existed may hold an item twice (its datetime
    moved to another day); ``validate`` says so (it used to count keys only)."""
    store = LocalStore(tmp_path / "catalog")
    writer = CatalogWriter(store)
    writer.ensure_collection(collection_doc("c"))
    writer.upsert_items("c", [feature("a", "2026-01-01T10:00:00.000Z")])
    store.delete(layout.id_key("c", "a"))  # as before the index
    writer.upsert_items("c", [feature("a", "2026-01-02T10:00:00.000Z")])
    found, _ = walk(store)
    assert sorted(key for key, _ in found) == ["c/2026/01/01/a/a.json", "c/2026/01/02/a/a.json"]
    report = validate_catalog(store, schemas=False)
    assert [e for e in report.errors if "'a'" in e] == [
        "c/collection.json: item id 'a' is reachable 2 times: c/2026/01/01/a/a.json, "
        "c/2026/01/02/a/a.json"]
