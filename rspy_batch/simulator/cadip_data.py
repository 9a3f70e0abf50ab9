"""Synthetic CADIP content: downlink sessions, their DSDB chunk files, quality info."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rspy_batch.formats.cadu import CADU_LEN, SPACECRAFT_IDS
from rspy_batch.simulator.cadu_plan import channel_plan
from rspy_batch.simulator.config import SimConfig, StationDef
from rspy_batch.simulator.detrand import entity_uuid, py_rng
from rspy_batch.simulator.faults import data_faults
from rspy_batch.simulator.orbits import absolute_orbit
from rspy_batch.simulator.records import Record, apply_name_and_field_faults
from rspy_batch.simulator.timefmt import iso_ms, parse_iso

CHANNELS = 2
BLOCKS_PER_CHANNEL = 3
STATION_UNIT_ID = "01"
_ANTENNAS = {"mti": "MSP21", "nsg": "NSG01"}


@dataclass
class CadipContent:
    sessions: list[Record]
    files: list[Record]
    quality: list[Record]


def entity_count(config: SimConfig, station: StationDef, rate_per_day: float) -> int:
    days = (config.stop - config.start).total_seconds() / 86400
    return max(0, round(days * rate_per_day * config.scale_for(station.id)))


def block_sizes(chunk_bytes: int) -> list[int]:
    """Full chunks, then a shorter final block (still whole CADUs)."""
    final = max(CADU_LEN, (chunk_bytes // 2) // CADU_LEN * CADU_LEN)
    return [chunk_bytes] * (BLOCKS_PER_CHANNEL - 1) + [final]


def build_cadip(config: SimConfig, station: StationDef) -> CadipContent:
    seed, sat = config.seed, station.satellite
    n = entity_count(config, station, station.rate_per_day)
    span = config.stop - config.start
    sizes = block_sizes(config.cadu_chunk_bytes)
    frames = tuple(s // CADU_LEN for s in sizes)
    content = CadipContent([], [], [])
    for i in range(n):
        rng = py_rng(seed, station.id, "session", i)
        start = config.start + span * ((i + rng.uniform(0.05, 0.7)) / n)
        start = start.replace(microsecond=rng.randrange(1_000_000))
        duration = timedelta(minutes=rng.uniform(8, 15))
        stop = start + duration
        orbit = absolute_orbit(sat, start)
        session_id = f"{sat}_{start:%Y%m%d%H%M%S}{start.microsecond:06d}"
        published = stop + timedelta(minutes=rng.uniform(2, 10))
        session = {
            "Id": entity_uuid(seed, session_id),
            "SessionId": session_id,
            "NumChannels": CHANNELS,
            "PublicationDate": iso_ms(published),
            "Satellite": sat,
            "StationUnitId": STATION_UNIT_ID,
            "DownlinkOrbit": orbit,
            "AcquisitionId": f"{orbit}_1",
            "AntennaId": _ANTENNAS.get(station.id, "ANT01"),
            "FrontEndId": "01",
            "Retransfer": rng.random() < 0.05,
            "AntennaStatusOK": rng.random() > 0.03,
            "FrontEndStatusOK": rng.random() > 0.03,
            "PlannedDataStart": iso_ms(start),
            "PlannedDataStop": iso_ms(stop - timedelta(seconds=rng.uniform(30, 90))),
            "DownlinkStart": iso_ms(start),
            "DownlinkStop": iso_ms(stop),
            "DownlinkStatusOK": rng.random() > 0.03,
            "DeliveryPushOK": rng.random() > 0.03,
            "StationId": f"{station.id.upper()}_",
        }
        s_rec = Record(session, "session", session_id)
        s_rec.faults = data_faults(config.faults, seed, session_id, ("missing-field",))
        files: list[Record] = []
        for ch in range(1, CHANNELS + 1):
            plan = channel_plan(seed, session_id, ch, sat, frames)
            for b, size in enumerate(sizes, start=1):
                f_rec = _file_record(config, session, ch, b, size, duration)
                f_rec.extra.update(
                    spacecraft_id=SPACECRAFT_IDS[sat],
                    frames=frames[b - 1],
                    gaps=[g.as_dict() for g in plan[b - 1][1]],
                )
                files.append(f_rec)
            content.quality.append(_quality_record(seed, session, ch, files, plan))
        s_rec.extra["file_ids"] = [f.id for f in files]
        for rec in [s_rec, *files]:
            apply_name_and_field_faults(rec, seed)
        content.sessions.append(s_rec)
        content.files.extend(files)
    return content


def _file_record(
    config: SimConfig,
    session: dict,
    channel: int,
    block: int,
    size: int,
    duration: timedelta,
) -> Record:
    sid = session["SessionId"]
    name = f"DCS_{STATION_UNIT_ID}_{sid}_ch{channel}_DSDB_{block:05d}.raw"
    start = session["DownlinkStart"]
    published = parse_iso(start) + duration * (block / BLOCKS_PER_CHANNEL)
    published += timedelta(seconds=30 + 7 * channel + block)
    entity = {
        "Id": entity_uuid(config.seed, name),
        "Name": name,
        "SessionId": sid,
        "Channel": channel,
        "BlockNumber": block,
        "FinalBlock": block == BLOCKS_PER_CHANNEL,
        "PublicationDate": iso_ms(published),
        "EvictionDate": iso_ms(published + timedelta(days=7)),
        "Size": str(size),  # a string, as real CADIP stations serve it
        "Retransfer": session["Retransfer"],
    }
    rec = Record(entity, "file", name, payload_kind="cadu", size=size)
    rec.extra.update(session_id=sid, channel=channel, block=block)
    rec.faults = data_faults(config.faults, config.seed, name, ("missing-field", "evil-name"))
    return rec


def _quality_record(
    seed: int, session: dict, channel: int, files: list[Record], plan: tuple
) -> Record:
    sid = session["SessionId"]
    mine = [f for f in files if f.extra["channel"] == channel]
    frames = sum(f.extra["frames"] for f in mine)
    gaps = sum(len(block_gaps) for _, block_gaps in plan)
    dates = sorted(f.entity["PublicationDate"] for f in mine)
    key = f"{sid}_quality_ch{channel}"
    entity = {  # every value a string, as in the reference mock
        "Id": entity_uuid(seed, key),
        "SessionId": sid,
        "Channel": str(channel),
        "AcquiredTFs": str(frames),
        "ErrorTFs": str(gaps),
        "CorrectedTFs": "0",
        "UncorrectableTFs": str(gaps),
        "DataTFs": str(frames),
        "ErrorDataTFs": str(gaps),
        "CorrectedDataTFs": "0",
        "DeliveryStart": dates[0],
        "DeliveryStop": dates[-1],
        "TotalChunks": str(len(mine)),
        "TotalVolume": str(sum(f.size or 0 for f in mine)),
    }
    return Record(entity, "quality", key)
