"""The in-memory form of one simulated entity and the data faults applied to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rspy_batch.simulator.detrand import unit

# Which fields a missing-field fault may remove, per entity kind.
MISSING_FIELD_CANDIDATES: dict[str, tuple[str, ...]] = {
    "session": ("SessionId", "PublicationDate"),
    "file": ("Name", "PublicationDate", "SessionId"),
    "product": ("Name", "PublicationDate", "ContentDate"),
}

# How an evil name is made: each variant is something a client must not trust
# when turning a station name into a local path or an S3 key.
_EVIL_VARIANTS = (
    lambda n: "../" + n,
    lambda n: n.replace("_", "/", 1),
    lambda n: n.replace("_", "\\", 1),
    lambda n: n[:4] + "\x07" + n[4:],
    lambda n: "..\\..\\" + n,
)


@dataclass
class Record:
    """One entity: the dict as served plus what the simulator needs privately."""

    entity: dict[str, Any]  # served fields, data faults applied, in wire order
    kind: str  # session | file | quality | product
    key: str  # original, un-faulted name: seeds the payload and names inner files
    payload_kind: str = ""  # cadu | eof | tgz | safe | eopf ('' = no payload)
    faults: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # generator details for truth
    size: int | None = None  # payload size once materialised
    md5: str | None = None  # true MD5 of the payload once materialised

    @property
    def id(self) -> str:
        return self.entity["Id"]


def evil_name(seed: int, name: str) -> str:
    pick = int(unit(seed, "evil-variant", name) * len(_EVIL_VARIANTS))
    return _EVIL_VARIANTS[pick](name)


def apply_name_and_field_faults(rec: Record, seed: int) -> None:
    """Apply the faults that change served fields at build time (checksum comes later)."""
    if "evil-name" in rec.faults and "Name" in rec.entity:
        rec.entity["Name"] = evil_name(seed, rec.key)
    if "missing-field" in rec.faults:
        candidates = [f for f in MISSING_FIELD_CANDIDATES[rec.kind] if f in rec.entity]
        pick = candidates[int(unit(seed, "missing-which", rec.key) * len(candidates))]
        del rec.entity[pick]
        rec.extra["missing_field"] = pick
