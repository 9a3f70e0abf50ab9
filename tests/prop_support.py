"""Shared pieces of the property-based tests (test_prop_*.py): hypothesis settings
profiles, realistic station entities from the simulator's own generators, and the
strategies that make them hostile.

Profiles: the default ``rspy-ci`` keeps the three property files under a minute on a
quiet machine; ``RSPY_HYPOTHESIS_PROFILE=rspy-thorough`` multiplies every example count.
Profiles are applied per test (:func:`prop_settings`), never loaded globally, so the
other test files' ``@given`` tests keep hypothesis' own defaults.
"""

from __future__ import annotations

import copy
import functools
import os
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROFILE_ENV = "RSPY_HYPOTHESIS_PROFILE"
CI_PROFILE = "rspy-ci"
THOROUGH_PROFILE = "rspy-thorough"
THOROUGH_FACTOR = 20

# Only what the tests need: no deadline (I/O and first-call schema loading vary a lot on
# a shared 2-core machine), real randomness and the default example database.
settings.register_profile(CI_PROFILE, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(THOROUGH_PROFILE, parent=settings.get_profile(CI_PROFILE))


def profile_name() -> str:
    name = os.environ.get(PROFILE_ENV, CI_PROFILE)
    if name not in (CI_PROFILE, THOROUGH_PROFILE):
        raise ValueError(f"{PROFILE_ENV}={name!r}: expected {CI_PROFILE} or {THOROUGH_PROFILE}")
    return name


def examples(ci: int) -> int:
    """The example count of a test: ``ci`` by default, more under the thorough profile."""
    return ci * THOROUGH_FACTOR if profile_name() == THOROUGH_PROFILE else ci


def prop_settings(ci_examples: int, **overrides: Any) -> settings:
    return settings(settings.get_profile(profile_name()), max_examples=examples(ci_examples),
                    **overrides)


# -- times ------------------------------------------------------------------------------

def aware_datetimes(min_year: int = 2, max_year: int = 9998) -> st.SearchStrategy[datetime]:
    """Any microsecond, any whole-minute UTC offset within ±23:59 (what ISO text can carry).

    The years exclude 1 and 9999 so that converting to UTC cannot leave datetime's range.
    """
    zones = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
        lambda m: timezone(timedelta(minutes=m)))
    return st.datetimes(min_value=datetime(min_year, 1, 1), max_value=datetime(max_year, 12, 31),
                        timezones=st.just(UTC) | zones)


def iso_z(t: datetime) -> str:
    """A station's date-time text: UTC, milliseconds, ``Z`` (written here independently of
    the code under test)."""
    t = t.astimezone(UTC)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
            f"{t.second:02d}.{t.microsecond // 1000:03d}Z")


def date_texts() -> st.SearchStrategy[str]:
    """Date-time text as stations send it, and the odd forms a bad station might send."""
    t = aware_datetimes(min_year=1, max_year=9999)
    return st.one_of(
        t.map(iso_z),
        t.map(lambda d: d.isoformat()),
        t.map(lambda d: d.replace(tzinfo=None).isoformat()),
        t.map(lambda d: d.date().isoformat()),
        st.sampled_from([
            "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999-01:00",
            "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z", "0999-06-30T12:00:00Z",
            "2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:60Z", "2024-01-01", "20240101T000000Z", "2024-01-01T00:00:00ZZ",
            "yesterday", "", " ", "2024-01-01T00:00:00.123456789Z",
        ]),
    )


# -- hostile values ---------------------------------------------------------------------

SAFE_ID_CHARS = string.ascii_letters + string.digits + "._-"

hostile_names = st.one_of(
    st.sampled_from([
        "", ".", "..", "../x.zip", "..\\..\\x.zip", "/etc/passwd", "C:\\x.zip", "a/b.zip",
        "a\\b.zip", "a\x00b.zip", "a\nb.zip", "\u202eevil.zip", "x" * 199 + ".zip",
        "x" * 300, "-x.zip", "..zip", "...SAFE.zip", ".SAFE.zip", "a..SAFE.zip", "x.zip\n",
        "S1A_\u00e9t\u00e9.zip", "S1A_IW_RAW__0SDV_x.SAFE.zip", "S2B_MSIL1C_.zarr.zip",
        "S3A_OL_1_EFR____x.zarr.zip", "S1A_", "s1a_lower.zip", "CON", "nul.zip",
    ]),
    st.text(max_size=40),
    st.text(alphabet=SAFE_ID_CHARS, min_size=1, max_size=210),
    st.builds(lambda a, b: a + b, st.sampled_from(["S1A_", "S2B_", "S3A_", "S5P_", "S1B_"]),
              st.text(alphabet=SAFE_ID_CHARS, max_size=30)),
)

json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),  # Python's json.loads accepts NaN/Infinity
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)

checksum_lists = st.one_of(
    st.lists(st.fixed_dictionaries({
        "Algorithm": st.sampled_from(["MD5", "md5", "SHA256", "XXH", "", "Md5"]),
        "Value": st.one_of(st.text(alphabet="0123456789abcdefABCDEF", min_size=30, max_size=34),
                           st.text(max_size=40), st.integers(), st.none(),
                           st.sampled_from(["d41d8cd98f00b204e9800998ecf8427e\n",
                                            " d41d8cd98f00b204e9800998ecf8427e"])),
        "ChecksumDate": date_texts(),
    }), max_size=3),
    json_values,
)

