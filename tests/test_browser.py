"""STAC Browser against a published-layout catalog, through a real headless Chromium.

The browser build (npm, ~2-4 min the first time) is cached across runs; everything else
(catalog, servers, installs) is made per test under tmp_path on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from selenium.webdriver.common.by import By

from rspy_batch.browser import (
    BrowserError,
    browser_url,
    build_browser,
    config_js,
    content_type,
    install_browser,
    make_server,
    running,
)
from rspy_batch.browser.build import check_integrity
from rspy_batch.browser.serve import configured_catalog_url, parse_mount, parse_range
from rspy_batch.catalog.storage import open_store
from rspy_batch.errors import ConfigError
from tests.browser import (
    chromium,
    console_log,
    image_loaded,
    page_has_error,
    wait_error,
    wait_image,
    wait_text,
)

STAC = "1.1.0"
OWNER, CID = "esa", "s2-l1c"
DAY = f"{OWNER}/{CID}/2026/01/15"
ITEM_A, ITEM_B = "S2B-L1C-A", "S2B-L1C-B"
KEYS = {
    "root": "catalog.json",
    "owner": f"{OWNER}/catalog.json",
    "collection": f"{OWNER}/{CID}/collection.json",
    "item_a": f"{DAY}/{ITEM_A}/{ITEM_A}.json",
    "item_b": f"{DAY}/{ITEM_B}/{ITEM_B}.json",
    "thumb_b": f"{DAY}/{ITEM_B}/{ITEM_B}.png",
}


# ------------------------------------------------------------------------- test data


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """An RGB gradient PNG, written by hand (signature, IHDR, IDAT, IEND)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(v for x in range(width)
                                     for v in (x * 10 % 256, y * 15 % 256, 128))
                    for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _link(rel: str, href: str, title: str | None = None,
          media: str = "application/json") -> dict[str, str]:
    link = {"rel": rel, "href": href, "type": media}
    if title:
        link["title"] = title
    return link


def _catalog(cid: str, title: str, links: list[dict[str, str]]) -> dict[str, object]:
    return {"type": "Catalog", "stac_version": STAC, "id": cid, "title": title,
            "description": f"{title} (test)", "links": links}


def _item(item_id: str, title: str, extra_links: list[dict[str, str]],
          assets: dict[str, object]) -> dict[str, object]:
    return {
        "type": "Feature", "stac_version": STAC, "id": item_id, "collection": CID,
        "geometry": {"type": "Polygon", "coordinates": [[[10, 45], [11, 45], [11, 46],
                                                          [10, 46], [10, 45]]]},
        "bbox": [10, 45, 11, 46],
        "properties": {"title": title, "datetime": "2026-01-15T10:00:00Z"},
        "links": [_link("root", "../../../../../../catalog.json"),
                  _link("parent", "../catalog.json"),
                  _link("collection", "../../../../collection.json"), *extra_links],
        "assets": assets,
    }


