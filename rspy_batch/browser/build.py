"""STAC Browser 4.0.1, built once from npm and installed beside a published catalog.

The npm package ``@radiantearth/stac-browser`` ships source only (no ``dist/``), so we
build it (environment.md §4):

- **Pinned.** The tarball is checked against its registry integrity (sha512) and installed
  with ``npm ci`` from ``package-lock.json`` next to this module: the package declares
  ``ol-stac ^1.1.0``, which now resolves to 1.6.0 and breaks the build against ol 10.6, so
  the lock (made from a successful install) pins ``ol-stac ~1.4.0`` and every other
  package. ``--ignore-scripts``: nothing in the tree needs an install script, and none runs.
- **Static-hosting settings.** ``SB_historyMode=hash`` (S3 and plain file servers cannot
  rewrite URLs to ``index.html``) and ``SB_pathPrefix=./`` (the app works from any folder);
  the ``<script src="./config.js">`` tag of ``public/index.html`` is uncommented so the
  catalog URL is set after the build, by writing ``config.js`` (:func:`config_js`).
  ``build:minimal`` leaves out source maps (22 MB → 5.6 MB). ``config.js`` also carries
  two runtime fixes for 4.0.1 in a sub-folder (:data:`CONFIG_FIXES`).
- **Once.** ``<cache>/stac-browser-4.0.1-<hash>/dist`` where ``<cache>`` is
  ``$RSPY_BROWSER_CACHE`` or ``~/.cache/rspy-batch`` and ``<hash>`` covers the lock file,
  the tarball integrity and the build settings, so changing any of them builds afresh.
  Builders take a file lock; a build runs in a temporary folder that is renamed into place
  when complete, so a killed build never leaves a folder that looks finished.

:func:`install_browser` copies the build into a directory or a :class:`Store` under
``browser/`` and writes its ``config.js``; :func:`browser_url` computes the address at
which the browser shows a given document of the catalog.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

from rspy_batch.browser.serve import content_type
from rspy_batch.buildcache import locked, output_tail
from rspy_batch.catalog.storage import LocalStore, Store
from rspy_batch.errors import ConfigError, RspyError

PACKAGE = "@radiantearth/stac-browser"
VERSION = "4.0.1"
#: registry ``dist.integrity`` of the 4.0.1 tarball
INTEGRITY = ("sha512-Nu3pZzkJXfaS8JpsY1SjABMgr8W9swNmVa8RJoRetuDeMQ1+YibBRluC7G9ugzE/QECHD/"
             "9n3/8W/Ksz+UAC7w==")
LOCK_FILE = Path(__file__).with_name("package-lock.json")
ENV_CACHE = "RSPY_BROWSER_CACHE"
BUILD_ENV = {"SB_historyMode": "hash", "SB_pathPrefix": "./"}
#: package.json edits: (old, new); the lock file was made with these applied
PACKAGE_JSON_EDITS = (('"ol-stac": "^1.1.0"', '"ol-stac": "~1.4.0"'),)
INDEX_HTML_EDITS = (('<!-- <script defer="defer" src="/config.js"></script> -->',
                     '<script defer="defer" src="./config.js"></script>'),)
#: bump when the build procedure changes in a way the inputs above do not show
BUILD_VERSION = "1"
STEP_TIMEOUT = 1800.0
TAIL_LINES = 25


class BrowserError(RspyError):
    """STAC Browser could not be built or installed."""


# ---------------------------------------------------------------------------- build


def build_hash(lock: bytes) -> str:
    """Short digest of everything that determines the build output."""
    digest = hashlib.sha256()
    parts = [lock, INTEGRITY.encode(), json.dumps(BUILD_ENV, sort_keys=True).encode(),
             repr(PACKAGE_JSON_EDITS).encode(), repr(INDEX_HTML_EDITS).encode(),
             BUILD_VERSION.encode()]
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def cache_root(cache_dir: Path | None = None) -> Path:
    """Where builds are kept: ``cache_dir``, else ``$RSPY_BROWSER_CACHE``, else ~/.cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    return Path.home() / ".cache" / "rspy-batch"


