"""Deterministic randomness: every synthetic value derives from (seed, some key).

Hashing the key instead of drawing from one shared generator keeps each value
independent of generation order, so adding a station or changing a scale factor
does not reshuffle the data of the others.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from functools import lru_cache

import numpy as np

_NAMESPACE = uuid.UUID("6f1d2c8e-5b0a-4d8e-9a77-2f4f3b6c1e01")


def digest(seed: int, *key: object) -> bytes:
    """Stable 32-byte digest of the seed and key parts."""
    text = "\x1f".join([str(seed), *map(str, key)])
    return hashlib.sha256(text.encode()).digest()


def unit(seed: int, *key: object) -> float:
    """A float in [0, 1) fixed by the seed and key."""
    return int.from_bytes(digest(seed, *key)[:8], "big") / 2**64


def py_rng(seed: int, *key: object) -> random.Random:
    """A stdlib generator for metadata (cheap to create, fine for small draws)."""
    return random.Random(int.from_bytes(digest(seed, *key)[:8], "big"))


_POOL_BYTES = 1 << 20


@lru_cache(maxsize=8)
def _pool(seed: int) -> bytes:
    return np_rng(seed, "byte-pool").bytes(_POOL_BYTES)


def payload_bytes(seed: int, n: int, *key: object) -> bytes:
    """``n`` reproducible random-looking bytes: a window into a per-seed random pool.

    Drawing fresh random bytes per product cost more than hashing them; a window
    at a per-entity offset is as incompressible and makes each payload distinct.
    """
    pool = _pool(seed)
    start = int.from_bytes(digest(seed, "bytes", *key)[:4], "big") % _POOL_BYTES
    out = pool[start : start + n]
    while len(out) < n:
        out += pool[: n - len(out)]
    return out


def np_rng(seed: int, *key: object) -> np.random.Generator:
    """A numpy generator for bulk payload bytes."""
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest(seed, *key)[:16], "big")))


def entity_uuid(seed: int, name: str) -> str:
    """Entity Id: uuid5 of seed and name, as the contract requires."""
    return str(uuid.uuid5(_NAMESPACE, f"{seed}:{name}"))


def secret_text(seed: int, *key: object, length: int = 24) -> str:
    """A credential-looking string derived from the seed (never a fixed constant)."""
    return digest(seed, "secret", *key).hex()[:length]