def write_catalog(site: Path, public_url: str) -> None:
    """The published layout (preamble) in miniature: root → owner → collection → year →
    month → day → items A and B; B is derived from A and has a thumbnail beside it."""
    docs: dict[str, dict[str, object]] = {
        KEYS["root"]: {
            **_catalog("rspy-public", "RSPY public catalog",
                       [_link("self", f"{public_url}catalog.json"),
                        _link("root", "./catalog.json"),
                        _link("child", f"./{OWNER}/catalog.json", "Owner ESA")]),
            # as publish writes it: thumbnails load with CORS (needs the server's header)
            "stac_browser": {"crossOriginMedia": "anonymous"},
        },
        KEYS["owner"]: _catalog(OWNER, "Owner ESA", [
            _link("root", "../catalog.json"), _link("parent", "../catalog.json"),
            _link("child", f"./{CID}/collection.json", "Sentinel-2 L1C test collection")]),
        KEYS["collection"]: {
            "type": "Collection", "stac_version": STAC, "id": CID, "owner": OWNER,
            "title": "Sentinel-2 L1C test collection", "description": "Two items.",
            "license": "other",
            "extent": {"spatial": {"bbox": [[10, 45, 11, 46]]},
                       "temporal": {"interval": [["2026-01-15T10:00:00Z",
                                                  "2026-01-15T10:00:00Z"]]}},
            "links": [_link("root", "../../catalog.json"), _link("parent", "../catalog.json"),
                      _link("child", "./2026/catalog.json", "2026")],
        },
        f"{OWNER}/{CID}/2026/catalog.json": _catalog("2026", "2026", [
            _link("root", "../../../catalog.json"), _link("parent", "../collection.json"),
            _link("child", "./01/catalog.json", "2026-01")]),
        f"{OWNER}/{CID}/2026/01/catalog.json": _catalog("2026-01", "2026-01", [
            _link("root", "../../../../catalog.json"), _link("parent", "../catalog.json"),
            _link("child", "./15/catalog.json", "2026-01-15")]),
        f"{DAY}/catalog.json": _catalog("2026-01-15", "2026-01-15", [
            _link("root", "../../../../../catalog.json"), _link("parent", "../catalog.json"),
            _link("item", f"./{ITEM_A}/{ITEM_A}.json", "Item A title", "application/geo+json"),
            _link("item", f"./{ITEM_B}/{ITEM_B}.json", "Item B title",
                  "application/geo+json")]),
        KEYS["item_a"]: _item(ITEM_A, "Item A title", [], {}),
        KEYS["item_b"]: _item(
            ITEM_B, "Item B title",
            [_link("derived_from", f"../{ITEM_A}/{ITEM_A}.json", "Input A",
                   "application/geo+json")],
            {"thumbnail": {"href": f"./{ITEM_B}.png", "type": "image/png",
                           "roles": ["thumbnail"], "title": "Quicklook B"}}),
    }
    for key, doc in docs.items():
        path = site / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1))
    (site / KEYS["thumb_b"]).write_bytes(tiny_png())


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dist() -> Path:
    return build_browser(log=print)


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    with chromium() as drv:
        yield drv


def _open(driver, url: str, text: str) -> None:
    driver.get(url)
    wait_text(driver, text)
    assert page_has_error(driver) is None, console_log(driver)


# ------------------------------------------------------------------------- DOM tests


def test_same_origin_catalog_renders(tmp_path: Path, dist: Path, driver) -> None:
    site = tmp_path / "site"
    site.mkdir()
    server = make_server(site)
    catalog_url = f"{server.url}catalog.json"
    write_catalog(site, server.url)
    keys = install_browser(site, catalog_url=catalog_url, title="Test catalog", dist=dist)
    assert "browser/index.html" in keys and "browser/config.js" in keys
    with running(server) as base:
        base_browser = f"{base}browser/"
        driver.get(base)  # "/" redirects to the browser
        wait_text(driver, "RSPY public catalog")
        assert driver.current_url.startswith(base_browser)
        assert "Owner ESA" in driver.find_element(By.TAG_NAME, "body").text

        url = lambda key: browser_url(base_browser, catalog_url, KEYS[key])  # noqa: E731
        _open(driver, url("collection"), "Sentinel-2 L1C test collection")

        _open(driver, url("item_b"), "Item B title")
        driver.find_element(By.XPATH, "//a[@role='tab'][contains(., 'Thumbnails')]").click()
        wait_image(driver, f"{ITEM_B}.png")
        assert page_has_error(driver) is None

        derived = driver.find_element(By.XPATH, "//a[contains(., 'Input A')]")
        derived.click()
        wait_text(driver, "Item A title")
        assert driver.current_url.startswith(url("item_a"))  # (+ "?.language=en" at times)
        assert page_has_error(driver) is None, console_log(driver)

        driver.get(browser_url(base_browser, catalog_url, f"{OWNER}/gone/collection.json"))
        assert "does not exist" in wait_error(driver)  # the detector sees a broken page