def build_dir(cache_dir: Path | None = None) -> Path:
    """The folder holding the finished build's ``dist/`` (it may not exist yet)."""
    return cache_root(cache_dir) / f"stac-browser-{VERSION}-{build_hash(LOCK_FILE.read_bytes())}"


def build_browser(*, cache_dir: Path | None = None,
                  log: Callable[[str], None] | None = None) -> Path:
    """Build STAC Browser once and return its ``dist`` folder (cached; see module doc).

    Needs ``npm`` (Node 20) and the npm registry the first time: about 3-4 min on 2 cores,
    ~1 GB of memory, ~420 MB of node_modules while it runs (deleted after); 5.6 MB kept.
    """
    say = log or (lambda _msg: None)
    final = build_dir(cache_dir)
    dist = final / "dist"
    if _complete(dist):
        return dist
    final.parent.mkdir(parents=True, exist_ok=True)
    with locked(final.with_name(final.name + ".lock")):
        if _complete(dist):  # another process built it while we waited
            return dist
        npm = shutil.which("npm")
        if npm is None:
            raise BrowserError("STAC Browser build needs npm (Node.js 20), which is not on "
                               "PATH; install nodejs and npm, or copy a built "
                               f"{final.name} into {final.parent}")
        # One fixed work path (we hold the lock): webpack's chunk names depend on the
        # absolute build path, and two builds at one path are byte-identical.
        work = final.parent / f".{final.name}.tmp"
        shutil.rmtree(work, ignore_errors=True)  # a killed build's
        if final.exists():
            shutil.rmtree(final)  # incomplete by the check above (e.g. a hand-pruned cache)
        work.mkdir()
        try:
            started = time.monotonic()
            _build_into(npm, work, say)
            shutil.rmtree(work / "package" / "node_modules", ignore_errors=True)
            out = work / "out"
            out.mkdir()
            (work / "package" / "dist").rename(out / "dist")
            os.rename(out, final)  # the only step that makes the build visible
            say(f"stac-browser: built in {time.monotonic() - started:.0f} s: {dist}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return dist


def _complete(dist: Path) -> bool:
    return (dist / "index.html").is_file()


def _build_into(npm: str, work: Path, say: Callable[[str], None]) -> None:
    say(f"stac-browser: downloading {PACKAGE}@{VERSION}")
    out = _run([npm, "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", str(work)],
               "npm pack", cwd=work)
    tarball = work / _packed_name(out)
    check_integrity(tarball.read_bytes(), INTEGRITY)
    with tarfile.open(tarball) as tar:
        tar.extractall(work, filter="data")
    pkg = work / "package"
    _edit(pkg / "package.json", PACKAGE_JSON_EDITS)
    _edit(pkg / "public" / "index.html", INDEX_HTML_EDITS)
    shutil.copyfile(LOCK_FILE, pkg / "package-lock.json")
    say("stac-browser: installing pinned dependencies (npm ci, ~1-2 min)")
    _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
         "npm ci", cwd=pkg)
    say("stac-browser: building (vue-cli, ~2 min)")
    _run([npm, "run", "build:minimal", "--silent"], "npm run build:minimal", cwd=pkg,
         extra_env=BUILD_ENV)
    dist = pkg / "dist"
    for source_map in dist.rglob("*.map"):
        source_map.unlink()
    index = (dist / "index.html").read_text() if _complete(dist) else ""
    if 'src="./config.js"' not in index:
        raise BrowserError(f"STAC Browser build produced no usable {dist}/index.html "
                           "(missing or without the ./config.js script tag)")


