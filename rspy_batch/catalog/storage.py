"""Where catalog files live: a local directory or an S3 prefix, behind one small interface.

Every catalog update in rspy-batch is a read-modify-write of one JSON object. Two writers
(two workers, two machines, two cron runs) may update the same object at once, so each
write can be *conditional*: ``expect=None`` means "only if it does not exist yet" and
``expect=<version>`` means "only if nobody changed it since I read that version". A lost
race raises :class:`~rspy_batch.errors.ConflictError` and the caller re-reads and retries.

- S3: ``If-None-Match: *`` / ``If-Match: <etag>`` on PutObject (boto3, because s3fs has no
  If-Match), listing through s3fs.
- Local disk: create-if-absent is an atomic ``link()`` of a finished temporary file;
  compare-and-swap holds an ``flock`` on a per-object lock file while it checks the
  version and ``rename()``s the new content into place. Readers never see a half-written
  file in either case.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import posixpath
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rspy_batch.errors import ConflictError
from rspy_batch.s3 import S3Prefix, check_bucket, split_location


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Final = _Any()
"""``expect=ANY``: write unconditionally."""


@dataclass(frozen=True)
class Blob:
    data: bytes
    version: str


class Store(ABC):
    """A flat key space of ``/``-separated keys under one root URL."""

    url: str
    write_concurrency: int = 1
    """Threads worth using for independent writes: many where each waits on the network."""

    @abstractmethod
    def read(self, key: str) -> Blob | None:
        """The object and its version, or None when absent."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, expect: str | None | _Any = ANY,
            content_type: str = "application/json") -> str:
        """Write ``data``; return the new version. See the module doc for ``expect``."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (recursive), in no particular order."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def check(self) -> None:
        """Raise :class:`~rspy_batch.errors.ConfigError` if the store cannot be used at all
        (for a command to fail at once with the reason, not inside its tasks)."""
        return None  # a local directory: its first write creates it

    def href(self, key: str) -> str:
        """Absolute URL of ``key`` (for messages and absolute links)."""
        return self.url.rstrip("/") + "/" + key


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class LocalStore(Store):
    """A directory on local disk (the embedded default)."""

    LOCK_DIR = ".rspy-locks"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self.url = self.root.as_uri()
        self._tmp_counter = itertools.count()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _path(self, key: str) -> str:
        return os.path.join(self._root, _check_key(key))

    def read(self, key: str) -> Blob | None:
        try:
            with open(self._path(key), "rb") as fh:
                data = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Blob(data, _digest(data))

    def put(self, key: str, data: bytes, *, expect: str | None | _Any = ANY,
            content_type: str = "application/json") -> str:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._write_temp(path, data)
        try:
            if expect is None:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise ConflictError(f"{key} already exists") from None
            elif isinstance(expect, _Any):
                os.replace(tmp, path)
            else:
                with self._locked(key):
                    current = self.read(key)
                    if current is None or current.version != expect:
                        raise ConflictError(f"{key} changed since it was read")
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return _digest(data)

    def _write_temp(self, path: str, data: bytes) -> str:
        # Unique per process, thread and call; O_EXCL guards against any leftover.
        tmp = (f"{os.path.dirname(path)}/.tmp-{os.getpid()}-{threading.get_ident()}-"
               f"{next(self._tmp_counter)}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        # flock excludes other processes; the thread lock excludes threads of this
        # process, which share one open-file table and so would not exclude each other.
        with self._guard:
            tlock = self._thread_locks.setdefault(key, threading.Lock())
        lock_dir = self.root / self.LOCK_DIR
        lock_dir.mkdir(exist_ok=True)
        lock_path = lock_dir / (hashlib.sha1(key.encode()).hexdigest() + ".lock")
        with tlock, open(lock_path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != self.LOCK_DIR]
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                yield name if rel == "." else posixpath.join(rel.replace(os.sep, "/"), name)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))


_READ_ATTEMPTS = 5


class S3Store(S3Prefix, Store):
    """An S3 prefix (see :mod:`rspy_batch.s3` for endpoint and credentials)."""

    write_concurrency = 16

    def _key(self, key: str) -> str:
        return self.full_key(_check_key(key))

    def check(self) -> None:
        check_bucket(self)

    def read(self, key: str) -> Blob | None:
        from botocore.exceptions import (
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )
        from urllib3.exceptions import ProtocolError

        # botocore retries a request, not the reading of a streamed body (nor of a
        # GetObject error's body, e.g. NoSuchKey's): a connection that breaks there is
        # retried here, by asking again.
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                return Blob(obj["Body"].read(), obj["ETag"])
            except self.client.exceptions.NoSuchKey:
                return None
            except (ResponseStreamingError, IncompleteReadError, ReadTimeoutError,
                    ProtocolError):
                if attempt == _READ_ATTEMPTS:
                    raise
                time.sleep(0.1 * 2 ** attempt)
        raise AssertionError("unreachable")

    def put(self, key: str, data: bytes, *, expect: str | None | _Any = ANY,
            content_type: str = "application/json") -> str:
        kwargs: dict[str, Any] = {}
        if expect is None:
            kwargs["IfNoneMatch"] = "*"
        elif not isinstance(expect, _Any):
            kwargs["IfMatch"] = expect
        try:
            out = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                         ContentType=content_type, **kwargs)
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # 409 ConditionalRequestConflict: a concurrent conditional write is in flight.
            if status in (412, 409) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                # botocore retries a write whose answer was lost (the connection broke
                # after S3 applied it), and the retry then fails on the write itself: after
                # a retry, stored bytes equal to ours mean the write happened.
                retried = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
                current = self.read(key) if retried else None
                if current is not None and current.data == data:
                    return current.version
                raise ConflictError(f"{key}: conditional write lost a race ({code})") from None
            raise
        return out["ETag"]

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        full = self._key(prefix) if prefix else self.prefix
        if full:
            full = full.rstrip("/") + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield self.relative_key(obj["Key"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def open_store(url: str | os.PathLike[str], *, check: bool = False) -> Store:
    """The store for a catalog URL: ``s3://bucket/prefix`` or a local path / ``file://``;
    ``check`` fails at once, with the reason, on a store that cannot be used at all."""
    kind, where = split_location(url)
    store = S3Store(where) if kind == "s3" else LocalStore(where)
    if check:
        store.check()
    return store


def _digest(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
