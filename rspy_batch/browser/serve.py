"""A small static HTTP server for a published catalog, its STAC Browser and staged files.

``python -m http.server`` is not enough for STAC Browser: a catalog served from another
origin than the browser needs ``Access-Control-Allow-Origin`` (otherwise the browser shows
its "could not be loaded ... CORS" page), JSON must come as ``application/json``, and it
lists directories. This server:

- sends ``Access-Control-Allow-Origin: *`` on every answer (errors included, so the browser
  can tell a 404 from a network failure) and answers ``OPTIONS`` preflights;
- maps extensions to content types (:func:`content_type`, shared with the S3 install);
- serves ``directory`` at ``/`` and each mount at ``/<prefix>/`` (e.g. ``/data/`` → the
  staging directory, so asset hrefs resolve), redirects ``/`` to ``/browser/`` when there
  is a ``browser/`` folder, serves ``index.html`` of a folder and never lists one;
- answers single byte ranges (parquet and Zarr readers fetch parts of files);
- refuses ``..`` segments and anything (symlinks included) resolving outside its roots;
- logs requests through :mod:`logging` at DEBUG, never to stderr directly;
- listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import mimetypes
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

CONTENT_TYPES: dict[str, str] = {
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".parquet": "application/vnd.apache.parquet",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".tif": "image/tiff; application=geotiff",
    ".tiff": "image/tiff; application=geotiff",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".map": "application/json",
    ".zip": "application/zip",
    ".nc": "application/x-netcdf",
    ".zarray": "application/json",
    ".zattrs": "application/json",
    ".zgroup": "application/json",
    ".zmetadata": "application/json",
}
DEFAULT_TYPE = "application/octet-stream"
#: names a store keeps for itself (LocalStore locks and temporary files)
# Bookkeeping, not for readers: locks, temporaries, publish manifests (the bucket policy
# leaves _rspy/ out too).
_PRIVATE = re.compile(r"^(\.rspy-locks|\.git|\.tmp-.*|_rspy)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_type(name: str) -> str:
    """Content type for a file name (``.json`` → application/json, ...)."""
    dot = name.rfind(".")
    suffix = name[dot:].lower() if dot >= 0 else ""
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    return mimetypes.guess_type(name, strict=False)[0] or DEFAULT_TYPE


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, end)`` inclusive for a single ``bytes=`` range; None: whole file;
    False: unsatisfiable (416)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None  # multiple or malformed ranges: RFC 9110 lets us send the whole file
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


def parse_mount(text: str) -> tuple[str, Path]:
    """``/PREFIX=DIR`` (CLI form) → (prefix, directory)."""
    prefix, sep, directory = text.partition("=")
    if not sep or not directory:
        raise ValueError(f"mount {text!r} is not /PREFIX=DIR")
    return _mount_prefix(prefix), Path(directory).expanduser()


def _mount_prefix(prefix: str) -> str:
    clean = prefix.strip("/")
    if not clean or any(part in ("", ".", "..") or _PRIVATE.match(part)
                        for part in clean.split("/")):
        raise ValueError(f"invalid mount prefix {prefix!r}")
    return clean


def configured_catalog_url(config_js: str) -> str | None:
    """The ``catalogUrl`` a STAC Browser ``config.js`` (as :func:`config_js` writes it) sets."""
    match = re.search(r'"catalogUrl":\s*"([^"]*)"', config_js)
    return match.group(1) if match else None


class StaticServer(ThreadingHTTPServer):
    """The server object; ``url`` is its base address (``http://host:port/``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], directory: Path,
                 mounts: Mapping[str, Path], cors: bool) -> None:
        self.roots: list[tuple[tuple[str, ...], Path]] = sorted(
            ((tuple(_mount_prefix(p).split("/")), Path(d).resolve(strict=True))
             for p, d in mounts.items()), key=lambda m: -len(m[0]))
        self.roots.append(((), Path(directory).resolve(strict=True)))
        self.cors = cors
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver prints tracebacks to stderr; a browser dropping a kept-alive
        # connection is routine, so it goes to the log instead.
        log.debug("request from %s failed", client_address, exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


def make_server(directory: Path | str, *, host: str = "127.0.0.1", port: int = 0,
                mounts: Mapping[str, Path] | None = None, cors: bool = True) -> StaticServer:
    """A ready (not yet serving) server for ``directory`` plus ``mounts`` (prefix → dir).

    ``port=0`` picks a free port (see ``server.url``). ``cors=False`` only exists to show
    what STAC Browser does without CORS.
    """
    return StaticServer((host, port), Path(directory), mounts or {}, cors)


@contextlib.contextmanager
def running(server: StaticServer) -> Iterator[str]:
    """Serve in a background thread; yields the base URL, shuts down on exit."""
    thread = threading.Thread(target=server.serve_forever, name="rspy-static", daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve(directory: Path | str, *, host: str = "127.0.0.1", port: int = 8000,
          mounts: Mapping[str, Path] | None = None,
          say: Callable[[str], None] = print) -> None:
    """Serve until interrupted (the ``rspy-batch serve`` command)."""
    server = make_server(directory, host=host, port=port, mounts=mounts)
    if host not in ("127.0.0.1", "localhost", "::1"):
        say(f"warning: serving {directory} to the network on {host}")
    say(f"serving {Path(directory).resolve()} at {server.url}")
    for prefix, root in server.roots[:-1]:
        say(f"  {server.url}{'/'.join(prefix)}/ -> {root}")
    config = Path(directory) / "browser" / "config.js"
    if config.is_file():
        say(f"STAC Browser: {server.url}browser/")
        catalog_url = configured_catalog_url(config.read_text(errors="replace"))
        if catalog_url and not _served_here(catalog_url, server):
            say(f"warning: browser/config.js reads the catalog from {catalog_url}, not from "
                f"this server (publish with --public-url {server.url} to browse this copy)")
    serve_server(server)


def serve_server(server: StaticServer) -> None:
    """Serve in this thread until Ctrl-C, then close."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _served_here(url: str, server: StaticServer) -> bool:
    host, port = server.server_address[:2]
    parts = urlsplit(url)
    try:
        url_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return url_port == port and parts.hostname in {host, "localhost", "127.0.0.1"}


class _Handler(BaseHTTPRequestHandler):
    server: StaticServer
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "rspy-batch"

    def do_OPTIONS(self) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self._cors()
        if self.server.cors:
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers",
                             self.headers.get("Access-Control-Request-Headers") or "*")
            self.send_header("Access-Control-Max-Age", "86400")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        raw = urlsplit(self.path).path
        segments = unquote(raw).split("/")
        if (not raw.startswith("/") or any(s in (".", "..") or "\\" in s or "\0" in s
                                           for s in segments)):
            return self._status(HTTPStatus.BAD_REQUEST, "bad path", body)
        parts = [s for s in segments if s]
        if any(_PRIVATE.match(s) for s in parts):
            return self._status(HTTPStatus.NOT_FOUND, "not found", body)
        if not parts and (self.server.roots[-1][1] / "browser").is_dir():
            return self._redirect("/browser/", HTTPStatus.FOUND, body)
        path = self._resolve(parts)
        if path is None:
            return self._status(HTTPStatus.NOT_FOUND, "not found", body)
        if path.is_dir():
            if not raw.endswith("/"):
                return self._redirect(raw + "/", HTTPStatus.MOVED_PERMANENTLY, body)
            path = path / "index.html"
            if not path.is_file():  # no listings
                return self._status(HTTPStatus.NOT_FOUND, "not found", body)
        self._file(path, body)

    def _resolve(self, parts: list[str]) -> Path | None:
        for prefix, root in self.server.roots:
            if tuple(parts[:len(prefix)]) == prefix:
                try:
                    path = root.joinpath(*parts[len(prefix):]).resolve(strict=True)
                except (OSError, RuntimeError):
                    return None
                # a symlink may point anywhere: only what resolves inside the root is served
                return path if path == root or path.is_relative_to(root) else None
        return None

    def _file(self, path: Path, body: bool) -> None:
        try:
            fh = open(path, "rb")  # noqa: SIM115 (the with below closes it)
        except OSError:
            return self._status(HTTPStatus.NOT_FOUND, "not found", body)
        with fh:
            stat = os.fstat(fh.fileno())
            size = stat.st_size
            span = parse_range(self.headers.get("Range"), size)
            if span is False:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self._cors()
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            start, end = span if isinstance(span, tuple) else (0, size - 1)
            length = max(0, end - start + 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
            self._cors()
            self.send_header("Content-Type", content_type(path.name))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if span:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            # a local catalog changes under the browser while one works on it
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body and length:
                fh.seek(start)
                with contextlib.suppress(ConnectionError):
                    _copy(fh, self.wfile, length)
        return None

    def _redirect(self, location: str, code: HTTPStatus, body: bool) -> None:
        self.send_response(code)
        self._cors()
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _status(self, code: HTTPStatus, message: str, body: bool) -> None:
        data = f"{int(code)} {message}\n".encode()
        self.send_response(code)
        self._cors()
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _cors(self) -> None:
        if self.server.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Expose-Headers",
                             "Content-Length, Content-Range, Accept-Ranges, Last-Modified")

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = src.read(min(1 << 16, remaining))
        if not chunk:
            break
        dst.write(chunk)
        remaining -= len(chunk)
