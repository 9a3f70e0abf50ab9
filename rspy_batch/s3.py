"""S3 access shared by the catalog store and the staging sink.

Endpoint, region and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``~/.aws/...``), so any S3-compatible store works.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlparse

from rspy_batch.errors import ConfigError
from rspy_batch.redact import mask_userinfo, register_secret

_CLIENT_LOCK = threading.Lock()


def split_location(url: str | os.PathLike[str]) -> tuple[str, str]:
    """``("s3", url)`` for ``s3://…``, ``("local", path)`` for a path or ``file://…``."""
    text = os.fspath(url)
    scheme = urlparse(text).scheme
    if scheme == "s3":
        return "s3", text
    if scheme == "file":
        return "local", urlparse(text).path
    if scheme == "" or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return "local", text
    raise ConfigError(f"unsupported URL scheme {scheme!r} in {mask_userinfo(text)!r}: "
                      "use a path or s3://")


def s3_client(*, signature_version: str | None = None) -> Any:
    """A boto3 S3 client from the standard AWS chain (``AWS_ENDPOINT_URL`` honoured);
    ``signature_version="s3v4"`` for presigned URLs (botocore may pick SigV2 for those).

    Clients are shared within a process: building one loads botocore's service model
    (about 0.3 s), and a campaign's completeness checks open stores hundreds of times.
    The cache key holds the process id, since a client's connections must not cross a
    fork (Luigi's worker processes), and the settings the AWS chain reads from the
    environment."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        register_secret(os.environ.get(name))
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    key = (os.getpid(), signature_version, endpoint,
           *(os.environ.get(n) for n in _CHAIN))
    with _CLIENT_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _new_client(endpoint, signature_version)
    return client


#: Environment settings of the AWS chain that change which client one gets.
_CHAIN = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
          "AWS_DEFAULT_REGION", "AWS_REGION")
_CLIENTS: dict[tuple, Any] = {}


def _new_client(endpoint: str | None, signature_version: str | None) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    # Keys from a shared credentials or config file (or any other provider) are as secret
    # as those from the environment; the client resolves them anyway when it is made.
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        register_secret(frozen.secret_key)
        register_secret(frozen.token)
    return session.client(
        "s3", endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 8, "mode": "standard"},
                      max_pool_connections=32, signature_version=signature_version),
    )


class S3Prefix:
    """A bucket and a key prefix from an ``s3://bucket/prefix`` URL, with one client."""

    def __init__(self, url: str, *, client: Any = None) -> None:
        parsed = urlparse(url)
        if "@" in parsed.netloc:
            # It would be taken for a bucket name and shown in every message and href.
            raise ConfigError("an s3:// URL must not hold credentials (key:secret@); "
                              "credentials come from the AWS chain")
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"not an s3:// URL: {url!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def relative_key(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full
