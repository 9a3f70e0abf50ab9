"""A fault-injecting HTTP/1.1 reverse proxy for tests (loopback only).

Put it in front of an S3 server (or any HTTP server) and point the clients at
:attr:`FaultProxy.url`. Requests are relayed byte for byte: method, target, every
end-to-end header (``Host`` as the client sent it, since S3 clients sign with the proxy's
host), bodies streamed as they arrive (Content-Length or chunked framing; aws-chunked
rides inside either), ``Expect: 100-continue`` handshakes, keep-alive towards the client.
As in any HTTP proxy, the hop-by-hop headers (``Connection``, ``Keep-Alive``) belong to
each hop: the upstream gets one connection per request, the client keeps its own.

Faults, drawn per request from a seeded :class:`random.Random` (see :class:`ProxyFaults`):

- ``drop``: close the connection without answering, either before forwarding or after the
  upstream answered (the request took effect, only its answer is lost);
- ``http-500`` / ``http-503``: an S3 XML error (``InternalError`` / ``SlowDown``) instead
  of forwarding;
- ``slow``: wait ``slow_seconds`` before forwarding;
- ``reset``: forward, send the answer's head and part of its body (part of the head when
  it has no body), then reset the connection (``SO_LINGER`` 0 and close).

``applied`` counts the faults that hit after the upstream had answered, i.e. requests
that took effect although the client saw them fail (and retries them).
"""

from __future__ import annotations

import contextlib
import random
import socket
import socketserver
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO
from urllib.parse import urlparse

KINDS = ("drop", "http-500", "http-503", "slow", "reset")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection"})
MAX_LINE = 64 * 1024
PIECE = 64 * 1024
UPSTREAM_TIMEOUT = 120.0
IDLE_TIMEOUT = 300.0

_ERRORS = {
    "http-500": (500, "Internal Server Error", "InternalError",
                 "We encountered an internal error. Please try again."),
    "http-503": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
}


@dataclass(frozen=True)
class ProxyFaults:
    """Per-request probabilities of each fault kind (exclusive: at most one per request)."""

    drop: float = 0.0
    http_500: float = 0.0
    http_503: float = 0.0
    slow: float = 0.0
    reset: float = 0.0
    slow_seconds: float = 0.5

    def __post_init__(self) -> None:
        rates = [self.rate(k) for k in KINDS]
        if any(r < 0 for r in rates) or sum(rates) > 1 or self.slow_seconds < 0:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1: {self}")

    def rate(self, kind: str) -> float:
        return float(getattr(self, kind.replace("-", "_")))


NO_FAULTS = ProxyFaults()


class _PeerClosed(Exception):
    """The peer closed the connection (or sent something that is not HTTP)."""