def test_cross_origin_catalog_renders_with_cors(tmp_path: Path, dist: Path, driver) -> None:
    catalog_site, browser_site = tmp_path / "catalog", tmp_path / "web"
    catalog_site.mkdir()
    browser_site.mkdir()
    catalog_server = make_server(catalog_site)
    write_catalog(catalog_site, catalog_server.url)
    catalog_url = f"{catalog_server.url}catalog.json"
    browser_server = make_server(browser_site)
    assert browser_server.url != catalog_server.url
    install_browser(browser_site, catalog_url=catalog_url, dist=dist)
    with running(catalog_server), running(browser_server) as web:
        _open(driver, f"{web}browser/", "RSPY public catalog")
        _open(driver, browser_url(f"{web}browser/", catalog_url, KEYS["collection"]),
              "Sentinel-2 L1C test collection")
        _open(driver, browser_url(f"{web}browser/", catalog_url, KEYS["item_b"]),
              "Item B title")
        driver.find_element(By.XPATH, "//a[@role='tab'][contains(., 'Thumbnails')]").click()
        wait_image(driver, f"{ITEM_B}.png")
        crossorigin = driver.execute_script(
            "return document.querySelector('img.thumbnail').getAttribute('crossorigin')")
        assert crossorigin == "anonymous"  # the root's hint reached the page


def test_cross_origin_without_cors_shows_error_page(tmp_path: Path, dist: Path,
                                                    driver) -> None:
    catalog_site, browser_site = tmp_path / "catalog", tmp_path / "web"
    catalog_site.mkdir()
    browser_site.mkdir()
    catalog_server = make_server(catalog_site, cors=False)
    write_catalog(catalog_site, catalog_server.url)
    browser_server = make_server(browser_site)
    install_browser(browser_site, catalog_url=f"{catalog_server.url}catalog.json", dist=dist)
    with running(catalog_server), running(browser_server) as web:
        driver.get(f"{web}browser/")
        error = wait_error(driver)
    assert "could not be loaded" in error and "CORS" in error
    assert "RSPY public catalog" not in driver.find_element(By.TAG_NAME, "body").text


# ------------------------------------------------------------------------- install


def test_install_into_s3_sets_content_types_and_skips_unchanged(s3_bucket: str,
                                                                dist: Path) -> None:
    store = open_store(f"s3://{s3_bucket}/pub")
    url = "http://127.0.0.1:9/pub/catalog.json"
    store.put("catalog.json", json.dumps({"links": [{"rel": "self", "href": url}]}).encode())
    store.put("browser/js/old.0123abcd.js", b"stale chunk", content_type="text/javascript")
    keys = install_browser(store, catalog_url=url, title="T", dist=dist)
    assert keys[-2:] == ["browser/config.js", "browser/index.html"]  # entry points last
    s3 = boto3.client("s3")
    head = lambda key: s3.head_object(Bucket=s3_bucket, Key=f"pub/{key}")  # noqa: E731
    assert head("browser/index.html")["ContentType"].startswith("text/html")
    assert head("browser/config.js")["ContentType"].startswith("text/javascript")
    for suffix, media in ((".js", "text/javascript"), (".css", "text/css"),
                          (".svg", "image/svg+xml")):
        key = next(k for k in keys if k.endswith(suffix) and "/config" not in k)
        assert head(key)["ContentType"].startswith(media), key
    assert not store.exists("browser/js/old.0123abcd.js")  # an older build's chunk
    assert not [k for k in store.list("browser") if k.endswith(".map")]
    config = store.read("browser/config.js")
    assert config is not None and f'"catalogUrl": "{url}"' in config.data.decode()
    assert install_browser(store, catalog_url=url, title="T", dist=dist) == []


def test_install_refuses_catalog_url_other_than_root_self(tmp_path: Path, dist: Path) -> None:
    write_catalog(tmp_path, "http://127.0.0.1:8000/")
    with pytest.raises(ConfigError, match="self link"):
        install_browser(tmp_path, catalog_url="http://localhost:8000/catalog.json", dist=dist)
    assert not (tmp_path / "browser").exists()


# ------------------------------------------------------------------------- pure functions


