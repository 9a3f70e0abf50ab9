import gzip
import hashlib
import io
import tarfile
import time
import zipfile
from datetime import UTC, datetime

import pytest
import requests
import yaml

from rspy_batch.formats.cadu import iter_frames
from rspy_batch.simulator import FaultSpec, SimConfig, Simulator

START = datetime(2026, 1, 1, tzinfo=UTC)
STOP = datetime(2026, 1, 3, tzinfo=UTC)


def make(**kw) -> SimConfig:
    base = dict(seed=42, start=START, stop=STOP, product_bytes=2048, cadu_chunk_bytes=65536)
    base.update(kw)
    return SimConfig(**base)


def login(sim, sid, **extra):
    c = sim.app.credentials[sid]
    form = dict(
        client_id=c.client_id,
        client_secret=c.client_secret,
        username=c.username,
        password=c.password,
        grant_type="password",
        **extra,
    )
    return requests.post(sim.stations[sid]["token_url"], data=form, timeout=10)


class Client:
    def __init__(self, sim, sid):
        self.sim, self.sid = sim, sid
        self.url = sim.stations[sid]["url"]
        self.s = requests.Session()
        self.s.headers["Authorization"] = "Bearer " + login(sim, sid).json()["access_token"]

    def get(self, path, **params):
        return self.s.get(self.url + path, params=params, timeout=10, allow_redirects=False)

    def values(self, path, **params):
        r = self.get(path, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        return body if isinstance(body, list) else body["value"]


@pytest.fixture(scope="module")
def sim():
    with Simulator(make(order_delay=0.6)) as s:
        yield s


@pytest.fixture(scope="module")
def clients(sim):
    return {sid: Client(sim, sid) for sid in sim.stations}


# -- auth -------------------------------------------------------------------------
def test_token_grant_refresh_and_errors(sim):
    r = login(sim, "mti", scope="openid")
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer"
    assert body["expires_in"] == 1200 and len(body["access_token"]) == 59
    url = sim.stations["mti"]["url"] + "Sessions"
    ok = requests.get(url, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200
    refreshed = requests.post(
        sim.stations["mti"]["token_url"],
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
    )
    assert refreshed.status_code == 200 and refreshed.json()["access_token"] != body["access_token"]
    assert requests.get(url).json() == {"message": "Token is missing!"}
    bad = requests.get(url, headers={"Authorization": "Bearer nope"})
    assert (bad.status_code, bad.json()["message"]) == (401, "Token is invalid!")
    other = requests.get(
        url, headers={"Authorization": "Bearer " + login(sim, "nsg").json()["access_token"]}
    )
    assert other.status_code == 401  # tokens are per station
    wrong = requests.post(
        sim.stations["mti"]["token_url"], data={"grant_type": "password", "client_id": "x"}
    )
    assert wrong.status_code == 401
    grant = requests.post(sim.stations["mti"]["token_url"], data={"grant_type": "magic"})
    assert grant.status_code == 400
    assert requests.get(sim.base_url + "/mti/health").status_code == 200


def test_token_expiry():
    with Simulator(make(faults=FaultSpec.parse("token-ttl=0.3"))) as s:
        c = Client(s, "s1a")
        assert c.get("Products").status_code == 200
        time.sleep(0.5)
        r = c.get("Products")
        assert (r.status_code, r.json()["message"]) == (401, "Token is valid but is expired!")


# -- entities and envelopes -------------------------------------------------------------
def test_cadip_entities_and_quirks(clients):
    c = clients["mti"]
    sessions = c.values("Sessions")
    s = sessions[0]
    assert "Files" not in s and s["Satellite"] == "S1A" and s["NumChannels"] == 2
    assert s["SessionId"].startswith("S1A_") and len(s["SessionId"]) == 24
    assert s["PublicationDate"] > s["DownlinkStop"]
    full = c.values(
        "Sessions", **{"$expand": "Files", "$filter": f"SessionId eq '{s['SessionId']}'"}
    )
    files = full[0]["Files"]
    assert len(files) == 6 and all(isinstance(f["Size"], str) for f in files)
    assert "Checksum" not in files[0]
    assert files[0]["Name"] == f"DCS_01_{s['SessionId']}_ch1_DSDB_00001.raw"
    assert [f["FinalBlock"] for f in files if f["Channel"] == 1] == [False, False, True]
    assert c.get("Files", **{"$filter": "SessionId eq 'none'"}).json() == []  # bare list
    one = c.get(f"Sessions({s['Id']})", expand="qualityInfo").json()
    assert len(one["qualityInfo"]) == 2 and one["qualityInfo"][0]["AcquiredTFs"].isdigit()
    qi = c.values("QualityInfo", **{"$filter": f"SessionId eq '{s['SessionId']}'"})
    assert len(qi) == 2


def test_product_entities(clients):
    aux = clients["adgs"].values("Products", **{"$expand": "Attributes"})
    assert isinstance(aux[0]["ContentLength"], str) and len(aux[0]["Attributes"]) == 8
    assert {p["Name"].rsplit(".", 1)[1] for p in aux} == {"EOF", "TGZ"}
    assert all(a["@odata.type"].startswith("#OData.CSC.") for a in aux[0]["Attributes"])
    prip = clients["s1a"].values("Products")
    assert "Attributes" not in prip[0] and isinstance(prip[0]["ContentLength"], int)
    assert prip[0]["Footprint"].startswith("geography'SRID=4326;POLYGON((")
    assert prip[0]["GeoFootprint"]["type"] == "Polygon"
    s2 = clients["s2b"].values("Products", **{"$expand": "Attributes"})[0]
    names = {a["Name"] for a in s2["Attributes"]}
    assert {"tileId", "cloudCover", "processingLevel"} <= names and "_N0511_R" in s2["Name"]
    lta = clients["lta"].get("Products", **{"$top": 2}).json()["value"]
    assert lta[0]["Online"] == "true" and "Attributes" not in lta[0]


def test_lta_envelope_quirks(clients):
    c = clients["lta"]
    name = c.values("Products")[0]["Name"]
    single = c.get("Products", **{"$filter": f"Name eq '{name}'"}).json()
    assert single["Name"] == name and "value" not in single  # bare object
    assert c.get("Products", **{"$filter": "Name eq 'nothing'"}).status_code == 404


# -- filters ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flt, check",
    [
        (
            "PublicationDate gt 2026-01-02T00:00:00.000Z",
            lambda p: p["PublicationDate"] > "2026-01-02",
        ),
        ("PublicationDate le 2026-01-02T00:00:00Z", lambda p: p["PublicationDate"] <= "2026-01-02"),
        (
            "ContentDate/Start ge 2026-01-01T12:00:00.000Z"
            " and ContentDate/End lt 2026-01-02T00:00:00Z",
            lambda p: "2026-01-01T12" <= p["ContentDate"]["Start"] < "2026-01-02",
        ),
        ("contains(Name, '_0SDV_')", lambda p: "_0SDV_" in p["Name"]),
        (
            "startswith(Name,'S1A_IW') and endswith(Name, '.SAFE.zip')",
            lambda p: p["Name"].endswith(".SAFE.zip"),
        ),
        ("not contains(Name, '20260101T')", lambda p: "20260101T" not in p["Name"]),
        ("(ContentLength gt 100 or Name eq 'x') and Online eq true", lambda p: p["Online"] is True),
        ("ContentType ne 'application/zip'", None),
    ],
)
def test_filters(clients, flt, check):
    c = clients["s1a"]
    everything = c.values("Products")
    got = c.values("Products", **{"$filter": flt})
    if check is None:
        assert got == []
    else:
        assert got and len(got) == sum(1 for p in everything if check(p))
        assert all(check(p) for p in got)


def test_in_any_and_intersects(clients):
    prods = clients["s1a"].values("Products", **{"$expand": "Attributes"})
    ids = [p["Id"] for p in prods[:3]]
    quoted = ",".join(f"'{i}'" for i in ids)
    assert {
        p["Id"] for p in clients["s1a"].values("Products", **{"$filter": f"Id in ({quoted})"})
    } == set(ids)
    any_f = (
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' "
        "and att/OData.CSC.StringAttribute/Value eq 'AUX_RESORB')"
    )
    aux = clients["adgs"].values("Products", **{"$filter": any_f})
    assert aux and all(p["Name"].endswith(".EOF") for p in aux)
    orbit = next(a["Value"] for a in prods[0]["Attributes"] if a["Name"] == "orbitNumber")
    int_f = (
        "Attributes/OData.CSC.IntegerAttribute/any(att:att/Name eq 'orbitNumber' "
        f"and att/OData.CSC.IntegerAttribute/Value eq {orbit})"
    )
    assert prods[0]["Id"] in {
        p["Id"] for p in clients["s1a"].values("Products", **{"$filter": int_f})
    }
    ring = prods[0]["GeoFootprint"]["coordinates"][0]
    x, y = ring[0]
    corners = [(x - 0.1, y - 0.1), (x + 0.1, y - 0.1), (x + 0.1, y + 0.1), (x - 0.1, y - 0.1)]
    wkt = "POLYGON((" + ",".join(f"{a} {b}" for a, b in corners) + "))"
    hits = clients["s1a"].values(
        "Products", **{"$filter": f"OData.CSC.Intersects(area=geography'SRID=4326;{wkt}')"}
    )
    assert prods[0]["Id"] in {p["Id"] for p in hits} and len(hits) < len(prods)
    sat = clients["mti"].values("Sessions", **{"$filter": "Satellite in ('S1A', 'S2B')"})
    assert len(sat) == len(clients["mti"].values("Sessions"))


@pytest.mark.parametrize(
    "flt", ["Bogus eq 1", "Name eq", "DownlinkOrbit eq INCORRECT", "frobnicate(Name, 'x')"]
)
def test_bad_filter_is_400(clients, flt):
    r = clients["mti"].get("Sessions", **{"$filter": flt})
    assert r.status_code == 400 and set(r.json()["error"]) == {"code", "message"}


# -- paging -----------------------------------------------------------------------------
def test_paging_top_skip_count_orderby_cap():
    with Simulator(make(page_cap=7)) as s:
        c = Client(s, "s1a")
        total = len(s.truth("s1a"))
        body = c.get("Products", **{"$count": "true", "$top": 100}).json()
        assert body["@odata.count"] == total and len(body["value"]) == 7  # cut to the cap
        asc = c.values("Products", **{"$orderby": "PublicationDate asc", "$top": 5, "$skip": 2})
        full = sorted(s.truth("s1a"), key=lambda p: p["PublicationDate"])
        assert [p["Id"] for p in asc] == [p["Id"] for p in full[2:7]]
        desc = c.values("Products", **{"$orderby": "PublicationDate", "$top": 3})  # default desc
        assert [p["Id"] for p in desc] == [p["Id"] for p in full[::-1][:3]]
        multi = c.values("Products", **{"$orderby": "ContentType asc,ContentDate/Start desc"})
        assert multi[0]["ContentDate"]["Start"] >= multi[1]["ContentDate"]["Start"]
        seen = []
        for skip in range(0, total, 7):
            seen += c.values("Products", **{"$skip": skip, "$top": 7, "$orderby": "Name asc"})
        assert len({p["Id"] for p in seen}) == total
        assert c.get("Products", **{"$top": "x"}).status_code == 400


# -- determinism and payloads -------------------------------------------------------------
def test_determinism():
    a, b, c = Simulator(make()), Simulator(make()), Simulator(make(seed=7))
    assert a.truth("s1a") == b.truth("s1a") and a.truth("mti") == b.truth("mti")
    assert [p["Id"] for p in a.truth("s1a")] != [p["Id"] for p in c.truth("s1a")]
    assert a.credentials != c.credentials


def test_md5_matches_served_bytes(clients):
    for sid in ("adgs", "s1a", "s2b"):
        for p in clients[sid].values("Products", **{"$top": 3}):
            data = clients[sid].get(f"Products({p['Id']})/$value").content
            assert len(data) == int(p["ContentLength"])
            assert hashlib.md5(data).hexdigest() == p["Checksum"][0]["Value"].lower()
            if p["Name"].endswith(".zarr.zip"):  # a zipped EOPF Zarr product
                names = zipfile.ZipFile(io.BytesIO(data)).namelist()
                assert ".zmetadata" in names and ".zattrs" in names
            elif p["Name"].endswith(".zip"):
                names = zipfile.ZipFile(io.BytesIO(data)).namelist()
                assert f"{p['Name'][:-4]}/manifest.safe" in names
            elif p["Name"].endswith(".TGZ"):
                with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
                    assert len(tar.getnames()) == 1
            else:
                assert data.startswith(b"<?xml") and b"<OSV>" in data


def test_cadu_chunks_and_gaps(sim, clients):
    sessions = sim.truth("mti")
    gap_file = next(f for x in sessions for f in x["Files"] if f["_gaps"])
    session = next(x for x in sessions if x["SessionId"] == gap_file["SessionId"])
    channel = sorted(
        (f for f in session["Files"] if f["Channel"] == gap_file["Channel"]),
        key=lambda f: f["BlockNumber"],
    )
    # The blocks of one channel are one continuous stream: decode them in order.
    frames, expected, base = [], [], 0
    for f in channel:
        data = clients["mti"].get(f"Files({f['Id']})/$value").content
        assert len(data) == int(f["Size"])
        block = list(iter_frames(data))
        assert len(block) == f["_frames"]
        frames += block
        expected += [(base + g["frame_index"], g["expected"], g["actual"]) for g in f["_gaps"]]
        base += len(block)
    assert all(fr.sync_ok and fr.spacecraft_id == 0x2A for fr in frames)
    assert len({fr.vcid for fr in frames}) > 1
    last, found = {}, []
    for i, fr in enumerate(frames):
        if fr.vcid in last and fr.frame_count != (last[fr.vcid] + 1) % (1 << 24):
            found.append((i, (last[fr.vcid] + 1) % (1 << 24), fr.frame_count))
        last[fr.vcid] = fr.frame_count
    assert found == expected and found


# -- LTA orders ---------------------------------------------------------------------------
def test_lta_order_lifecycle(sim, clients):
    c = clients["lta"]
    p = c.values("Products")[0]
    assert c.get(f"Products({p['Id']})/$value").status_code == 404  # no order yet
    r = c.s.post(c.url + f"Products({p['Id']})/OData.CSC.Order", timeout=10)
    assert r.status_code == 201 and r.json()["Status"] in ("queued", "in_progress")
    again = c.s.post(c.url + f"Products({p['Id']})", timeout=10).json()
    assert again["Id"] == r.json()["Id"]
    denied = c.get(f"Products({p['Id']})/$value")
    assert (denied.status_code, denied.json()) == (403, {"message": "Not allowed yet"})
    for _ in range(50):
        order = c.get(f"Orders({r.json()['Id']})").json()
        if order["Status"] == "completed":
            break
        time.sleep(0.05)
    assert order["Status"] == "completed" and "CompletedDate" in order
    assert c.get("Orders", **{"$filter": f"Id eq {order['Id']}"}).json()["Id"] == order["Id"]
    data = c.get(f"Products({p['Id']})/$value").content
    assert hashlib.md5(data).hexdigest() == p["Checksum"][0]["Value"]


# -- redirects ----------------------------------------------------------------------------
def test_redirect_same_host(sim, clients):
    c = clients["nsg"]
    f = c.values("Files", **{"$top": 1})[0]
    r = c.get(f"Files({f['Id']})/$value")
    assert r.status_code == 307 and r.headers["Location"].startswith(
        sim.base_url + "/nsg/Redirect/"
    )
    assert requests.get(r.headers["Location"]).status_code == 401  # auth still required
    assert len(c.s.get(r.headers["Location"]).content) == int(f["Size"])


def test_redirect_other_host_counts_auth_leaks():
    with Simulator(make(redirect="other")) as s:
        c = Client(s, "nsg")
        f = c.values("Files", **{"$top": 1})[0]
        loc = c.get(f"Files({f['Id']})/$value").headers["Location"]
        assert loc.startswith(s.other_url) and "signature=" in loc
        assert len(requests.get(loc).content) == int(f["Size"])  # no auth needed
        assert requests.get(loc.replace("signature=", "signature=0")).status_code == 403
        assert s.stats()["auth_leaks"] == 0
        c.s.get(loc)  # a client that forwards its token
        assert requests.get(s.base_url + "/_sim/stats").json()["auth_leaks"] == 1


# -- faults -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, statuses", [("http-5xx", {500, 502, 503}), ("http-429", {429})])
def test_transient_http_faults_fail_at_most_twice(kind, statuses):
    with Simulator(make(faults=FaultSpec.parse(f"{kind}=1.0"))) as s:
        c = Client(s, "s1a")
        codes = [c.get("Products").status_code for _ in range(3)]
        assert set(codes[:2]) <= statuses and codes[2] == 200
        if kind == "http-429":
            assert c.get("Products").headers["Retry-After"] == "1"
        assert s.stats()["faults"][kind] >= 2


def test_slow_malformed_and_truncate_faults():
    spec = "slow=1.0,slow-seconds=0.1"
    with Simulator(make(faults=FaultSpec.parse(spec))) as s:
        assert Client(s, "s1a").get("Products").status_code == 200
        assert s.stats()["faults"]["slow"] == 1
    with Simulator(make(faults=FaultSpec.parse("malformed-json=1.0"))) as s:
        r = Client(s, "s1a").get("Products")
        with pytest.raises(ValueError):
            r.json()
    with Simulator(make(faults=FaultSpec.parse("truncate=1.0"))) as s:
        c = Client(s, "s1a")
        p = s.truth("s1a")[0]
        with pytest.raises(requests.exceptions.RequestException):
            c.get(f"Products({p['Id']})/$value")
        assert s.stats()["faults"]["truncate"] == 1


def test_data_faults_are_persistent_and_in_truth():
    spec = FaultSpec.parse("bad-checksum=0.3,missing-field=0.3,evil-name=0.3")
    with Simulator(make(faults=spec)) as s:
        c = Client(s, "s1a")
        truth = {p["Id"]: p for p in s.truth("s1a")}
        served = {p["Id"]: p for p in c.values("Products")}
        kinds = {k for p in truth.values() for k in p["_faults"]}
        assert kinds == {"bad-checksum", "missing-field", "evil-name"}
        for pid, p in truth.items():
            assert served[pid] == {
                k: v for k, v in p.items() if not k.startswith("_") and k != "Attributes"
            }
            if "bad-checksum" in p["_faults"]:
                assert p["Checksum"][0]["Value"] != p["_md5"]
            elif "Checksum" in p:
                assert p["Checksum"][0]["Value"] == p["_md5"]
            if "evil-name" in p["_faults"] and "Name" in p:
                assert any(ch in p["Name"] for ch in ("/", "\\", "..", "\x07"))
            if "missing-field" in p["_faults"]:
                assert not {"Name", "PublicationDate", "ContentDate"} <= set(p)
        files = [f for x in s.truth("mti") for f in x["Files"]]
        assert any("evil-name" in f["_faults"] for f in files)
    assert s.truth("s1a") == Simulator(make(faults=spec)).truth("s1a")


def test_fault_spec_parsing():
    spec = FaultSpec.parse("http-5xx=0.1, token-ttl=5")
    assert spec.http_5xx == 0.1 and spec.token_ttl == 5
    with pytest.raises(ValueError, match="unknown fault"):
        FaultSpec.parse("teleport=0.1")
    with pytest.raises(ValueError):
        FaultSpec.parse("http-5xx=2")


# -- files for clients ------------------------------------------------------------------------
def test_stations_and_secrets_files(sim, tmp_path):
    doc = yaml.safe_load(sim.write_stations_file(tmp_path / "st.yaml").read_text())
    mti = doc["stations"]["mti"]
    assert mti["url"] == sim.stations["mti"]["url"] and mti["auth"]["type"] == "oauth2"
    secrets_path = sim.write_secrets_file(tmp_path / "s.env")
    assert secrets_path.stat().st_mode & 0o777 == 0o600
    lines = dict(line.split("=", 1) for line in secrets_path.read_text().splitlines())
    assert lines[mti["auth"]["password_env"]] == sim.app.credentials["mti"].password
    text = (tmp_path / "st.yaml").read_text()
    assert all(v not in text for v in sim.credentials.values())
    assert set(doc["stations"]) == {"mti", "nsg", "adgs", "s1a", "s2b", "s3a", "lta"}