@dataclass(frozen=True)
class Head:
    """A request or status line and its header fields, in order, as received."""

    start: str
    fields: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.fields if k.lower() == name]
        return values[-1] if values else None

    def hop(self, extra: tuple[tuple[str, str], ...] = ()) -> Head:
        """This head for the next hop: its own hop-by-hop fields, the rest unchanged."""
        kept = tuple((k, v) for k, v in self.fields if k.lower() not in HOP_BY_HOP)
        return Head(self.start, kept + extra)

    def to_bytes(self) -> bytes:
        lines = [self.start, *(f"{k}: {v}" for k, v in self.fields)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @property
    def status(self) -> int:
        return int(self.start.split(" ", 2)[1])


def read_head(reader: BinaryIO) -> Head | None:
    """The next message head, or None if the peer closed before sending one."""
    line = reader.readline(MAX_LINE)
    while line in (b"\r\n", b"\n"):  # RFC 9112: ignore empty lines before a request
        line = reader.readline(MAX_LINE)
    if not line:
        return None
    fields: list[tuple[str, str]] = []
    while True:
        raw = reader.readline(MAX_LINE)
        if not raw.endswith(b"\n"):
            raise _PeerClosed("connection closed inside a message head")
        if raw in (b"\r\n", b"\n"):
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise _PeerClosed(f"not a header field: {raw[:80]!r}")
        fields.append((name.strip(), value.strip()))
    if not line.endswith(b"\n"):
        raise _PeerClosed("connection closed inside a start line")
    return Head(line.decode("latin-1").rstrip("\r\n"), tuple(fields))


# Body framing: ("none", 0) | ("length", n) | ("chunked", 0) | ("close", 0)
Framing = tuple[str, int]


def request_framing(head: Head) -> Framing:
    if "chunked" in (head.get("transfer-encoding") or "").lower():
        return ("chunked", 0)
    length = int(head.get("content-length") or 0)
    return ("length", length) if length else ("none", 0)


def response_framing(method: str, head: Head) -> Framing:
    status = head.status
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return ("none", 0)
    if "chunked" in (head.get("transfer-encoding") or "").lower():
        return ("chunked", 0)
    length = head.get("content-length")
    return ("length", int(length)) if length is not None else ("close", 0)


def body_pieces(reader: BinaryIO, framing: Framing) -> Iterator[bytes]:
    """The body's bytes exactly as framed on the wire, in pieces as they arrive."""
    kind, length = framing
    if kind == "length":
        left = length
        while left:
            piece = reader.read1(min(left, PIECE))
            if not piece:
                raise _PeerClosed(f"body ended {left} bytes short")
            left -= len(piece)
            yield piece
    elif kind == "chunked":
        while True:
            size_line = reader.readline(MAX_LINE)
            if not size_line.endswith(b"\n"):
                raise _PeerClosed("connection closed inside a chunk size")
            yield size_line
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            yield from body_pieces(reader, ("length", size + 2))  # data and its CRLF
        while True:  # trailer fields, then the empty line
            line = reader.readline(MAX_LINE)
            if not line.endswith(b"\n"):
                raise _PeerClosed("connection closed inside the trailers")
            yield line
            if line in (b"\r\n", b"\n"):
                break
    elif kind == "close":
        while piece := reader.read1(PIECE):
            yield piece


def error_answer(kind: str, *, close: bool) -> bytes:
    status, reason, code, message = _ERRORS[kind]
    request_id = uuid.uuid4().hex[:16].upper()
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
            ).encode()
    fields = [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
              ("x-amz-request-id", request_id)]
    if close:
        fields.append(("Connection", "close"))
    return Head(f"HTTP/1.1 {status} {reason}", tuple(fields)).to_bytes() + body


def _reset(sock: socket.socket, *files: BinaryIO) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), not an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock, *files)


def _close(sock: socket.socket, *files: BinaryIO) -> None:
    # A makefile() reader keeps the descriptor open until it is closed too.
    for fh in files:
        with contextlib.suppress(OSError):
            fh.close()
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(frozen=True)
class _Draw:
    kind: str | None
    detail: float  # where a drop or reset lands, in [0, 1)


