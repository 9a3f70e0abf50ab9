"""Pieces of the security tests (``tests/test_security.py``): canary secrets and the forms
they could leak in, a scanner over texts, files and S3 objects, a fake S3 endpoint that
answers every request with AWS's own credential errors, a leaky processor plug-in, and a
stand-in STAC Browser build."""

from __future__ import annotations

import base64
import json
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

#: Characters that URL, form and JSON encodings change: a secret holding them shows whether
#: a check looks for the encoded forms too.
SPECIALS = "\"\\+/=%&"
#: What real AWS secret keys and session tokens contain besides letters and digits.
AWS_SPECIALS = "+/="


@dataclass(frozen=True)
class Canary:
    """A secret planted on purpose. ``core`` is a unique, random run of letters and digits
    inside it that survives URL, form and JSON escaping, so finding the core finds every
    such form, and a part of the secret cut off at the core's end or start."""

    name: str
    value: str
    core: str
    pairs: tuple[str, ...] = ()  # "user:" / "client:" prefixes it is sent with in Basic auth

    def needles(self) -> dict[str, bytes]:
        forms = {"core": self.core.encode()}
        for i, text in enumerate((self.value, *(p + self.value for p in self.pairs))):
            raw = text.encode()
            forms[f"base64#{i}"] = base64.b64encode(raw)
            forms[f"base64url#{i}"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
        forms["url"] = quote(self.value, safe="").encode()
        forms["form"] = quote_plus(self.value).encode()
        forms["json"] = json.dumps(self.value)[1:-1].encode()
        return forms


def make_canary(name: str, *, prefix: str = "", specials: str = SPECIALS, upper: bool = False,
                pairs: tuple[str, ...] = ()) -> Canary:
    core = secrets.token_hex(12)
    core = core.upper() if upper else core
    return Canary(name, prefix + core + specials, core, pairs)


def issued_canary(name: str, value: str) -> Canary:
    """A secret someone else chose (a station's token): its whole value is its core."""
    return Canary(name, value, value)


@dataclass(frozen=True)
class Leak:
    canary: str
    form: str
    where: str


def find_canaries(blobs: Iterable[tuple[str, bytes]], canaries: Iterable[Canary]
                  ) -> list[Leak]:
    """Every (canary, form, place) found. Besides the encoded forms, the first and last
    part of each core are looked for: a secret cut short (a truncated message) still
    leaks."""
    table: list[tuple[str, str, bytes]] = []
    for c in canaries:
        for form, needle in c.needles().items():
            table.append((c.name, form, needle))
        part = 20 if c.core == c.value else 12  # issued tokens are letters: longer parts
        table.append((c.name, "head", c.core[:part].encode()))
        table.append((c.name, "tail", c.core[-part:].encode()))
    leaks = []
    for where, data in blobs:
        for name, form, needle in table:
            if needle and needle in data:
                leaks.append(Leak(name, form, where))
    return leaks


def tree_blobs(root: Path) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file below ``root`` and every file and folder name."""
    for path in sorted(root.rglob("*")):
        yield f"name:{path}", str(path.relative_to(root)).encode("utf-8", "surrogateescape")
        if path.is_file() and not path.is_symlink():
            yield str(path), path.read_bytes()


def bucket_blobs(client: Any, bucket: str) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of every object of ``bucket``: key, body and user metadata."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            yield f"s3-key:{bucket}/{key}", key.encode()
            got = client.get_object(Bucket=bucket, Key=key)
            yield f"s3:{bucket}/{key}", got["Body"].read()
            yield f"s3-meta:{bucket}/{key}", json.dumps(got.get("Metadata", {})).encode()


# -- a fake S3 endpoint that refuses credentials, as AWS words it -----------------------

class _S3Refusal(BaseHTTPRequestHandler):
    """Every request: 403 ``InvalidToken`` with the body AWS sends (the token repeated in
    ``Token-0``, the key id in ``AWSAccessKeyId``); with ``echo`` its message quotes the
    token too, as a careless S3-compatible store might."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        token = self.headers.get("X-Amz-Security-Token", "")
        auth = self.headers.get("Authorization", "")
        key_id = auth.split("Credential=", 1)[-1].split("/", 1)[0] if auth else ""
        message = "The provided token is malformed or otherwise invalid."
        if self.server.echo:  # type: ignore[attr-defined]
            message += f" Token: {token}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidToken</Code>'
            f"<Message>{_xml(message)}</Message><Token-0>{_xml(token)}</Token-0>"
            f"<AWSAccessKeyId>{_xml(key_id)}</AWSAccessKeyId>"
            "<RequestId>0000000000000000</RequestId></Error>").encode()
        self.server.seen.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _refuse

    def log_message(self, *args: Any) -> None:
        pass


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class RefusingS3:
    """A loopback HTTP server answering every S3 request with a credential error."""

    def __init__(self, *, echo: bool) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _S3Refusal)
        self.httpd.daemon_threads = True
        self.httpd.seen = []  # type: ignore[attr-defined]
        self.httpd.echo = echo  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[dict[str, str]]:
        return self.httpd.seen  # type: ignore[attr-defined]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a processor that leaks every secret of its environment into its error --------------

