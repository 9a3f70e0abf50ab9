"""Payload bytes, generated on demand and deterministic from (seed, entity name).

Nothing is stored on disk: a download regenerates the bytes, which costs far less
than the HTTP transfer for the sizes the simulator serves.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from datetime import timedelta

from rspy_batch.formats.cadu import encode_frames
from rspy_batch.simulator.cadu_plan import channel_plan
from rspy_batch.simulator.detrand import np_rng, payload_bytes
from rspy_batch.simulator.records import Record
from rspy_batch.simulator.timefmt import iso_ms, parse_iso


def cadu_chunk(seed: int, rec: Record, satellite: str, block_frames: tuple[int, ...]) -> bytes:
    """One DSDB block: the runs of its channel plan, encoded as CADUs."""
    x = rec.extra
    runs, _ = channel_plan(seed, x["session_id"], x["channel"], satellite, block_frames)[
        x["block"] - 1
    ]
    rng = np_rng(seed, "payload", rec.key)
    return b"".join(
        encode_frames(x["spacecraft_id"], r.vcid, r.first_counter, r.n, rng) for r in runs
    )


def eof_bytes(seed: int, rec: Record) -> bytes:
    """A restituted-orbit Earth Explorer file: fixed header, a few OSV records."""
    rng = np_rng(seed, "payload", rec.key)
    start = parse_iso(rec.entity.get("ContentDate", {}).get("Start") or "2020-01-01T00:00:00Z")
    stem = rec.key.rsplit(".", 1)[0]
    osvs = []
    for k in range(5):
        t = start + timedelta(seconds=10 * k)
        x, y, z = (rng.uniform(-7.1e6, 7.1e6, 3)).round(3)
        vx, vy, vz = (rng.uniform(-7.5e3, 7.5e3, 3)).round(6)
        osvs.append(
            "    <OSV>\n"
            f"      <TAI>TAI={iso_ms(t + timedelta(seconds=37))[:-1]}</TAI>\n"
            f"      <UTC>UTC={iso_ms(t)[:-1]}</UTC>\n"
            f"      <Absolute_Orbit>+{int(rng.integers(1, 99999)):05d}</Absolute_Orbit>\n"
            f'      <X unit="m">{x}</X>\n      <Y unit="m">{y}</Y>\n      <Z unit="m">{z}</Z>\n'
            f'      <VX unit="m/s">{vx}</VX>\n      <VY unit="m/s">{vy}</VY>\n'
            f'      <VZ unit="m/s">{vz}</VZ>\n'
            "      <Quality>NOMINAL</Quality>\n    </OSV>\n"
        )
    text = (
        '<?xml version="1.0" ?>\n'
        '<Earth_Explorer_File xmlns="http://eop-cfi.esa.int/CFI">\n'
        "  <Earth_Explorer_Header>\n    <Fixed_Header>\n"
        f"      <File_Name>{stem}</File_Name>\n"
        "      <File_Description>Precise Orbit Ephemerides (POE) Orbit File</File_Description>\n"
        "      <Mission>Sentinel-1A</Mission>\n      <File_Class>OPER</File_Class>\n"
        "      <File_Type>AUX_RESORB</File_Type>\n"
        "      <Source>\n        <System>OPOD</System>\n      </Source>\n"
        "    </Fixed_Header>\n    <Variable_Header>\n"
        "      <Ref_Frame>EARTH_FIXED</Ref_Frame>\n      <Time_Reference>UTC</Time_Reference>\n"
        "    </Variable_Header>\n  </Earth_Explorer_Header>\n"
        '  <Data_Block type="xml">\n'
        f'    <List_of_OSVs count="{len(osvs)}">\n'
        + "".join(osvs)
        + "    </List_of_OSVs>\n  </Data_Block>\n</Earth_Explorer_File>\n"
    )
    return text.encode()


def tgz_bytes(seed: int, rec: Record, size: int) -> bytes:
    """A gzip'd tar holding one GRIB-named file of ``size`` random bytes."""
    data = payload_bytes(seed, size, "payload", rec.key)
    stem = rec.key.rsplit(".", 1)[0]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"{stem}.grib")
        info.size, info.mtime = size, 1577836800
        tar.addfile(info, io.BytesIO(data))
    # gzip.compress with mtime=0: tarfile's own gzip header would embed "now".
    return gzip.compress(buf.getvalue(), compresslevel=1, mtime=0)


def stored_zip(members: list[tuple[str, bytes]]) -> bytes:
    """A ZIP archive with uncompressed members and a fixed timestamp, so the same members
    always give the same bytes (and the advertised MD5 stays true)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def safe_zip_bytes(seed: int, rec: Record, size: int) -> bytes:
    """``<name>.SAFE/manifest.safe`` plus one measurement file of ``size`` bytes."""
    safe = rec.key.removesuffix(".zip")
    data = payload_bytes(seed, size, "payload", rec.key)
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" version="esa/safe/sentinel/1.1">\n'
        f"  <metadataSection><!-- synthetic product {safe} --></metadataSection>\n"
        "  <dataObjectSection>\n"
        f'    <dataObject ID="measurement"><byteStream size="{size}"/></dataObject>\n'
        "  </dataObjectSection>\n</xfdu:XFDU>\n"
    ).encode()
    measurement = f"{safe}/measurement/{safe[:-5].lower()}.dat"
    return stored_zip([(f"{safe}/manifest.safe", manifest), (measurement, data)])
