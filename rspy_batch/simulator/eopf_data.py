"""Synthetic EOPF Zarr products: S1 IW GRD (PRIP s1a), S2 L1C (PRIP s2b), S3 OLCI EFR
(PRIP s3a), and the same three kinds at the LTA, each named the legacy way plus
``.zarr.zip`` (xarray-eopf's product-type detection matches those names).

Metadata only: a record carries an :class:`~.eopf.EopfPlan` and its zipped Zarr payload is
built from it on first need (:mod:`.eopf`). Every build is a real Zarr write, so EOPF
products are thinned from the station's slot plan: one every ``EOPF_EVERY`` slots, starting
with the first, which keeps them few and puts one at the start of any simulated span.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rspy_batch.simulator.cadip_data import entity_count
from rspy_batch.simulator.config import SimConfig, StationDef
from rspy_batch.simulator.detrand import digest, entity_uuid, py_rng
from rspy_batch.simulator.eopf import ZARR_ZIP, EopfPlan
from rspy_batch.simulator.geo import footprint_text, geojson_polygon, olci_frame, s2_tile
from rspy_batch.simulator.orbits import (
    absolute_orbit,
    cycle_number,
    relative_orbit,
    seconds_since_orbit_start,
)
from rspy_batch.simulator.product_data import (
    LAZY,
    PRIP_EVICTION,
    attr,
    finish,
    s1_slice_fields,
    slot_time,
)
from rspy_batch.simulator.records import Record
from rspy_batch.simulator.timefmt import compact, iso_ms

#: one EOPF product every N slots of the station's plan at ``eopf_scale`` 1 (s1a/s2b/s3a:
#: 12 slots a day, so 0.5 products a day at scale 1; lta: 6 slots a day, kinds taking turns)
EOPF_EVERY: dict[str, int] = {"s1a": 24, "s2b": 24, "s3a": 24, "lta": 24}
ZIP_MEDIA_TYPE = "application/zip"


@dataclass(frozen=True)
class EopfProduct:
    """One product's station-side fields, shared by its PRIP and LTA entity shapes."""

    name: str  # with .zarr.zip
    start: datetime
    stop: datetime
    origin: datetime  # processing (generation) date
    published: datetime
    ring: list[tuple[float, float]]
    attributes: list[dict[str, Any]]  # PRIP Attributes
    plan: EopfPlan


ProductMaker = Callable[[SimConfig, StationDef, int, int], EopfProduct]


def s1_grd(config: SimConfig, station: StationDef, i: int, n: int) -> EopfProduct:
    """The IW GRDH product processed from the station's RAW slice of slot ``i``."""
    s, _ = s1_slice_fields(config, station, i, n)
    rng = py_rng(config.seed, station.id, "IW_GRDH_1S", i)
    start, stop, orbit, ring = s["start"], s["stop"], s["orbit"], s["ring"]
    crc = digest(config.seed, "crc-grd", station.id, i).hex()[:4].upper()
    name = (f"S1A_IW_GRDH_1SDV_{compact(start)}_{compact(stop)}_{orbit:06d}_"
            f"{s['datatake']:06X}_{crc}{ZARR_ZIP}")
    origin = s["origin"] + timedelta(minutes=rng.uniform(20, 90))
    published = origin + timedelta(minutes=rng.uniform(1, 60))
    rel = relative_orbit("S1A", start)
    direction = "DESCENDING" if s["descending"] else "ASCENDING"
    attributes = [
        attr("polarisationChannels", "String", "VV&VH"),
        attr("productType", "String", "IW_GRDH_1S"),
        attr("cycleNumber", "Integer", cycle_number("S1A", start)),
        attr("relativeOrbitNumber", "Integer", rel),
        attr("processingCenter", "String", "S1A_ESRIN"),
        attr("processingDate", "DateTimeOffset", iso_ms(origin)),
        attr("datatakeID", "Integer", s["datatake"]),
        attr("orbitNumber", "Integer", orbit),
        attr("productConsolidation", "String", "SLICE"),
        attr("endingDateTime", "DateTimeOffset", iso_ms(stop)),
        attr("coordinates", "String", " ".join(f"{y},{x}" for x, y in ring[:-1])),
        attr("orbitDirection", "String", direction),
        attr("sliceProductFlag", "Boolean", True),
        attr("beginningDateTime", "DateTimeOffset", iso_ms(start)),
        attr("timeliness", "String", "Fast-24h"),
        attr("instrumentShortName", "String", "SAR"),
        attr("processingLevel", "String", "LEVEL1"),
        attr("productClass", "String", "S"),
        attr("platformShortName", "String", "SENTINEL-1"),
        attr("platformSerialIdentifier", "String", "A"),
    ]
    # The builder wants (first line, first pixel), (first line, last pixel), (last line,
    # last pixel), (last line, first pixel); the slice ring runs along track first.
    c0, c1, c2, c3 = ring[:4]
    plan = EopfPlan("S01SIWGRD", "sentinel-1a", start, stop, orbit, rel,
                    geojson_polygon([c0, c3, c2, c1, c0]),
                    {"polarizations": ["VV", "VH"], "datatake_id": s["datatake"],
                     "orbit_state": direction.lower()})
    return EopfProduct(name, start, stop, origin, published, ring, attributes, plan)