class FaultProxy:
    """The proxy: ``with FaultProxy(upstream, seed=1, faults=ProxyFaults(...)) as p: p.url``.

    ``faults`` and ``enabled`` may be changed while it runs; ``counts`` holds the faults
    injected so far by kind, ``applied`` those that hit after the upstream answered,
    ``requests`` every request received.
    """

    def __init__(self, upstream: str, *, seed: int = 0, faults: ProxyFaults = NO_FAULTS,
                 host: str = "127.0.0.1", port: int = 0,
                 on_fault: Callable[[str, str], None] | None = None) -> None:
        parsed = urlparse(upstream)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parsed.hostname, parsed.port)
        self.faults = faults
        self.enabled = True
        self.counts: Counter[str] = Counter()
        self.applied = 0
        self.requests = 0
        self._on_fault = on_fault
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._clients: set[socket.socket] = set()
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever that never ran
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:  # idle keep-alive connections would block their threads
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def reseed(self, seed: int) -> None:
        """Restart the fault draws from ``seed`` (the counters keep counting)."""
        with self._lock:
            self._rng = random.Random(seed)

    def snapshot(self) -> dict[str, int]:
        """The counters, for messages: every kind, ``applied`` and ``requests``."""
        with self._lock:
            return {**{k: self.counts[k] for k in KINDS}, "applied": self.applied,
                    "requests": self.requests}

    # -- per request ------------------------------------------------------------------

    def _draw(self) -> _Draw:
        with self._lock:
            self.requests += 1
            faults = self.faults if self.enabled else NO_FAULTS
            u, detail = self._rng.random(), self._rng.random()
        for kind in KINDS:
            rate = faults.rate(kind)
            if u < rate:
                return _Draw(kind, detail)
            u -= rate
        return _Draw(None, detail)

    def _count(self, kind: str, head: Head, *, applied: bool = False) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.applied += applied
        if self._on_fault is not None:
            self._on_fault(kind, head.start)

    def serve(self, client: socket.socket) -> None:
        """Relay requests on one client connection until either side closes it."""
        with self._lock:
            self._clients.add(client)
        client.settimeout(IDLE_TIMEOUT)
        # Heads and bodies go out in separate writes: without NODELAY, Nagle and delayed
        # ACKs would add tens of milliseconds to every request.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = client.makefile("rb")
        try:
            while self._relay_one(client, reader):
                pass
        except (OSError, _PeerClosed, ValueError):
            pass  # the client went away, or the upstream did: the client sees it as such
        finally:
            with self._lock:
                self._clients.discard(client)
            _close(client, reader)

    def _relay_one(self, client: socket.socket, reader: BinaryIO) -> bool:
        """Relay one request and its answer; True if the client connection stays open."""
        head = read_head(reader)
        if head is None:
            return False
        method, _target, version = head.start.split(" ", 2)
        draw = self._draw()
        framing = request_framing(head)
        expect = (head.get("expect") or "").lower() == "100-continue" and framing[0] != "none"
        close = version == "HTTP/1.0" or "close" in (head.get("connection") or "").lower()
        after = draw.detail >= 0.5  # a drop after the upstream answered, else before
        if draw.kind == "drop" and not after:
            self._count("drop", head)
            _close(client, reader)
            return False
        if draw.kind in _ERRORS:
            self._count(draw.kind, head)
            if expect:  # the client waits for 100 before its body: answer, then close
                client.sendall(error_answer(draw.kind, close=True))
                return False
            for _ in body_pieces(reader, framing):
                pass
            client.sendall(error_answer(draw.kind, close=close))
            return not close
        if draw.kind == "slow":
            self._count("slow", head)
            time.sleep(self.faults.slow_seconds)
        upstream = socket.create_connection(self.upstream, timeout=UPSTREAM_TIMEOUT)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up_reader = upstream.makefile("rb")
        try:
            upstream.sendall(head.hop().to_bytes())
            answer = self._send_body(client, reader, upstream, up_reader, framing, expect)
            early = answer is not None  # a final answer before the body: body never read
            while answer is None or 100 <= answer.status < 200:
                if answer is not None:
                    client.sendall(answer.to_bytes())
                answer = read_head(up_reader)
                if answer is None:
                    raise _PeerClosed("upstream closed without answering")
            out_framing = response_framing(method, answer)
            close = close or early or out_framing[0] == "close"
            out = answer.hop((("Connection", "close"),) if close else ()).to_bytes()
            if draw.kind == "drop":
                self._count("drop", head, applied=True)
                _close(client, reader)
                return False
            if draw.kind == "reset":
                self._count("reset", head, applied=True)
                self._send_part(client, out, body_pieces(up_reader, out_framing),
                                out_framing, draw.detail)
                _reset(client, reader)
                return False
            client.sendall(out)
            for piece in body_pieces(up_reader, out_framing):
                client.sendall(piece)
            return not close
        finally:
            _close(upstream, up_reader)

    @staticmethod
    def _send_body(client: socket.socket, reader: BinaryIO, upstream: socket.socket,
                   up_reader: BinaryIO, framing: Framing, expect: bool) -> Head | None:
        """Relay the request body; with ``Expect: 100-continue`` first relay the upstream's
        interim answers. Returns a final answer the upstream gave instead of a 100."""
        if expect:
            while True:
                answer = read_head(up_reader)
                if answer is None:
                    raise _PeerClosed("upstream closed without answering")
                if not 100 <= answer.status < 200:
                    return answer
                client.sendall(answer.to_bytes())
                if answer.status == 100:
                    break
        for piece in body_pieces(reader, framing):
            upstream.sendall(piece)
        return None

    @staticmethod
    def _send_part(client: socket.socket, head: bytes, body: Iterator[bytes],
                   framing: Framing, detail: float) -> None:
        """Send the head and a strict prefix of the body (of the head if there is none)."""
        kind, length = framing
        if kind == "none" or (kind == "length" and length == 0):
            client.sendall(head[: max(1, int(len(head) * detail))])
            return
        client.sendall(head)
        if kind != "length":  # length unknown: part of what arrived first
            first = next(body, b"")
            client.sendall(first[: int(len(first) * detail)])
            return
        budget = int(length * detail)
        for piece in body:
            if budget <= 0:
                break
            client.sendall(piece[:budget])
            budget -= len(piece)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.proxy.serve(self.request)
