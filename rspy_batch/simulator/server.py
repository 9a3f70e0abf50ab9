"""The stdlib HTTP transport: a threading server per listener, delegating to :class:`App`."""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rspy_batch.simulator.app import App
from rspy_batch.simulator.wire import Request, Response, odata_error

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive: paging 100 pages must not pay a TCP handshake per page.
    protocol_version = "HTTP/1.1"
    server_version = "rspy-station-sim/1.0"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve("HEAD")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            method="GET" if method == "HEAD" else method,
            path=urllib.parse.unquote(split.path),
            query=split.query,
            params=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
            headers=self.headers,
            body=body,
            listener=self.server.listener,
        )
        try:
            resp = self.server.app.handle(req)
        except Exception:  # a simulator bug must not look like a station hang
            log.exception("simulator error on %s %s", method, self.path)
            resp = odata_error(500, "InternalError", "simulator internal error")
        self._write(resp, head_only=method == "HEAD")

    def _write(self, resp: Response, head_only: bool) -> None:
        if resp.delay:
            time.sleep(resp.delay)
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        if resp.send_bytes is not None:
            # The truncate fault: announce everything, send part, then drop the
            # connection so the client sees a short read rather than a hang.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if head_only:
            return
        body = resp.body if resp.send_bytes is None else resp.body[: resp.send_bytes]
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, listener: str) -> None:
        self.app = app
        self.listener = listener
        super().__init__(address, _Handler)


class Listener:
    """One bound server running in a background thread."""

    def __init__(self, host: str, port: int, app: App, listener: str) -> None:
        self.server = _Server((host, port), app, listener)
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name=f"station-sim-{listener}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