LEAKY_MODULE = '''
"""A processor that fails on some items with every secret of its environment in the
exception text, as a dict (as a careless third-party processor would)."""

import os

from toyproc import ToyBytes


class LeakyBytes(ToyBytes):
    name = "leaky-bytes"

    def run(self, inputs, **params):
        item = inputs[0].item
        if item["id"].endswith(tuple(os.environ.get("LEAKY_FAIL_SUFFIXES", "").split(","))):
            shown = {k: v for k, v in sorted(os.environ.items())
                     if k.startswith("RSPY_STATION_")
                     or k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
            raise RuntimeError(f"cannot read {item['id']} with {shown}")
        return super().run(inputs, **params)
'''


def write_leaky_plugin(root: Path) -> Path:
    """A plug-in folder registering ``leaky-bytes`` (put it and ``tests/plugins`` on
    PYTHONPATH)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "leakyproc.py").write_text(LEAKY_MODULE)
    info = root / "leakyproc-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: leakyproc\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[rspy_batch.processors]\nleaky-bytes = leakyproc:LeakyBytes\n")
    return root


# -- a stand-in STAC Browser build ------------------------------------------------------

def fake_browser_cache(cache: Path) -> Path:
    """A browser cache holding a tiny "build", so that publish installs it (and writes its
    ``config.js``) without npm."""
    from rspy_batch.browser.build import build_dir

    dist = build_dir(cache) / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "index.html").write_text('<html><script src="./config.js"></script></html>\n')
    (dist / "app.0123abcd.js").write_text("console.log('stac browser');\n")
    return cache


# -- running the command line ------------------------------------------------------------

@dataclass
class Run:
    """One command line run: what it was for, its arguments and everything it printed."""

    name: str
    args: list[str]
    env: dict[str, str]
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def command(self) -> list[str]:
        return [sys.executable, "-m", "rspy_batch", *self.args]


def clean_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``base`` without any AWS or rspy setting (each run says exactly what it uses)."""
    env = {k: v for k, v in base.items()
           if not k.startswith(("AWS_", "RSPY_", "LUIGI_", "TOYPROC_", "LEAKY_"))}
    env.update(extra)
    return env


def run_all(runs: list[Run], *, cwd: Path, timeout: float = 300) -> None:
    """Run the command lines side by side, recording each one's exit code, output and
    duration."""
    import subprocess
    import time
    from concurrent.futures import ThreadPoolExecutor

    def one(run: Run) -> None:
        started = time.monotonic()
        proc = subprocess.Popen(run.command(), cwd=cwd, env=run.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            run.stdout, run.stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            run.stdout, run.stderr = proc.communicate()
        run.returncode = proc.returncode
        run.seconds = time.monotonic() - started

    with ThreadPoolExecutor(max_workers=max(1, len(runs))) as pool:
        list(pool.map(one, runs))


def dotenv(values: Mapping[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- loopback servers that redirect, for the redirect tests ----------------------------------

@dataclass
class Hit:
    path: str
    headers: dict[str, str]


class _Hop(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        server: HopServer = self.server.hop  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        server.hits.append(Hit(path, dict(self.headers.items())))
        headers: dict[str, str] = {}
        status, body = 200, b'{"value": []}'
        if path in server.routes:
            status, location = server.routes[path]
            headers["Location"] = location
            body = b""
        elif server.respond is not None:
            status, body = server.respond(path)
        elif path == "/oauth2/token":
            body = json.dumps({"access_token": server.token, "token_type": "Bearer",
                               "expires_in": 600}).encode()
        if server.cookie:
            headers["Set-Cookie"] = f"sid={server.cookie}; Path=/"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, *args: Any) -> None:
        pass


class HopServer:
    """A loopback server: the station's token endpoint, scripted redirects (``routes``:
    path → (status, Location)), 200 everywhere else; it records every request."""

    def __init__(self, host: str, *, token: str = "", cookie: str = "") -> None:
        self.httpd = ThreadingHTTPServer((host, 0), _Hop)
        self.httpd.daemon_threads = True
        self.httpd.hop = self  # type: ignore[attr-defined]
        self.host, self.port = host, self.httpd.server_address[1]
        self.token, self.cookie = token, cookie
        self.routes: dict[str, tuple[int, str]] = {}
        self.respond: Callable[[str], tuple[int, bytes]] | None = None
        self.hits: list[Hit] = []
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        self.routes.clear()
        self.hits.clear()
        self.respond = None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