def s2_l1c(config: SimConfig, station: StationDef, i: int, n: int) -> EopfProduct:
    """An S2B MSI L1C tile."""
    rng = py_rng(config.seed, station.id, "S2MSI1C", i)
    start = slot_time(config, i, n, rng)
    stop = millis(start + timedelta(seconds=rng.uniform(3, 6)))
    ring, tile = s2_tile(rng)
    rel = relative_orbit("S2B", start)
    orbit = absolute_orbit("S2B", start)
    gen = stop + timedelta(minutes=rng.uniform(30, 180))
    published = gen + timedelta(minutes=rng.uniform(2, 60))
    name = f"S2B_MSIL1C_{compact(start)}_N0511_R{rel:03d}_T{tile}_{compact(gen)}{ZARR_ZIP}"
    attributes = [
        attr("productType", "String", "S2MSI1C"),
        attr("platformShortName", "String", "SENTINEL-2"),
        attr("platformSerialIdentifier", "String", "B"),
        attr("instrumentShortName", "String", "MSI"),
        attr("orbitNumber", "Integer", orbit),
        attr("relativeOrbitNumber", "Integer", rel),
        attr("tileId", "String", tile),
        attr("cloudCover", "Double", round(rng.uniform(0, 100), 2)),
        attr("processingDate", "DateTimeOffset", iso_ms(gen)),
        attr("processorVersion", "String", "05.11"),
        attr("beginningDateTime", "DateTimeOffset", iso_ms(start)),
        attr("endingDateTime", "DateTimeOffset", iso_ms(stop)),
        attr("processingLevel", "String", "Level-1C"),
    ]
    plan = EopfPlan("S02MSIL1C", "sentinel-2b", start, stop, orbit, rel, geojson_polygon(ring),
                    {"tile": tile, "orbit_state": "descending", "baseline": "05.11"})
    return EopfProduct(name, start, stop, gen, published, ring, attributes, plan)


def s3_olci(config: SimConfig, station: StationDef, i: int, n: int) -> EopfProduct:
    """An S3A OLCI full-resolution frame, near-real-time (NR) or non-time-critical (NT)."""
    rng = py_rng(config.seed, station.id, "OL_1_EFR___", i)
    start = slot_time(config, i, n, rng)
    stop = start + timedelta(seconds=180)
    near_real_time = rng.random() < 0.6
    lag = (timedelta(minutes=rng.uniform(60, 150)) if near_real_time
           else timedelta(hours=rng.uniform(20, 40)))
    gen = stop + lag
    published = gen + timedelta(minutes=rng.uniform(5, 60))
    ring = olci_frame(rng, descending=True)  # OLCI images the day side, descending
    orbit, rel = absolute_orbit("S3A", start), relative_orbit("S3A", start)
    cycle = cycle_number("S3A", start)
    frame = int(seconds_since_orbit_start("S3A", start))
    timeliness = "NR" if near_real_time else "NT"
    duration = round((stop - start).total_seconds())
    name = (f"S3A_OL_1_EFR____{compact(start)}_{compact(stop)}_{compact(gen)}_{duration:04d}_"
            f"{cycle:03d}_{rel:03d}_{frame:04d}_PS1_O_{timeliness}_004{ZARR_ZIP}")
    attributes = [
        attr("productType", "String", "OL_1_EFR___"),
        attr("platformShortName", "String", "SENTINEL-3"),
        attr("platformSerialIdentifier", "String", "A"),
        attr("instrumentShortName", "String", "OLCI"),
        attr("timeliness", "String", timeliness),
        attr("orbitNumber", "Integer", orbit),
        attr("relativeOrbitNumber", "Integer", rel),
        attr("cycleNumber", "Integer", cycle),
        attr("orbitDirection", "String", "DESCENDING"),
        attr("processingLevel", "String", "1"),
        attr("processorVersion", "String", "06.17"),
        attr("baselineCollection", "String", "004"),
        attr("processingCenter", "String", "PS1"),
        attr("processingDate", "DateTimeOffset", iso_ms(gen)),
        attr("beginningDateTime", "DateTimeOffset", iso_ms(start)),
        attr("endingDateTime", "DateTimeOffset", iso_ms(stop)),
    ]
    plan = EopfPlan("S03OLCEFR", "sentinel-3a", start, stop, orbit, rel, geojson_polygon(ring),
                    {"timeliness": timeliness, "orbit_state": "descending"})
    return EopfProduct(name, start, stop, gen, published, ring, attributes, plan)


