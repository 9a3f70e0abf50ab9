"""The simulator's zipped EOPF Zarr products (S1 IW GRD, S2 L1C, S3 OLCI EFR) from PRIP and
LTA: legacy names, advertised checksums, and ingest → stage → open as EOPF products."""

from __future__ import annotations

import hashlib
import io
import re
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import make_simulator
from e2e import catalog_item_ids, expected, run_cli

from rspy_batch.catalog.reader import iter_items
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.mapping import lta
from rspy_batch.processing.product import open_product
from rspy_batch.simulator import SimConfig, Simulator
from rspy_batch.simulator.eopf import ZARR_ZIP, build_zip, size_extra
from rspy_batch.templates import get_template
from rspy_batch.validation import validate_dict

JAN1, JAN3 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
STAMP = r"(\d{8}T\d{6})"
NAMES = {
    "IW_GRDH_1S": re.compile(rf"^S1A_IW_GRDH_1SDV_{STAMP}_{STAMP}_(\d{{6}})_([0-9A-F]{{6}})_"
                             r"[0-9A-F]{4}\.zarr\.zip$"),
    "S2MSI1C": re.compile(rf"^S2B_MSIL1C_{STAMP}_N0511_R(\d{{3}})_T(\d{{2}}[A-Z]{{3}})_{STAMP}"
                          r"\.zarr\.zip$"),
    "OL_1_EFR___": re.compile(rf"^S3A_OL_1_EFR____{STAMP}_{STAMP}_{STAMP}_(\d{{4}})_(\d{{3}})_"
                              r"(\d{3})_(\d{4})_PS1_O_(NR|NT)_004\.zarr\.zip$"),
}
EOPF_TYPES = {"IW_GRDH_1S": "S01SIWGRD", "S2MSI1C": "S02MSIL1C", "OL_1_EFR___": "S03OLCEFR"}
PLATFORMS = {"S1A": "sentinel-1a", "S2B": "sentinel-2b", "S3A": "sentinel-3a"}


def attrs(entity: dict[str, Any]) -> dict[str, Any]:
    return {a["Name"]: a["Value"] for a in entity.get("Attributes") or []}


def compact(iso: str) -> str:
    return iso[:19].replace("-", "").replace(":", "")


def kind_of(name: str) -> str:
    return next(kind for kind, pattern in NAMES.items() if pattern.match(name))


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def small() -> Simulator:
    with Simulator(SimConfig(seed=7, start=JAN1, stop=JAN3, order_delay=0.2)) as sim:
        yield sim


def token(sim: Simulator, station: str) -> dict[str, str]:
    creds = sim.app.credentials[station]
    reply = requests.post(sim.stations[station]["token_url"], timeout=10, data={
        "grant_type": "password", "client_id": creds.client_id,
        "client_secret": creds.client_secret, "username": creds.username,
        "password": creds.password})
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def get(sim: Simulator, station: str, path: str) -> requests.Response:
    return requests.get(sim.stations[station]["url"] + path, timeout=60,
                        headers=token(sim, station))


# -- names and entities ------------------------------------------------------------------
def test_prip_names_follow_the_legacy_conventions(small: Simulator) -> None:
    truth = {sid: small.truth(sid) for sid in ("s1a", "s2b", "s3a")}
    raw = [e for e in truth["s1a"] if e["Name"].endswith(".SAFE.zip")]
    grd = [e for e in truth["s1a"] if e["Name"].endswith(ZARR_ZIP)]
    assert raw and grd and len(grd) < len(raw)  # s1a serves both, GRD thinned
    assert all(e["Name"].endswith(ZARR_ZIP) for sid in ("s2b", "s3a") for e in truth[sid])
    for e in grd + truth["s2b"] + truth["s3a"]:
        a = attrs(e)
        m = NAMES[a["productType"]].match(e["Name"])
        assert m, e["Name"]
        assert e["ContentType"] == "application/zip"
        assert m[1] == compact(e["ContentDate"]["Start"])
        if a["productType"] == "IW_GRDH_1S":
            assert m[2] == compact(e["ContentDate"]["End"])
            assert (int(m[3]), int(m[4], 16)) == (a["orbitNumber"], a["datatakeID"])
            # processed from a RAW slice of the same datatake, orbit and sensing start
            assert any(r["Name"].startswith(f"S1A_IW_RAW__0SDV_{m[1]}_{m[2]}_{m[3]}_{m[4]}_")
                       for r in raw)
        elif a["productType"] == "S2MSI1C":
            assert (int(m[2]), m[3]) == (a["relativeOrbitNumber"], a["tileId"])
            assert m[4] == compact(a["processingDate"])
        else:
            start, stop = when(e["ContentDate"]["Start"]), when(e["ContentDate"]["End"])
            assert m[2] == compact(e["ContentDate"]["End"])
            assert m[3] == compact(a["processingDate"])
            assert int(m[4]) == round((stop - start).total_seconds())
            assert (int(m[5]), int(m[6]), m[8]) == (a["cycleNumber"], a["relativeOrbitNumber"],
                                                    a["timeliness"])