sizes = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=0, max_value=2**64).map(str),
    st.sampled_from(["42", " 42 ", "4_2", "0x10", "1e3", "-1", "٤٢", "42.0", "", "NaN"]),
    st.floats(allow_nan=True, allow_infinity=True),
)

_coordinate = st.one_of(st.integers(-200, 200), st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from(["42", True, None]))
_position = st.lists(_coordinate, min_size=1, max_size=3)
_ring = st.lists(_position, max_size=5)
geojson_ish = st.fixed_dictionaries({
    "type": st.sampled_from(["Polygon", "polygon", "MultiPolygon", "LineString", "Point",
                             "MultiPoint", "GeometryCollection", "Feature", "Circle"]),
    "coordinates": st.one_of(_position, _ring, st.lists(_ring, max_size=3),
                             st.lists(st.lists(_ring, max_size=2), max_size=2)),
})

replacement_values = st.one_of(hostile_names, date_texts(), json_values, sizes, checksum_lists,
                               geojson_ish)


# -- realistic entities -----------------------------------------------------------------

@functools.cache
def _simulated() -> dict[str, list[dict[str, Any]]]:
    """A few of each kind of entity the simulator serves, LAZY fields filled below."""
    from rspy_batch.simulator.cadip_data import build_cadip
    from rspy_batch.simulator.config import DEFAULT_STATIONS, SimConfig
    from rspy_batch.simulator.eopf_data import build_lta_eopf, build_prip_eopf
    from rspy_batch.simulator.faults import FaultSpec
    from rspy_batch.simulator.product_data import build_auxip, build_lta, build_prip_s1

    config = SimConfig(seed=11, start=datetime(2026, 1, 1, tzinfo=UTC),
                       stop=datetime(2026, 1, 3, tzinfo=UTC), faults=FaultSpec())
    st_ = DEFAULT_STATIONS
    cadip = build_cadip(config, st_["mti"])
    by_id = {f.id: f.entity for f in cadip.files}
    sessions = []
    for rec in cadip.sessions[:4]:
        session = copy.deepcopy(rec.entity)
        session["Files"] = [copy.deepcopy(by_id[i]) for i in rec.extra["file_ids"]]
        sessions.append(session)
    products = {
        "auxip": build_auxip(config, st_["adgs"])[:6],
        "prip": (build_prip_s1(config, st_["s1a"])[:3] + build_prip_eopf(config, st_["s1a"])
                 + build_prip_eopf(config, st_["s2b"]) + build_prip_eopf(config, st_["s3a"])),
        "lta": build_lta(config, st_["lta"])[:3] + build_lta_eopf(config, st_["lta"])[:3],
    }
    out = {"cadip": sessions}
    for service, records in products.items():
        out[service] = [copy.deepcopy(r.entity) for r in records]
    return out


def realistic_entity(service: str, index: int = 0) -> dict[str, Any]:
    """A fixed realistic entity (for ``@example``): the simulator's, payload fields filled."""
    entity = copy.deepcopy(_simulated()[service][index])
    if service != "cadip":
        entity["ContentLength"] = 2048
        entity["Checksum"] = [{"Algorithm": "MD5", "Value": "0123456789abcdef" * 2,
                               "ChecksumDate": entity["PublicationDate"]}]
    return entity


MD5_HEX = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@st.composite
def station_entity(draw: st.DrawFn, service: str) -> dict[str, Any]:
    """A realistic entity of ``service``: one of the simulator's, its payload fields
    (computed lazily by the simulator) filled as the stations fill them."""
    entity = copy.deepcopy(draw(st.sampled_from(_simulated()[service])))
    if service != "cadip":
        size = draw(st.integers(min_value=0, max_value=2**40))
        entity["ContentLength"] = draw(st.sampled_from([size, str(size)]))
        md5 = draw(MD5_HEX)
        entity["Checksum"] = [{"Algorithm": "MD5",
                               "Value": draw(st.sampled_from([md5, md5.upper()])),
                               "ChecksumDate": entity["PublicationDate"]}]
    return entity


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside a JSON value (its leaves and its containers)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append((*prefix, key))
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.append((*prefix, i))
            out.extend(paths(value, (*prefix, i)))
    return out


@st.composite
def mutated(draw: st.DrawFn, entity: dict[str, Any], max_mutations: int = 3) -> dict[str, Any]:
    """``entity`` (a copy) with a few fields deleted, nulled or replaced by hostile values,
    or with fields added where the mappers look for them."""
    entity = copy.deepcopy(entity)
    for _ in range(draw(st.integers(0, max_mutations))):
        where = paths(entity)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent: Any = entity
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(["delete", "null", "replace", "replace", "add"]))
        if action == "delete":
            del parent[last]
        elif action == "null":
            parent[last] = None
        elif action == "replace":
            parent[last] = draw(replacement_values)
        elif isinstance(parent, dict):
            key = draw(st.sampled_from([
                "StationId", "NumChannels", "Checksum", "GeoFootprint", "Online", "Files",
                "Attributes", "ProductionType", "ContentType", "OriginDate", "EvictionDate",
                "ModificationDate", "DownlinkOrbit", "FinalBlock", "Retransfer"]))
            parent[key] = draw(replacement_values)
        else:
            parent.append(draw(replacement_values))
    return entity
