"""Synthetic AUXIP, PRIP and LTA products (metadata only; payloads are lazy).

The EOPF Zarr products (S1 GRD, S2 L1C, S3 OLCI) are in :mod:`.eopf_data`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from rspy_batch.simulator.cadip_data import entity_count
from rspy_batch.simulator.config import SimConfig, StationDef
from rspy_batch.simulator.detrand import digest, entity_uuid, py_rng
from rspy_batch.simulator.faults import data_faults
from rspy_batch.simulator.geo import footprint_text, geojson_polygon, s1_slice
from rspy_batch.simulator.orbits import absolute_orbit, cycle_number, relative_orbit
from rspy_batch.simulator.records import Record, apply_name_and_field_faults
from rspy_batch.simulator.timefmt import compact, iso_ms

PRODUCT_FAULTS = ("bad-checksum", "missing-field", "evil-name")
PRIP_EVICTION = "9999-12-31T23:59:59.999Z"  # PRIP fixtures advertise "never evicted"
LAZY = None  # ContentLength and Checksum are filled when the payload is materialised


def attr(name: str, value_type: str, value: Any) -> dict[str, Any]:
    return {
        "@odata.type": f"#OData.CSC.{value_type}Attribute",
        "Name": name,
        "ValueType": value_type,
        "Value": value,
    }


def slot_time(config: SimConfig, i: int, n: int, rng: random.Random) -> datetime:
    span = config.stop - config.start
    t = config.start + span * ((i + rng.uniform(0.05, 0.9)) / n)
    return t.replace(microsecond=rng.randrange(1000) * 1000)


def finish(config: SimConfig, rec: Record) -> Record:
    rec.faults = data_faults(config.faults, config.seed, rec.key, PRODUCT_FAULTS)
    apply_name_and_field_faults(rec, config.seed)
    return rec


def build_auxip(config: SimConfig, station: StationDef) -> list[Record]:
    """AUX_RESORB (S1A, .EOF) and AUX_ECMWFD (S2B, .TGZ), interleaved by time."""
    out: list[tuple[datetime, Record]] = []
    for ptype, rate in (("AUX_RESORB", 4), ("AUX_ECMWFD", 2)):
        n = entity_count(config, station, rate)
        for i in range(n):
            rng = py_rng(config.seed, station.id, ptype, i)
            t = slot_time(config, i, n, rng)
            out.append((t, _auxip_product(config, ptype, t, rng)))
    out.sort(key=lambda pair: pair[0])
    return [rec for _, rec in out]


def _auxip_product(config: SimConfig, ptype: str, t: datetime, rng: random.Random) -> Record:
    if ptype == "AUX_RESORB":
        sat, short, serial, ext, kind = "S1A", "SENTINEL-1", "A", "EOF", "eof"
        v_start, v_stop = t - timedelta(minutes=190), t
        gen = t + timedelta(minutes=rng.uniform(40, 90))
        name = f"{sat}_OPER_{ptype}_OPOD_{compact(gen)}_V{compact(v_start)}_{compact(v_stop)}"
        centre, version = "OPOD", "3.4"
    else:
        sat, short, serial, ext, kind = "S2B", "SENTINEL-2", "B", "TGZ", "tgz"
        v_start = t.replace(minute=0, second=0, microsecond=0)
        v_stop = v_start + timedelta(hours=36)
        gen = t + timedelta(minutes=rng.uniform(10, 60))
        name = f"{sat}_OPER_{ptype}_ADG__{compact(gen)}_V{compact(v_start)}_{compact(v_stop)}"
        centre, version = "ADG_", "1.0"
    name = f"{name}.{ext}"
    published = gen + timedelta(minutes=rng.uniform(5, 120))
    entity = {
        "Id": entity_uuid(config.seed, name),
        "Name": name,
        "ContentType": "application/octet-stream",
        "ContentLength": LAZY,
        "OriginDate": iso_ms(gen),
        "PublicationDate": iso_ms(published),
        "EvictionDate": iso_ms(published + timedelta(days=365)),
        "Checksum": LAZY,
        "ContentDate": {"Start": iso_ms(v_start), "End": iso_ms(v_stop)},
        "Attributes": [
            attr("platformShortName", "String", short),
            attr("platformSerialIdentifier", "String", serial),
            attr("productType", "String", ptype),
            attr("beginningDateTime", "DateTimeOffset", iso_ms(v_start)),
            attr("endingDateTime", "DateTimeOffset", iso_ms(v_stop)),
            attr("processingCenter", "String", centre),
            attr("processorVersion", "String", version),
            attr("processingDate", "DateTimeOffset", iso_ms(gen)),
        ],
    }
    rec = Record(entity, "product", name, payload_kind=kind)
    rec.extra.update(checksum_style="mixed", length_type="string", checksum_date=iso_ms(gen))
    return finish(config, rec)


def s1_slice_fields(config: SimConfig, station: StationDef, i: int, n: int) -> tuple[dict, Any]:
    """Shared S1 IW_RAW__0S slice fields for PRIP and LTA."""
    rng = py_rng(config.seed, station.id, "IW_RAW__0S", i)
    start = slot_time(config, i, n, rng)
    stop = start + timedelta(seconds=25, milliseconds=rng.randrange(1000))
    orbit = absolute_orbit("S1A", start)
    datatake = rng.randrange(0x40000, 0x80000)
    crc = digest(config.seed, "crc", station.id, i).hex()[:4].upper()
    name = (
        f"S1A_IW_RAW__0SDV_{compact(start)}_{compact(stop)}_{orbit:06d}_{datatake:06X}_{crc}"
        ".SAFE.zip"
    )
    descending = rng.random() < 0.5
    ring = s1_slice(rng, descending)
    origin = stop + timedelta(minutes=rng.uniform(10, 60))
    published = origin + timedelta(minutes=rng.uniform(1, 120))
    info = {
        "name": name,
        "start": start,
        "stop": stop,
        "orbit": orbit,
        "datatake": datatake,
        "descending": descending,
        "ring": ring,
        "origin": origin,
        "published": published,
    }
    return info, rng


def build_prip_s1(config: SimConfig, station: StationDef) -> list[Record]:
    n = entity_count(config, station, station.rate_per_day)
    out = []
    for i in range(n):
        s, rng = s1_slice_fields(config, station, i, n)
        start, stop, orbit = s["start"], s["stop"], s["orbit"]
        rel = relative_orbit("S1A", start)
        ring = s["ring"]
        entity = {
            "Id": entity_uuid(config.seed, s["name"]),
            "Name": s["name"],
            "ContentType": "application/zip",
            "ContentLength": LAZY,
            "OriginDate": iso_ms(s["origin"]),
            "PublicationDate": iso_ms(s["published"]),
            "ModificationDate": iso_ms(s["published"]),
            "EvictionDate": PRIP_EVICTION,
            "Online": True,
            "Checksum": LAZY,
            "ContentDate": {"Start": iso_ms(start), "End": iso_ms(stop)},
            "Footprint": footprint_text(ring),
            "GeoFootprint": geojson_polygon(ring),
            "ProductionType": "systematic_production",
            "Attributes": [
                attr("polarisationChannels", "String", "VV&VH"),
                attr("productType", "String", "IW_RAW__0S"),
                attr("cycleNumber", "Integer", cycle_number("S1A", start)),
                attr("relativeOrbitNumber", "Integer", rel),
                attr("processingCenter", "String", "S1A_ESRIN"),
                attr("completionTimeFromAscendingNode", "Double", round(rng.uniform(0, 6e6), 3)),
                attr("processingDate", "DateTimeOffset", iso_ms(s["origin"])),
                attr("datatakeID", "Integer", s["datatake"]),
                attr("orbitNumber", "Integer", orbit),
                attr("productConsolidation", "String", "SLICE"),
                attr("endingDateTime", "DateTimeOffset", iso_ms(stop)),
                attr("qualityDataObjectID", "String", "raw_quality"),
                attr("coordinates", "String", " ".join(f"{y},{x}" for x, y in ring[:-1])),
                attr("orbitDirection", "String", "DESCENDING" if s["descending"] else "ASCENDING"),
                attr("sliceProductFlag", "Boolean", True),
                attr("beginningDateTime", "DateTimeOffset", iso_ms(start)),
                attr("instrumentConfigurationID", "Integer", 7),
                attr("startTimeFromAscendingNode", "Double", round(rng.uniform(0, 6e6), 3)),
                attr("instrumentShortName", "String", "SAR"),
                attr("productClass", "String", "S"),
                attr("platformShortName", "String", "SENTINEL-1"),
                attr("platformSerialIdentifier", "String", "A"),
            ],
        }
        rec = Record(entity, "product", s["name"], payload_kind="safe")
        rec.extra.update(
            checksum_style="lower", length_type="int", checksum_date=iso_ms(s["origin"])
        )
        out.append(finish(config, rec))
    return out


def build_lta(config: SimConfig, station: StationDef) -> list[Record]:
    n = entity_count(config, station, station.rate_per_day)
    out = []
    for i in range(n):
        s, _ = s1_slice_fields(config, station, i, n)
        ring = s["ring"]
        archived = s["published"] + timedelta(days=2)
        entity = {
            "Id": entity_uuid(config.seed, s["name"]),
            "Name": s["name"],
            "ContentType": "application/octet-stream",
            "ContentLength": LAZY,
            "OriginDate": iso_ms(s["origin"]),
            "PublicationDate": iso_ms(archived),
            "ModificationDate": iso_ms(archived),
            "EvictionDate": iso_ms(archived + timedelta(days=3650)),
            "Online": "true",  # a string in the LTA reference, unlike PRIP's boolean
            "Checksum": LAZY,
            "ContentDate": {"Start": iso_ms(s["start"]), "End": iso_ms(s["stop"])},
            "Footprint": footprint_text(ring),
            "GeoFootprint": geojson_polygon(ring),
        }
        rec = Record(entity, "product", s["name"], payload_kind="safe")
        rec.extra.update(
            checksum_style="lower", length_type="string", checksum_date=iso_ms(archived)
        )
        out.append(finish(config, rec))
    return out