def test_lta_serves_the_three_kinds_through_orders(small: Simulator) -> None:
    longer = Simulator(SimConfig(seed=7, start=JAN1, stop=datetime(2026, 1, 15, tzinfo=UTC)))
    eopf = [r for r in longer.app.catalogs["lta"].sets()["Products"] if r.key.endswith(ZARR_ZIP)]
    assert {kind_of(r.key) for r in eopf} == set(NAMES)  # the kinds take turns
    assert all(r.entity["ContentType"] == "application/zip" and "Attributes" not in r.entity
               for r in eopf)
    product = next(e for e in small.truth("lta") if e["Name"].endswith(ZARR_ZIP))
    url, auth = small.stations["lta"]["url"], token(small, "lta")
    assert requests.get(f"{url}Products({product['Id']})/$value", headers=auth,
                        timeout=10).status_code == 404  # not ordered yet
    order = requests.post(f"{url}Products({product['Id']})/OData.CSC.Order", headers=auth,
                          timeout=10).json()
    deadline = time.monotonic() + 10
    while requests.get(f"{url}Orders({order['Id']})", headers=auth,
                       timeout=10).json()["Status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    data = requests.get(f"{url}Products({product['Id']})/$value", headers=auth, timeout=60)
    assert data.status_code == 200
    assert (hashlib.md5(data.content).hexdigest(), len(data.content)) == (
        product["Checksum"][0]["Value"], int(product["ContentLength"]))


@pytest.mark.parametrize("name, product_type, level, instruments", [
    ("S2B_MSIL1C_20260105T101309_N0511_R022_T32TQM_20260105T121212.zarr.zip", "S2MSI1C",
     "L1C", ["msi"]),
    ("S3A_OL_1_EFR____20260105T073957_20260105T074257_20260106T084255_0180_134_149_2160_PS1_"
     "O_NT_004.zarr.zip", "OL_1_EFR___", "L1", ["olci"]),
    ("S1A_IW_GRDH_1SDV_20260105T050533_20260105T050558_062629_053B7F_203C.zarr.zip",
     "IW_GRDH_1S", "L1", ["sar"]),
])
def test_lta_items_take_the_product_type_from_the_name(name: str, product_type: str,
                                                        level: str, instruments: list) -> None:
    entity = {  # an LTA entity: no Attributes
        "Id": "1c5d2b4e-0d1a-4f43-9a3e-5b8f0f9e2a11", "Name": name,
        "ContentType": "application/zip", "ContentLength": "2048", "Online": "true",
        "PublicationDate": "2026-01-08T10:00:00.000Z",
        "ContentDate": {"Start": "2026-01-05T10:13:09.000Z", "End": "2026-01-05T10:13:34.000Z"},
        "Checksum": [{"Algorithm": "MD5", "Value": "235f8cac56705aee78b4c8bbb45c7604",
                      "ChecksumDate": "2026-01-08T10:00:00.000Z"}],
        "GeoFootprint": {"type": "Polygon", "coordinates": [[[10.0, 45.0], [11.0, 45.0],
                                                             [11.0, 46.0], [10.0, 45.0]]]},
    }
    item = lta.product_to_item(entity, station_id="lta", station_url="http://h/lta/odata/v1/")
    p = item["properties"]
    assert (p["product:type"], p["processing:level"], p["instruments"]) == (
        product_type, level, instruments)
    assert item["id"] == name.removesuffix(ZARR_ZIP)
    assert item["assets"][name]["type"] == "application/zip"
    assert validate_dict(item) == []


# -- payloads --------------------------------------------------------------------------------
def test_served_bytes_match_the_advertised_md5_and_rebuild_identically(
        small: Simulator, tmp_path: Path) -> None:
    for station in ("s1a", "s2b", "s3a"):
        listed = get(small, station, "Products?$expand=Attributes").json()["value"]
        product = next(p for p in listed if p["Name"].endswith(ZARR_ZIP))
        data = get(small, station, f"Products({product['Id']})/$value").content
        assert len(data) == product["ContentLength"]
        assert hashlib.md5(data).hexdigest() == product["Checksum"][0]["Value"]
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert ".zmetadata" in names and ".zattrs" in names
        # a fresh build, outside the simulator's cache, gives the very same bytes
        rec = small.app.catalogs[station].get("Products", product["Id"])
        again = build_zip(rec.extra["eopf"], product["Name"].removesuffix(ZARR_ZIP), 7,
                          product["Id"], 60, tmp_path / f"{station}.zip")
        assert again.read_bytes() == data


def test_bad_checksum_fault_on_eopf_products(tmp_path: Path) -> None:
    from rspy_batch.simulator import FaultSpec

    config = SimConfig(seed=7, start=JAN1, stop=JAN3, faults=FaultSpec.parse("bad-checksum=1"),
                       stations=("s3a",), eopf_size=12)
    with Simulator(config) as sim:
        (product,) = sim.truth("s3a")
        assert product["_faults"] == ["bad-checksum"]
        data = get(sim, "s3a", f"Products({product['Id']})/$value").content
        assert hashlib.md5(data).hexdigest() == product["_md5"] != product["Checksum"][0]["Value"]


def test_eopf_size_sets_product_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eopf_size"):
        SimConfig(eopf_size=50)
    with pytest.raises(ValueError, match="eopf_scale"):
        SimConfig(eopf_scale=-1)
    with Simulator(SimConfig(seed=3, start=JAN1, stop=JAN3, eopf_size=24,
                             stations=("s1a", "s2b", "s3a"))) as sim:
        for station, var in (("s2b", "measurements/reflectance/r10m/b02"),
                             ("s1a", None), ("s3a", "measurements/oa01_radiance")):
            rec = next(r for r in sim.app.catalogs[station].sets()["Products"]
                       if r.payload_kind == "eopf")
            path = tmp_path / f"{station}.zip"
            path.write_bytes(sim.app.catalogs[station].payload(rec))
            tree = open_product(path)
            if station == "s2b":
                assert tree[var].shape == (24, 24)
                assert tree["measurements/reflectance/r60m/b01"].shape == (4, 4)
            elif station == "s1a":
                child = next(k for k in tree.children if k.endswith("_VV"))
                # S1 GRD keeps the real product's proportions to the S2 tile side
                assert tree[f"{child}/measurements/grd"].shape == (
                    round(24 * 16700 / 10980), round(24 * 25400 / 10980))
            else:
                rows, columns = tree[var].shape
                assert (rows, columns) == (size_extra("S03OLCEFR", 24)[1]["rows"],
                                           size_extra("S03OLCEFR", 24)[1]["columns"])
                assert rows < 24 and columns < 24


def test_eopf_scale_thins_or_removes_the_products() -> None:
    def count(scale: float) -> int:
        sim = Simulator(SimConfig(seed=7, start=JAN1, stop=datetime(2026, 1, 21, tzinfo=UTC),
                                  eopf_scale=scale, stations=("s1a", "s2b")))
        products = [r for sid in ("s1a", "s2b") for r in sim.app.catalogs[sid].sets()[
            "Products"]]
        return sum(r.key.endswith(ZARR_ZIP) for r in products)

    assert count(0) == 0 and 0 < count(1) < count(2)
    # the RAW products do not depend on it
    a = Simulator(SimConfig(seed=7, start=JAN1, stop=JAN3, eopf_scale=0, stations=("s1a",)))
    b = Simulator(SimConfig(seed=7, start=JAN1, stop=JAN3, stations=("s1a",)))
    raw_a = [r.key for r in a.app.catalogs["s1a"].sets()["Products"]]
    raw_b = [r.key for r in b.app.catalogs["s1a"].sets()["Products"]
             if r.key.endswith(".SAFE.zip")]
    assert raw_a == raw_b


# -- ingest, stage, open ---------------------------------------------------------------------
GROUPS = {
    "S02MSIL1C": ("measurements/reflectance/r10m/b02", "measurements/reflectance/r20m/b05",
                  "measurements/reflectance/r60m/b01", "conditions/geometry/sun_angles",
                  "conditions/mask/l1c_classification/r60m/b00", "quality/mask/r10m/b04"),
    "S03OLCEFR": ("measurements/oa01_radiance", "measurements/oa21_radiance",
                  "quality/quality_flags", "conditions/geometry/sza",
                  "conditions/image/detector_index", "conditions/instrument/solar_flux"),
    "S01SIWGRD": ("measurements/grd", "quality/calibration/sigma_nought",
                  "conditions/gcp/latitude", "conditions/orbit/position"),
}


def has(tree: Any, path: str) -> bool:
    try:
        tree[path]
    except KeyError:
        return False
    return True


def check_product(path: Path, item: dict[str, Any]) -> str:
    """``path`` opens as the EOPF product the item describes; returns its EOPF type."""
    tree = open_product(path)
    stac = tree.attrs["stac_discovery"]
    assert "other_metadata" in tree.attrs
    props = stac["properties"]
    want_type = EOPF_TYPES[item["properties"]["product:type"]]
    assert props["product:type"] == want_type
    assert stac["id"] == item["id"]
    for key in ("start_datetime", "end_datetime"):
        assert when(props[key]) == when(item["properties"][key]), key
    assert props["platform"] == item["properties"]["platform"]
    for key in ("sat:absolute_orbit", "sat:relative_orbit"):
        if key in item["properties"]:  # PRIP attributes (LTA entities have none)
            assert props[key] == item["properties"][key]
    if want_type == "S01SIWGRD":
        assert tree.attrs["other_metadata"]["eopf_category"] == "eocontainer"
        children = sorted(tree.children)
        assert [c.rsplit("_", 1)[1] for c in children] == ["VH", "VV"]
        roots = [f"{c}/" for c in children]
    else:
        roots = [""]
    for root in roots:
        for var in GROUPS[want_type]:
            assert has(tree, root + var), f"{path.name}: no {root + var}"
    return want_type


def test_ingest_and_stage_each_eopf_collection(tmp_path: Path) -> None:
    sim = make_simulator(tmp_path / "sim", order_delay=0.3)
    try:
        catalog, staging = tmp_path / "catalog", tmp_path / "staging"
        # Up to mid-February: the LTA's kinds take turns, so all three are in.
        start, stop = JAN1, datetime(2026, 2, 12, tzinfo=UTC)
        collections = ("prip-s1a-iw-grd", "prip-s2b-msil1c", "prip-s3a-ol-efr",
                       "lta-eopf-zarr")
        common = [*(a for c in collections for a in ("--collection", c)), "--start",
                  "2026-01-01", "--stop", "2026-02-12", "--catalog", str(catalog),
                  "--stations", str(sim.stations_file)]
        res = run_cli("ingest", *common)
        assert res.returncode == 0, res.stderr
        res = run_cli("stage", *common, "--staging", str(staging))
        assert res.returncode == 0, res.stderr
        store = LocalStore(catalog)
        assert validate_catalog(store).ok
        seen_types = {}
        for collection in collections:
            tpl = get_template(collection)
            truth = sim.truth(tpl.station)
            want, rejected = expected(truth, tpl, start, stop)
            assert want and not rejected
            assert set(catalog_item_ids(store, collection)) == want
            by_id = {e["Id"]: e for e in truth}
            types = set()
            for item in iter_items(store, collection):
                (asset,) = item["assets"].values()
                assert asset["type"] == "application/zip"
                path = Path(asset["href"].removeprefix("file://"))
                assert path.name.endswith(ZARR_ZIP) and path.is_relative_to(staging)
                entity = by_id[item["properties"][f"{tpl.service}:id"]]
                data = path.read_bytes()
                assert (hashlib.md5(data).hexdigest(), len(data)) == (entity["_md5"],
                                                                     entity["_size"])
                types.add(check_product(path, item))
            seen_types[collection] = types
        assert seen_types == {"prip-s1a-iw-grd": {"S01SIWGRD"}, "prip-s2b-msil1c": {"S02MSIL1C"},
                              "prip-s3a-ol-efr": {"S03OLCEFR"},
                              "lta-eopf-zarr": {"S01SIWGRD", "S02MSIL1C", "S03OLCEFR"}}
        # the RAW collection of the same LTA keeps only the SAFE products
        raw = get_template("lta-s1a-iw-raw")
        res = run_cli("ingest", "--collection", raw.id, "--start", "2026-01-01", "--stop",
                      "2026-01-15", "--catalog", str(catalog), "--stations",
                      str(sim.stations_file))
        assert res.returncode == 0, res.stderr
        want, _ = expected(sim.truth("lta"), raw, JAN1, datetime(2026, 1, 15, tzinfo=UTC))
        ids = catalog_item_ids(store, raw.id)
        assert set(ids) == want and all(i.startswith("S1A_IW_RAW__0S") for i in ids)
    finally:
        sim.stop()
