"""Staging stores: where verified copies of station files land.

An upload is written in pieces and becomes visible under its final key only on
:meth:`Upload.commit`, which the transfer calls after it has checked size and checksum.
A failed or interrupted upload is aborted (or, if the process dies, never completed), so
a partial or wrong file never appears under a final key.

- :class:`S3Sink`: S3 multipart upload (boto3), parts of ``part_size`` bytes, so memory
  per transfer is bounded by one part; a file smaller than a part is one PutObject. The
  verified MD5 is stored as object metadata (``x-amz-meta-rspy-md5``) where it is known
  before the upload starts, so a re-run recognises a finished copy without downloading.
- :class:`LocalSink`: a directory; the file is written under a temporary name in its
  final folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rspy_batch.errors import ConfigError
from rspy_batch.s3 import S3Prefix, split_location

MIB = 1024 * 1024
MD5_META = "rspy-md5"


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    md5: str | None


class Upload(ABC):
    @abstractmethod
    def write(self, chunk: bytes) -> None: ...

    @abstractmethod
    def commit(self, md5: str) -> None:
        """Make the object visible under its final key."""

    @abstractmethod
    def abort(self) -> None:
        """Drop everything written; idempotent."""


class Sink(ABC):
    url: str

    @abstractmethod
    def href(self, key: str) -> str: ...

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def existing(self, prefix: str) -> dict[str, ObjectInfo]:
        """Every object below ``prefix`` (one listing instead of a request per file).
        ``md5`` may be None where only :meth:`stat` can tell it."""

    @abstractmethod
    def open(self, key: str, md5: str | None = None) -> Upload:
        """Start an upload; ``md5`` is the expected checksum when known in advance."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        """Whole object (tests and small files only)."""


class S3Sink(S3Prefix, Sink):
    def __init__(self, url: str, *, client: Any = None, part_size: int = 8 * MIB) -> None:
        super().__init__(url, client=client)
        if part_size < 5 * MIB:
            raise ConfigError("S3 multipart parts must be at least 5 MiB")
        self.part_size = part_size

    def _key(self, key: str) -> str:
        return self.full_key(key)

    def href(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        md5 = head.get("Metadata", {}).get(MD5_META)
        etag = head.get("ETag", "").strip('"')
        if md5 is None and "-" not in etag and len(etag) == 32:
            md5 = etag  # a single-part upload's ETag is its MD5
        return ObjectInfo(head["ContentLength"], md5)

    def existing(self, prefix: str) -> dict[str, ObjectInfo]:
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                etag = obj.get("ETag", "").strip('"')
                md5 = etag if "-" not in etag and len(etag) == 32 else None
                found[self.relative_key(obj["Key"])] = ObjectInfo(obj["Size"], md5)
        return found

    def open(self, key: str, md5: str | None = None) -> Upload:
        return _S3Upload(self, self._key(key), md5)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()


class _S3Upload(Upload):
    def __init__(self, sink: S3Sink, key: str, md5: str | None) -> None:
        self.sink, self.key = sink, key
        self.metadata = {MD5_META: md5} if md5 else {}
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= self.sink.part_size:
            self._upload_part(bytes(self.buffer[: self.sink.part_size]))
            del self.buffer[: self.sink.part_size]

    def _upload_part(self, data: bytes) -> None:
        client = self.sink.client
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(
                Bucket=self.sink.bucket, Key=self.key, Metadata=self.metadata,
                ContentType="application/octet-stream")["UploadId"]
        number = len(self.parts) + 1
        out = client.upload_part(Bucket=self.sink.bucket, Key=self.key, UploadId=self.upload_id,
                                 PartNumber=number, Body=data)
        self.parts.append({"PartNumber": number, "ETag": out["ETag"]})

    def commit(self, md5: str) -> None:
        client = self.sink.client
        if self.upload_id is None:
            client.put_object(Bucket=self.sink.bucket, Key=self.key, Body=bytes(self.buffer),
                              Metadata={MD5_META: md5}, ContentType="application/octet-stream")
            return
        if self.buffer:
            self._upload_part(bytes(self.buffer))
            self.buffer.clear()
        client.complete_multipart_upload(Bucket=self.sink.bucket, Key=self.key,
                                         UploadId=self.upload_id,
                                         MultipartUpload={"Parts": self.parts})
        self.upload_id = None

    def abort(self) -> None:
        self.buffer.clear()
        if self.upload_id is not None:
            with contextlib.suppress(Exception):  # best effort; S3 lifecycle rules clean up
                self.sink.client.abort_multipart_upload(Bucket=self.sink.bucket, Key=self.key,
                                                        UploadId=self.upload_id)
            self.upload_id = None


class LocalSink(Sink):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()
        self._counter = itertools.count()

    def _path(self, key: str) -> Path:
        return self.root / key

    def href(self, key: str) -> str:
        return self._path(key).as_uri()

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(MIB), b""):
                digest.update(block)
        return ObjectInfo(path.stat().st_size, digest.hexdigest())

    def existing(self, prefix: str) -> dict[str, ObjectInfo]:
        base = self._path(prefix)
        if not base.exists():
            return {}
        # MD5 left to stat(): reading every file here would cost a full read per run.
        return {str(p.relative_to(self.root)): ObjectInfo(p.stat().st_size, None)
                for p in (base.rglob("*") if base.is_dir() else [base])
                if p.is_file() and not p.name.endswith(".part")}

    def open(self, key: str, md5: str | None = None) -> Upload:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}-{threading.get_ident()}-" \
                            f"{next(self._counter)}.part"
        return _LocalUpload(path, tmp)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()


class _LocalUpload(Upload):
    def __init__(self, path: Path, tmp: Path) -> None:
        self.path, self.tmp = path, tmp
        self.fh = open(tmp, "wb")  # noqa: SIM115 - closed in commit/abort

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)

    def commit(self, md5: str) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def open_sink(url: str | os.PathLike[str]) -> Sink:
    """The staging store for a URL: ``s3://bucket/prefix`` or a local path / ``file://``."""
    kind, where = split_location(url)
    return S3Sink(where) if kind == "s3" else LocalSink(where)
