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


def s3_client(*, signature_version: str | None = None, attempts: int = 8) -> Any:
    """A boto3 S3 client from the standard AWS chain (``AWS_ENDPOINT_URL`` honoured);
    ``signature_version="s3v4"`` for presigned URLs (botocore may pick SigV2 for those);
    ``attempts`` per request (botocore's "standard" retries, spaced up to 20 s apart).

    Clients are shared within a process: building one loads botocore's service model
    (about 0.3 s), and a campaign's completeness checks open stores hundreds of times.
    The cache key holds the process id, since a client's connections must not cross a
    fork (Luigi's worker processes), and the settings the AWS chain reads from the
    environment."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        register_secret(os.environ.get(name))
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    key = (os.getpid(), signature_version, attempts, endpoint,
           *(os.environ.get(n) for n in _CHAIN))
    with _CLIENT_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = _new_client(endpoint, signature_version, attempts)
    return client


#: Environment settings of the AWS chain that change which client one gets.
_CHAIN = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
          "AWS_DEFAULT_REGION", "AWS_REGION")
_CLIENTS: dict[tuple, Any] = {}


def _new_client(endpoint: str | None, signature_version: str | None, attempts: int) -> Any:
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
        config=Config(retries={"max_attempts": attempts, "mode": "standard"},
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


def check_bucket(where: S3Prefix) -> None:
    """Raise :class:`ConfigError` naming the problem when ``where``'s bucket cannot be used
    at all: endpoint unreachable, bucket missing, credentials refused.

    A refused connection is reported after two quick attempts, not after the eight spaced
    ones of the working client (about a minute of silence). Any other failure is asked
    again with the working client, so that a transient fault (a 503, a dropped
    connection) does not end a run that retries would have carried through.

    The probe lists one key under the prefix rather than asking HeadBucket: a policy
    that grants ListBucket only under a prefix (usual for a shared bucket) denies the
    latter, and listing the prefix is what the catalog needs anyway."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    probe = {"Bucket": where.bucket, "MaxKeys": 1, "Prefix": where.full_key("")}
    try:
        s3_client(attempts=2).list_objects_v2(**probe)
        return
    except EndpointConnectionError as exc:
        raise ConfigError(explain(exc, where.bucket) or str(exc)) from None
    except (BotoCoreError, ClientError):
        pass
    try:
        where.client.list_objects_v2(**probe)
    except (BotoCoreError, ClientError) as exc:
        message = explain(exc, where.bucket)
        if message is None:
            raise
        raise ConfigError(message) from None


def explain(exc: BaseException, bucket: str | None = None) -> str | None:
    """One sentence for an S3 failure that no retry mends (its cause is configuration),
    or None for any other exception."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, EndpointConnectionError):
        parts = urlparse(str(exc.kwargs.get("endpoint_url", "")))
        endpoint = mask_userinfo(f"{parts.scheme}://{parts.netloc}")
        return (f"cannot connect to the S3 endpoint {endpoint}: check AWS_ENDPOINT_URL "
                "and that the server is up")
    if isinstance(exc, NoCredentialsError):
        return ("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                "AWS_PROFILE, in the environment or a file outside the repository")
    if not isinstance(exc, ClientError):
        return None
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    name = bucket or error.get("BucketName")
    which = f"bucket {name!r}" if name else "the bucket"
    if code == "NoSuchBucket":
        return f"{which} does not exist: create it, or check the s3:// URL"
    if code in _REFUSED:
        return f"S3 refused access to {which} ({code}): check the credentials and policy"
    return None


#: Error codes meaning "these credentials may not do this", whatever the request. Not a
#: bare 403: a HeadObject of a key one may not list is answered 403 where it is missing.
_REFUSED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                      "InvalidToken", "ExpiredToken"})