def _packed_name(npm_pack_json: str) -> str:
    try:
        return str(json.loads(npm_pack_json)[0]["filename"])
    except (ValueError, LookupError, TypeError) as exc:
        raise BrowserError("npm pack gave no file name:\n"
                           + output_tail(npm_pack_json, TAIL_LINES)) from exc


def check_integrity(data: bytes, integrity: str) -> None:
    """Raise unless ``data`` matches an npm ``sha512-<base64>`` integrity string."""
    algo, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if actual != expected:
        raise BrowserError(f"{PACKAGE}@{VERSION} tarball does not match its pinned integrity "
                           f"({algo}-{actual} != {integrity})")


def _edit(path: Path, edits: Sequence[tuple[str, str]]) -> None:
    text = path.read_text()
    for old, new in edits:
        if old not in text:
            raise BrowserError(f"{path.name} of {PACKAGE}@{VERSION} has no {old!r} to edit")
        text = text.replace(old, new)
    path.write_text(text)


def _npm_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "npm_config_update_notifier": "false", "npm_config_fund": "false",
        "npm_config_audit": "false", "npm_config_progress": "false",
        # old caniuse data only prints a warning; the browserslist query stays as pinned
        "BROWSERSLIST_IGNORE_OLD_DATA": "1",
    })
    env.update(extra or {})
    return env


def _run(argv: list[str], what: str, *, cwd: Path,
         extra_env: dict[str, str] | None = None) -> str:
    """Run one npm step quietly; a failure raises with the tail of npm's output."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=_npm_env(extra_env), capture_output=True,
                              text=True, timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BrowserError(f"STAC Browser build: {what} did not finish in "
                           f"{STEP_TIMEOUT:.0f} s") from exc
    except OSError as exc:
        raise BrowserError(f"STAC Browser build: {what} could not start: {exc}") from exc
    if proc.returncode != 0:
        hint = (" (is the npm registry reachable?)"
                if what in ("npm pack", "npm ci") else "")
        raise BrowserError(f"STAC Browser build: {what} failed (rc {proc.returncode}){hint}:\n"
                           + output_tail(proc.stdout + "\n" + proc.stderr, TAIL_LINES))
    return proc.stdout






# ---------------------------------------------------------------------------- config


CONFIG_HEADER = """\
// STAC Browser {version} runtime configuration, written by rspy-batch (install_browser).
// Edit freely; the page reads it on every load. Options (docs/options.md of the package):
//   catalogUrl           URL of the root catalog. Must equal the root's "self" link exactly.
//   catalogTitle         title shown when the root catalog has none.
//   allowExternalAccess  true: also browse STAC documents outside catalogUrl's folder
//                        (#/external/...); false: this catalog only.
//   allowedDomains       other hosts that may receive requestHeaders / private query params.
//   requestHeaders       extra HTTP headers for every STAC request, e.g. {{"X-Api-Key": "..."}}.
//   crossOriginMedia     "anonymous": load thumbnails with CORS; null (default): plain <img>,
//                        which works even when the asset host sends no CORS headers.
//   displayGeoTiffByDefault, defaultThumbnailSize [w, h], cardViewMode ("cards"|"list"),
//   showThumbnailsAsAssets, locale, footerLinks [{{label, url}}],
//   socialSharing (subset of ["email", "bsky", "mastodon", "x"]; [] hides the buttons).
// historyMode is fixed by the build (hash); the app's files load relative to this folder.
"""

# Two fixes for a hash-mode build served from a sub-folder (both checked in a browser):
# - pathPrefix "./" (build) makes vue-router write link hrefs as "/./#/..." (the server
#   root), so "open in new tab" misses the app; the folder of this very script is right.
# - with allowExternalAccess false, StacLink judges a link's *raw* href, and a relative
#   "../x/x.json" (an item's derived_from a sibling item) counts as external: it becomes a
#   raw-JSON link in a new tab. Absolute hrefs are judged against catalogUrl correctly.
CONFIG_FIXES = """\
  pathPrefix: document.currentScript
    ? new URL(".", document.currentScript.src).pathname : "./",
  preprocessSTAC: function (stac) {
    var base = typeof stac.getAbsoluteUrl === "function" && stac.getAbsoluteUrl();
    if (base && Array.isArray(stac.links)) {
      stac.links.forEach(function (link) {
        if (link && typeof link.href === "string" && link.href.indexOf("../") === 0) {
          link.href = new URL(link.href, base).href;
        }
      });
    }
    return stac;
  }
