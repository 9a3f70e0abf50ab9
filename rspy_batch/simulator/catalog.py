"""One station's entities: built lazily once, queried with a result cache, payloads on demand."""

from __future__ import annotations

import gc
import hashlib
import threading
from collections import OrderedDict
from typing import Any

from rspy_batch.formats.cadu import CADU_LEN
from rspy_batch.simulator.cadip_data import block_sizes, build_cadip
from rspy_batch.simulator.config import SimConfig, StationDef
from rspy_batch.simulator.eopf import CACHE, ZARR_ZIP
from rspy_batch.simulator.eopf_data import build_lta_eopf, build_prip_eopf
from rspy_batch.simulator.odata_filter import compile_filter
from rspy_batch.simulator.payloads import cadu_chunk, eof_bytes, safe_zip_bytes, tgz_bytes
from rspy_batch.simulator.product_data import build_auxip, build_lta, build_prip_s1
from rspy_batch.simulator.query import parse_orderby, sort_entities
from rspy_batch.simulator.records import Record

_LAZY_FIELDS = {"ContentLength", "Checksum"}
_QUERY_CACHE_SIZE = 128
_PAYLOAD_CACHE_BYTES = 64 * 1024 * 1024


def _schema(records: list[Record]) -> frozenset[str]:
    names: set[str] = set()
    for rec in records:
        names.update(rec.entity)
        if "missing_field" in rec.extra:
            names.add(rec.extra["missing_field"])
    if "ContentDate" in names:
        names.update(("ContentDate/Start", "ContentDate/End"))
    return frozenset(n for n in names if not n.startswith("@"))