def _eval_config(js: str, tmp_path: Path) -> dict[str, object]:
    """Run config.js as the page would (node, with the script's own URL), and return what
    it set, plus what its preprocessSTAC makes of a relative derived_from link."""
    path = tmp_path / "config.js"
    path.write_text(js)
    script = """
        global.window = {};
        global.document = {currentScript: {src: "http://h:1/pub/browser/config.js?v=1"}};
        require(process.argv[1]);
        const config = window.STAC_BROWSER_CONFIG;
        const stac = {getAbsoluteUrl: () => "http://h:1/pub/o/c/2026/01/15/B/B.json",
                      links: [{rel: "derived_from", href: "../A/A.json"},
                              {rel: "self", href: "./B.json"}]};
        config.preprocessed = config.preprocessSTAC(stac).links.map(l => l.href);
        console.log(JSON.stringify(config));
    """
    out = subprocess.run(["node", "-e", script, str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_config_js(tmp_path: Path) -> None:
    js = config_js("https://example.org/pub/catalog.json", "Public catalog")
    assert "catalogUrl" in js.split("window.STAC_BROWSER_CONFIG")[0]  # documented options
    assert _eval_config(js, tmp_path) == {
        "catalogUrl": "https://example.org/pub/catalog.json", "allowExternalAccess": False,
        "catalogTitle": "Public catalog",
        "pathPrefix": "/pub/browser/",  # router hrefs point into the app's folder
        "preprocessed": ["http://h:1/pub/o/c/2026/01/15/A/A.json", "./B.json"]}
    quoted = config_js('https://example.org/a"b/catalog.json', 'Title "quoted" </script>',
                       allowed_domains=["example.org"], extra={"socialSharing": []})
    got = _eval_config(quoted, tmp_path)
    assert got["catalogTitle"] == 'Title "quoted" </script>'
    assert got["catalogUrl"] == 'https://example.org/a"b/catalog.json'
    assert got["allowedDomains"] == ["example.org"] and got["socialSharing"] == []
    got = _eval_config(config_js(None), tmp_path)
    assert (got["catalogUrl"], got["allowExternalAccess"]) == (None, True)
    for bad in ("s3://bucket/catalog.json", "catalog.json", "file:///tmp/catalog.json"):
        with pytest.raises(ConfigError):
            config_js(bad)


def test_browser_url() -> None:
    base, cat = "http://127.0.0.1:8000/browser/", "http://127.0.0.1:8000/pub/catalog.json"
    assert browser_url(base, cat, cat) == base + "#/"
    assert browser_url(base, cat, "catalog.json") == base + "#/"
    assert (browser_url(base, cat, "http://127.0.0.1:8000/pub/esa/s2/collection.json")
            == base + "#/esa/s2/collection.json")
    item = "esa/s2/2026/01/15/X1/X1.json"
    assert browser_url(base.rstrip("/"), cat, item) == base + "#/" + item
    assert browser_url(base + "index.html", cat, "./" + item) == base + "index.html#/" + item
    assert browser_url(base, cat, "esa/a b/c.json") == base + "#/esa/a%20b/c.json"
    assert browser_url(base, cat, "esa/a%20b/c.json") == base + "#/esa/a%20b/c.json"
    with pytest.raises(ValueError, match="outside"):
        browser_url(base, cat, "../other/catalog.json")
    assert (browser_url(base, cat, "http://h:1/x/catalog.json", allow_external=True)
            == base + "#/external/http:/h:1/x/catalog.json")
    assert (browser_url(base, cat, "https://h/x/catalog.json", allow_external=True)
            == base + "#/external/h/x/catalog.json")


def test_check_integrity() -> None:
    check_integrity(b"abc", "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/"
                            "uu9RU1EI2Q86A4qmslPpUyknw==")
    with pytest.raises(BrowserError, match="integrity"):
        check_integrity(b"abd", "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/"
                                "BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==")


def test_build_without_npm_explains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrowserError, match="needs npm"):
        build_browser(cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("stac-browser-*/dist"))


def test_build_failure_reports_npm_output(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "npm").write_text("#!/bin/sh\necho 'npm error code ENOTFOUND' >&2\n"
                              "echo 'npm error network request failed' >&2\nexit 1\n")
    (fake / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}/usr/bin:/bin")
    with pytest.raises(BrowserError) as info:
        build_browser(cache_dir=tmp_path / "cache")
    assert "npm pack failed" in str(info.value) and "ENOTFOUND" in str(info.value)
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []  # nothing that could pass for a finished build


FAKE_NPM = """#!/bin/sh
# npm stand-in: pack / ci / run build:minimal, checking what the real build relies on
echo "$1" >> "$FAKE_NPM_DIR/calls"
case "$1" in
  pack) cp "$FAKE_NPM_DIR/pkg.tgz" "$5/" && echo '[{"filename": "pkg.tgz"}]' ;;
  ci) grep -q '"ol-stac": "~1.4.0"' package.json && test -f package-lock.json || exit 1
      sleep 1; mkdir -p node_modules ;;
  run) test "$SB_historyMode" = hash && test "$SB_pathPrefix" = ./ || exit 1
       if test -f "$FAKE_NPM_DIR/fail"; then echo "ERROR in ./src/main.js: boom" >&2; exit 1; fi
       mkdir -p dist/js && cp public/index.html dist/index.html
       echo x > dist/js/app.0123abcd.js && echo m > dist/js/app.0123abcd.js.map ;;
esac
"""


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake npm on PATH and a fake package tarball whose integrity is the pinned one."""
    import io
    import tarfile

    from rspy_batch.browser import build as build_mod

    home = tmp_path / "npm"
    home.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("package/package.json", '{"dependencies": {"ol-stac": "^1.1.0"}}'),
                           ("package/public/index.html", "<head>"
                            '<!-- <script defer="defer" src="/config.js"></script> --></head>')):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    (home / "pkg.tgz").write_bytes(buf.getvalue())
    digest = hashlib.sha512(buf.getvalue()).digest()
    monkeypatch.setattr(build_mod, "INTEGRITY", "sha512-" + base64.b64encode(digest).decode())
    (home / "npm").write_text(FAKE_NPM)
    (home / "npm").chmod(0o755)
    monkeypatch.setenv("FAKE_NPM_DIR", str(home))
    monkeypatch.setenv("PATH", f"{home}{os.pathsep}/usr/bin:/bin")
    return home


def test_build_once_under_lock_and_never_half_done(tmp_path: Path, fake_npm: Path) -> None:
    cache = tmp_path / "cache"
    (fake_npm / "fail").touch()
    with pytest.raises(BrowserError, match=r"build:minimal failed(.|\n)*boom"):
        build_browser(cache_dir=cache)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    (fake_npm / "fail").unlink()
    (fake_npm / "calls").unlink()
    with ThreadPoolExecutor(3) as pool:  # flock excludes threads too (one open() each)
        dists = list(pool.map(lambda _: build_browser(cache_dir=cache), range(3)))
    assert len(set(dists)) == 1
    dist = dists[0]
    assert (fake_npm / "calls").read_text().split() == ["pack", "ci", "run"]  # built once
    assert 'src="./config.js"' in (dist / "index.html").read_text()  # runtime config on
    assert [p.name for p in dist.rglob("*") if p.is_file()] != []
    assert not list(dist.rglob("*.map"))
    assert not (dist.parent / "package").exists()  # node_modules and sources dropped
    assert build_browser(cache_dir=cache) == dist
    assert (fake_npm / "calls").read_text().split() == ["pack", "ci", "run"]


def test_build_rejects_a_tarball_with_other_content(tmp_path: Path, fake_npm: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from rspy_batch.browser import build as build_mod

    monkeypatch.setattr(build_mod, "INTEGRITY", "sha512-" + "A" * 86 + "==")
    with pytest.raises(BrowserError, match="integrity"):
        build_browser(cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------- server


def _get(server_url: str, path: str, method: str = "GET",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = server_url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)  # sent as is: no normalising
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    (tmp_path / "secret.txt").write_text("top secret")
    site, data = tmp_path / "site", tmp_path / "staging"
    for folder in (site / "browser", site / "sub", data / "S2" / "x.zarr"):
        folder.mkdir(parents=True)
    (site / "browser" / "index.html").write_text("<html>browser</html>")
    (site / "catalog.json").write_text("{}")
    (site / "a.geojson").write_text("{}")
    (site / "items.parquet").write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")
    (site / "q.png").write_bytes(tiny_png())
    (site / "app.js").write_text("1")
    (site / "sub" / "note.txt").write_text("no listing for sub/")
    (data / "S2" / "x.zarr" / ".zattrs").write_text("{}")
    (site / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (site / "escape-dir").symlink_to(tmp_path)
    server = make_server(site, mounts={"/data": data})
    with running(server) as url:
        yield url, tmp_path


def test_server_refuses_paths_outside_its_roots(served: tuple[str, Path]) -> None:
    url, _ = served
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt",
                 "/data/../../secret.txt", "/data/%2E%2E/%2e%2e/secret.txt",
                 "/..%2fsecret.txt", "/sub/..%5C..%5Csecret.txt", "/escape.txt",
                 "/escape-dir/secret.txt", "//secret.txt", "/data//../secret.txt"):
        status, _headers, body = _get(url, path)
        assert status in (400, 403, 404), (path, status)
        assert b"top secret" not in body, path


def test_server_content_types_cors_and_no_listing(served: tuple[str, Path]) -> None:
    url, _ = served
    for path, media in (("/catalog.json", "application/json"),
                        ("/a.geojson", "application/geo+json"),
                        ("/items.parquet", "application/vnd.apache.parquet"),
                        ("/q.png", "image/png"), ("/app.js", "text/javascript"),
                        ("/browser/", "text/html"), ("/data/S2/x.zarr/.zattrs",
                                                     "application/json")):
        status, headers, _ = _get(url, path)
        assert status == 200, path
        assert headers["content-type"].startswith(media), path
        assert headers["access-control-allow-origin"] == "*"
    status, headers, _ = _get(url, "/")
    assert (status, headers["location"]) == (302, "/browser/")
    assert _get(url, "/sub")[:2][0] == 301
    status, headers, body = _get(url, "/sub/")
    assert status == 404 and b"note.txt" not in body
    assert headers["access-control-allow-origin"] == "*"  # errors readable cross-origin
    status, headers, _ = _get(url, "/catalog.json", "OPTIONS",
                              {"Origin": "http://x", "Access-Control-Request-Method": "GET",
                               "Access-Control-Request-Headers": "x-api-key"})
    assert status == 204 and headers["access-control-allow-origin"] == "*"
    assert "GET" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "x-api-key"
    status, headers, body = _get(url, "/items.parquet", headers={"Range": "bytes=-4"})
    assert (status, body, headers["content-range"]) == (206, b"PAR1", "bytes 204-207/208")
    status, _, body = _get(url, "/catalog.json", "HEAD")
    assert (status, body) == (200, b"")


def test_server_without_cors(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text("{}")
    with running(make_server(tmp_path, cors=False)) as url:
        status, headers, _ = _get(url, "/catalog.json")
    assert status == 200 and "access-control-allow-origin" not in headers


def test_server_helpers() -> None:
    assert content_type("x.JSON") == "application/json"
    assert content_type("LICENSE") == "application/octet-stream"
    assert content_type("f.woff2") == "font/woff2"
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=100-", 100) is False
    assert parse_range("bytes=0-1,5-6", 100) is None
    assert parse_mount("/data=/srv/staging") == ("data", Path("/srv/staging"))
    for bad in ("/data", "/../x=/tmp", "=/tmp"):
        with pytest.raises(ValueError):
            parse_mount(bad)
    url = "http://127.0.0.1:8000/catalog.json"
    assert configured_catalog_url(config_js(url, "T")) == url  # serve's port-mismatch hint
    assert configured_catalog_url(config_js(None)) is None


def test_image_loaded_helper_sees_broken_images(tmp_path: Path, driver) -> None:
    (tmp_path / "ok.png").write_bytes(tiny_png())
    (tmp_path / "page.html").write_text('<img id="ok" src="ok.png"><img id="bad" src="no.png">')
    with running(make_server(tmp_path)) as url:
        driver.get(f"{url}page.html")
        wait_image(driver, "#ok")
        assert image_loaded(driver, "ok.png")
        assert not image_loaded(driver, "#bad") and not image_loaded(driver, "no.png")