def millis(t: datetime) -> datetime:
    """``t`` at the stations' millisecond precision: the product holds the served times."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


PRIP_MAKERS: dict[str, ProductMaker] = {"S1A": s1_grd, "S2B": s2_l1c, "S3A": s3_olci}
LTA_MAKERS: tuple[ProductMaker, ...] = (s1_grd, s2_l1c, s3_olci)  # taking turns


def eopf_slots(config: SimConfig, station: StationDef) -> tuple[range, int]:
    """(slots holding an EOPF product, number of slots) of a station's plan."""
    n = entity_count(config, station, station.rate_per_day)
    if config.eopf_scale <= 0:
        return range(0), n
    return range(0, n, max(1, round(EOPF_EVERY[station.id] / config.eopf_scale))), n


def build_prip_eopf(config: SimConfig, station: StationDef) -> list[Record]:
    maker = PRIP_MAKERS[station.satellite]
    slots, n = eopf_slots(config, station)
    return [prip_record(config, maker(config, station, i, n)) for i in slots]


def build_lta_eopf(config: SimConfig, station: StationDef) -> list[Record]:
    slots, n = eopf_slots(config, station)
    return [lta_record(config, LTA_MAKERS[k % len(LTA_MAKERS)](config, station, i, n))
            for k, i in enumerate(slots)]


def prip_record(config: SimConfig, p: EopfProduct) -> Record:
    entity = {
        "@odata.mediaContentType": "application/octet-stream",
        "Id": entity_uuid(config.seed, p.name),
        "Name": p.name,
        "ContentType": ZIP_MEDIA_TYPE,
        "ContentLength": LAZY,
        "OriginDate": iso_ms(p.origin),
        "PublicationDate": iso_ms(p.published),
        "ModificationDate": iso_ms(p.published),
        "EvictionDate": PRIP_EVICTION,
        "Online": True,
        "Checksum": LAZY,
        "ContentDate": {"Start": iso_ms(p.start), "End": iso_ms(p.stop)},
        "Footprint": footprint_text(p.ring),
        "GeoFootprint": geojson_polygon(p.ring),
        "ProductionType": "systematic_production",
        "Attributes": p.attributes,
    }
    rec = Record(entity, "product", p.name, payload_kind="eopf")
    rec.extra.update(checksum_style="lower", length_type="int",
                     checksum_date=iso_ms(p.origin), eopf=p.plan)
    return finish(config, rec)


def lta_record(config: SimConfig, p: EopfProduct) -> Record:
    archived = p.published + timedelta(days=2)
    entity = {
        "Id": entity_uuid(config.seed, p.name),
        "Name": p.name,
        "ContentType": ZIP_MEDIA_TYPE,
        "ContentLength": LAZY,
        "OriginDate": iso_ms(p.origin),
        "PublicationDate": iso_ms(archived),
        "ModificationDate": iso_ms(archived),
        "EvictionDate": iso_ms(archived + timedelta(days=3650)),
        "Online": "true",
        "Checksum": LAZY,
        "ContentDate": {"Start": iso_ms(p.start), "End": iso_ms(p.stop)},
        "Footprint": footprint_text(p.ring),
        "GeoFootprint": geojson_polygon(p.ring),
    }
    rec = Record(entity, "product", p.name, payload_kind="eopf")
    rec.extra.update(checksum_style="lower", length_type="string",
                     checksum_date=iso_ms(archived), eopf=p.plan)
    return finish(config, rec)