"""


def config_js(catalog_url: str | None, title: str | None = None, *,
              allow_external: bool | None = None, allowed_domains: Sequence[str] = (),
              extra: dict[str, object] | None = None) -> str:
    """The ``config.js`` that points the built browser at ``catalog_url``.

    External access is off by default when a catalog is given: the published catalog is
    self-contained, and a public page that renders any third-party STAC document (titles,
    Markdown descriptions) under our address invites spoofing. Without a catalog the
    browser starts on its "enter a URL" page, which needs external access. ``extra`` adds
    or overrides options (JSON values).
    """
    if catalog_url is not None:
        _check_http_url(catalog_url, "catalog URL")
    config: dict[str, object] = {
        "catalogUrl": catalog_url,
        "allowExternalAccess": (catalog_url is None) if allow_external is None
        else allow_external,
    }
    if title:
        config["catalogTitle"] = title
    if allowed_domains:
        config["allowedDomains"] = list(allowed_domains)
    config.update(extra or {})
    body = json.dumps(config, indent=2, ensure_ascii=False)
    return (CONFIG_HEADER.format(version=VERSION)
            + "window.STAC_BROWSER_CONFIG = Object.assign({\n" + CONFIG_FIXES + "}, "
            + body + ");\n")


def _check_http_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{what} must be an absolute http(s) URL, got {url!r}")


def check_catalog_url(root: dict[str, object], catalog_url: str) -> None:
    """Raise if the root catalog's ``self`` link is not exactly ``catalog_url``.

    STAC Browser keys its store by URL; a mismatch shows documents under two URLs and
    breaks navigation back to the root (docs/options.md, catalogUrl).
    """
    links = root.get("links")
    selfs = [link.get("href") for link in links if isinstance(link, dict)
             and link.get("rel") == "self"] if isinstance(links, list) else []
    if selfs and selfs[0] != catalog_url:
        raise ConfigError(f"catalog URL {catalog_url!r} differs from the root catalog's self "
                          f"link {selfs[0]!r}; STAC Browser needs them identical")


# ---------------------------------------------------------------------------- install

_HASHED = re.compile(r"\.[0-9a-f]{8}\.[A-Za-z0-9]+$")
#: written last, so a visitor never loads a page whose scripts are not there yet
_LAST = ("config.js", "index.html")


def install_browser(dest: Store | Path, *, catalog_url: str | None, title: str | None = None,
                    prefix: str = "browser", dist: Path | None = None,
                    check_root: bool = True,
                    log: Callable[[str], None] | None = None) -> list[str]:
    """Put the built browser under ``<dest>/<prefix>/`` with a ``config.js`` for the catalog.

    Builds the browser first if needed (``dist`` overrides). When ``dest`` holds a root
    ``catalog.json``, its self link must equal ``catalog_url`` (``check_root``). Files are
    written with their content types, ``index.html`` last; content-hashed chunks already
    there and unchanged files are not rewritten, and chunks of an older build are removed
    afterwards. Returns the keys written.
    """
    store = LocalStore(dest) if isinstance(dest, (str, os.PathLike)) else dest
    prefix = prefix.strip("/")
    if check_root and catalog_url is not None:
        root = store.read("catalog.json")
        if root is not None:
            check_catalog_url(json.loads(root.data), catalog_url)
    config = config_js(catalog_url, title).encode()
    dist = dist or build_browser(log=log)
    files = {path.relative_to(dist).as_posix(): path for path in sorted(dist.rglob("*"))
             if path.is_file() and path.name != "config.js" and not path.name.endswith(".map")}
    if "index.html" not in files:
        raise BrowserError(f"{dist} is not a STAC Browser build (no index.html)")
    key = (lambda rel: f"{prefix}/{rel}") if prefix else (lambda rel: rel)
    existing = set(store.list(prefix))

    def put(rel: str, data: bytes) -> str | None:
        k = key(rel)
        if k in existing and (_HASHED.search(rel) or _same(store, k, data)):
            return None
        store.put(k, data, content_type=content_type(rel))
        return k

    first = [rel for rel in files if rel not in _LAST]
    with ThreadPoolExecutor(max(1, store.write_concurrency)) as pool:
        written = [k for k in pool.map(lambda rel: put(rel, files[rel].read_bytes()), first)
                   if k]
    for rel, data in (("config.js", config), ("index.html", files["index.html"].read_bytes())):
        if (k := put(rel, data)) is not None:
            written.append(k)
    wanted = {key(rel) for rel in [*files, "config.js"]}
    stale = [k for k in existing if k not in wanted and _is_build_chunk(k, prefix)]
    for k in stale:
        store.delete(k)
    if log:
        log(f"stac-browser: {len(written)} files written, {len(stale)} stale removed, "
            f"under {store.href(prefix) if prefix else store.url}")
    return written


def _same(store: Store, key: str, data: bytes) -> bool:
    blob = store.read(key)
    return blob is not None and blob.data == data


def _is_build_chunk(key: str, prefix: str) -> bool:
    rel = key[len(prefix) + 1:] if prefix else key
    return rel.split("/", 1)[0] in ("js", "css", "img") and bool(_HASHED.search(rel))


# ---------------------------------------------------------------------------- URLs


def browser_url(browser_base: str, catalog_url: str, doc_url: str, *,
                allow_external: bool = False) -> str:
    """The address at which the hash-mode browser at ``browser_base`` shows ``doc_url``.

    STAC Browser 4.0.1 (``store/index.js`` ``toBrowserPath``) names a document by its URL
    relative to ``catalogUrl``: the root is ``#/``, ``<owner>/<cid>/collection.json`` is
    ``#/<owner>/<cid>/collection.json``, an item ``#/<owner>/<cid>/<YYYY>/<MM>/<DD>/<id>/
    <id>.json``. Documents outside the catalog's folder are ``#/external/<host>/<path>``
    (https) or ``#/external/http:/<host>/<path>``, reachable only with external access.
    ``doc_url`` may be relative to ``catalog_url``.
    """
    base = browser_base.split("#", 1)[0]
    if not base.endswith("/") and "." not in base.rsplit("/", 1)[-1]:
        base += "/"
    catalog = urlsplit(catalog_url)
    doc = urlsplit(urljoin(catalog_url, doc_url))
    folder = catalog.path.rsplit("/", 1)[0] + "/"
    query = f"?{doc.query}" if doc.query else ""
    same_origin = ((doc.scheme, doc.netloc.lower()) == (catalog.scheme, catalog.netloc.lower()))
    if same_origin and doc.path == catalog.path and not doc.query:
        return base + "#/"
    if same_origin and doc.path.startswith(folder):
        return base + "#/" + _normal_path(doc.path[len(folder):]) + query
    if not allow_external:
        raise ValueError(f"{doc.geturl()} is outside the folder of {catalog_url}; STAC Browser "
                         "shows it only with allowExternalAccess")
    scheme = "" if doc.scheme == "https" else f"{doc.scheme}:/"
    return (base + "#/external/" + scheme + doc.netloc + "/"
            + _normal_path(doc.path.lstrip("/")) + query)


def _normal_path(path: str) -> str:
    # URI.js normalises to percent-encoding; re-quote so "a b" and "a%20b" give one URL.
    return quote(unquote(path), safe="/!$&'()*+,;=:@~")
