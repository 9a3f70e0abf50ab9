"""How a CADIP channel stream is laid out: runs of one VCID, counters, deliberate gaps.

The plan for a whole channel is computed from the seed without producing bytes,
so the ground truth can list the gaps and any DSDB block can be generated alone
with counters that continue from the previous block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rspy_batch.formats.cadu import CADU_LEN, COUNTER_MODULO
from rspy_batch.simulator.detrand import py_rng

GAP_EVERY_FRAMES = 500  # on average one frame-counter gap per this many frames
VCIDS: dict[str, tuple[int, ...]] = {"S1A": (1, 2, 3), "S2B": (4, 5, 6)}


@dataclass(frozen=True)
class Run:
    vcid: int
    first_counter: int
    n: int


@dataclass(frozen=True)
class Gap:
    vcid: int
    frame_index: int  # index of the first frame after the gap, within its block
    offset: int  # byte offset of that frame within its block file
    expected: int
    actual: int

    def as_dict(self) -> dict[str, int]:
        return {
            "vcid": self.vcid,
            "frame_index": self.frame_index,
            "offset": self.offset,
            "expected": self.expected,
            "actual": self.actual,
        }


@lru_cache(maxsize=4096)
def channel_plan(
    seed: int, session_id: str, channel: int, satellite: str, block_frames: tuple[int, ...]
) -> tuple[tuple[tuple[Run, ...], tuple[Gap, ...]], ...]:
    """Per block: the runs to encode and the gaps they contain."""
    rng = py_rng(seed, "cadu-plan", session_id, channel)
    vcids = VCIDS.get(satellite, (1, 2, 3))
    next_counter = {v: rng.randrange(COUNTER_MODULO) for v in vcids}
    seen: set[int] = set()  # a gap before a VCID's first frame would be undetectable
    plan = []
    for frames in block_frames:
        runs: list[Run] = []
        gaps: list[Gap] = []
        index = 0
        while index < frames:
            vcid = rng.choice(vcids)
            n = min(rng.randint(4, 64), frames - index)
            expected = next_counter[vcid]
            first = expected
            draw = rng.random()
            if vcid in seen and draw < n / GAP_EVERY_FRAMES:
                first = (expected + rng.randint(1, 20)) % COUNTER_MODULO
                gaps.append(Gap(vcid, index, index * CADU_LEN, expected, first))
            runs.append(Run(vcid, first, n))
            seen.add(vcid)
            next_counter[vcid] = (first + n) % COUNTER_MODULO
            index += n
        plan.append((tuple(runs), tuple(gaps)))
    return tuple(plan)