class StationCatalog:
    """Entities of one station, grouped by entity set (Sessions, Files, Products...)."""

    def __init__(self, config: SimConfig, station: StationDef) -> None:
        self.config = config
        self.station = station
        self._lock = threading.Lock()
        self._sets: dict[str, list[Record]] | None = None
        self._by_id: dict[str, Record] = {}
        self._index: dict[str, dict[str, Record]] = {}
        self._schemas: dict[str, frozenset[str]] = {}
        self._results: OrderedDict[tuple, list[Record]] = OrderedDict()
        self._payloads: OrderedDict[str, bytes] = OrderedDict()
        self._payload_bytes = 0
        self._block_frames = tuple(s // CADU_LEN for s in block_sizes(config.cadu_chunk_bytes))

    # -- building -------------------------------------------------------------
    def sets(self) -> dict[str, list[Record]]:
        with self._lock:
            if self._sets is None:
                # The cyclic GC rescans the growing heap while millions of small
                # dicts are created (quadratic in practice); entities are never
                # cyclic garbage, so pause it, then freeze them out of its scans.
                gc.disable()
                try:
                    self._sets = self._build()
                finally:
                    gc.enable()
                gc.freeze()
                for name, records in self._sets.items():
                    self._schemas[name] = _schema(records)
                    self._index[name] = {rec.id: rec for rec in records}
                    self._by_id.update(self._index[name])
            return self._sets

    def _build(self) -> dict[str, list[Record]]:
        c, s = self.config, self.station
        if s.service == "cadip":
            content = build_cadip(c, s)
            return {
                "Sessions": content.sessions,
                "Files": content.files,
                "QualityInfo": content.quality,
            }
        if s.service == "auxip":
            return {"Products": build_auxip(c, s)}
        if s.service == "lta":
            return {"Products": build_lta(c, s) + build_lta_eopf(c, s)}
        raw = build_prip_s1(c, s) if s.satellite.startswith("S1") else []
        return {"Products": raw + build_prip_eopf(c, s)}

    def schema(self, set_name: str) -> frozenset[str]:
        self.sets()
        return self._schemas[set_name]

    def get(self, set_name: str, entity_id: str) -> Record | None:
        self.sets()
        return self._index.get(set_name, {}).get(entity_id)

    def files_of(self, session: Record) -> list[Record]:
        self.sets()
        return [self._by_id[i] for i in session.extra.get("file_ids", [])]

    # -- queries --------------------------------------------------------------
    def query(self, set_name: str, filter_text: str | None, orderby: str | None) -> list[Record]:
        """Filtered and sorted records, cached so that paging costs O(page)."""
        key = (set_name, filter_text, orderby)
        with self._lock:
            hit = self._results.get(key)
            if hit is not None:
                self._results.move_to_end(key)
                return hit
        records = self.sets().get(set_name, [])
        schema = self.schema(set_name)
        compiled = compile_filter(filter_text, schema) if filter_text else None
        keys = parse_orderby(orderby, schema) if orderby else []
        needs = (compiled.fields if compiled else set()) | {k[0][0] for k in keys}
        if needs & _LAZY_FIELDS:
            for rec in records:
                self.materialize(rec)
        result = [r for r in records if compiled.predicate(r.entity)] if compiled else records
        if keys:
            result = sort_entities(result, keys, lambda r: r.entity)
        with self._lock:
            self._results[key] = result
            if len(self._results) > _QUERY_CACHE_SIZE:
                self._results.popitem(last=False)
        return result

    # -- payloads -------------------------------------------------------------
    def payload(self, rec: Record) -> bytes:
        with self._lock:
            data = self._payloads.get(rec.id)
            if data is not None:
                self._payloads.move_to_end(rec.id)
                return data
        data = self._generate(rec)
        with self._lock:
            if len(data) <= _PAYLOAD_CACHE_BYTES // 4:
                self._payloads[rec.id] = data
                self._payload_bytes += len(data)
                while self._payload_bytes > _PAYLOAD_CACHE_BYTES:
                    _, old = self._payloads.popitem(last=False)
                    self._payload_bytes -= len(old)
        return data

    def _generate(self, rec: Record) -> bytes:
        seed = self.config.seed
        if rec.payload_kind == "cadu":
            return cadu_chunk(seed, rec, self.station.satellite, self._block_frames)
        if rec.payload_kind == "eof":
            return eof_bytes(seed, rec)
        if rec.payload_kind == "tgz":
            return tgz_bytes(seed, rec, self.config.product_bytes)
        if rec.payload_kind == "safe":
            return safe_zip_bytes(seed, rec, self.config.product_bytes)
        if rec.payload_kind == "eopf":
            name = rec.key.removesuffix(ZARR_ZIP)
            path = CACHE.get(rec.extra["eopf"], name, seed, rec.id, self.config.eopf_size)
            return path.read_bytes()
        raise ValueError(f"{rec.key} has no payload")

    def materialize(self, rec: Record) -> Record:
        """Fill size and MD5 (and the lazy ContentLength/Checksum fields) once."""
        if rec.md5 is not None or not rec.payload_kind:
            return rec
        data = self.payload(rec)
        md5 = hashlib.md5(data).hexdigest()
        advertised = md5
        if "bad-checksum" in rec.faults:
            advertised = hashlib.md5(data + b"bad-checksum").hexdigest()
        if rec.extra.get("checksum_style") == "mixed":
            advertised = _mixed_case(advertised, md5)
        e = rec.entity
        if "ContentLength" in e:
            as_text = rec.extra["length_type"] == "string"
            e["ContentLength"] = str(len(data)) if as_text else len(data)
        if "Checksum" in e:
            e["Checksum"] = [
                {
                    "Algorithm": "MD5",
                    "Value": advertised,
                    "ChecksumDate": rec.extra["checksum_date"],
                }
            ]
        rec.size = len(data)
        rec.md5 = md5  # written last: other threads test it to skip the work
        return rec

    # -- ground truth ---------------------------------------------------------
    def truth(self) -> list[dict[str, Any]]:
        sets = self.sets()
        if self.station.service == "cadip":
            out = []
            for s in sets["Sessions"]:
                item = {**s.entity, "_faults": list(s.faults)}
                item["Files"] = [self._truth_file(f) for f in self.files_of(s)]
                out.append(item)
            return out
        return [
            {
                **self.materialize(r).entity,
                "_faults": list(r.faults),
                "_md5": r.md5,
                "_size": r.size,
                "_name": r.key,
            }
            for r in sets["Products"]
        ]

    @staticmethod
    def _truth_file(f: Record) -> dict[str, Any]:
        x = f.extra
        return {
            **f.entity,
            "_faults": list(f.faults),
            "_name": f.key,
            "_spacecraft_id": x["spacecraft_id"],
            "_frames": x["frames"],
            "_gaps": x["gaps"],
        }


def _mixed_case(value: str, salt: str) -> str:
    """Mixed-case hex as in the AUXIP fixtures; deterministic from the true MD5."""
    return "".join(c.upper() if int(salt[i % 32], 16) & 1 else c for i, c in enumerate(value))
