"""One file: station → staging store, streamed, verified, retried.

The bytes stream through in chunks (never a whole file in memory) while their size and
MD5 are counted; the upload is committed only when both match what the catalog expects
(the station's ``file:size`` and, where the station gives one, its MD5). A short body,
a dropped connection, a 5xx or a mismatch aborts the upload and tries again with
backoff; after the last try the file is reported as failed with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import requests
import urllib3

from rspy_batch.errors import RspyError, StationError
from rspy_batch.staging.sinks import MIB, ObjectInfo, Sink, Upload
from rspy_batch.stations.client import ODataClient, StationHTTPError

log = logging.getLogger(__name__)

CHUNK = MIB


class TransferFailed(RspyError):
    """A file could not be staged; the message is the reason a user sees."""


class Mismatch(RspyError):
    pass


@dataclass(frozen=True)
class Transferred:
    size: int
    md5: str
    skipped: bool  # a verified copy was already there; nothing was downloaded


UNKNOWN = ObjectInfo(-1, None)


def copy_file(client: ODataClient, url: str, sink: Sink, key: str, *, expected_size: int,
              expected_md5: str | None, retries: int = 3, backoff: float = 0.5,
              existing: ObjectInfo | None = UNKNOWN) -> Transferred:
    """Stage one file; return what was verified. Raises :class:`TransferFailed`.

    ``existing`` is what a listing found under ``key`` (None: nothing); by default the
    sink is asked.
    """
    if existing is UNKNOWN or (existing and existing.size == expected_size
                               and existing.md5 is None):
        existing = sink.stat(key)
    if existing and existing.size == expected_size and existing.md5 and (
            expected_md5 is None or existing.md5 == expected_md5):
        # Only verified uploads are ever committed under a final key, so a same-size copy
        # with a matching (or, without a station checksum, recorded) MD5 is that copy.
        return Transferred(existing.size, existing.md5, skipped=True)
    last = "no attempt"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        upload = sink.open(key, expected_md5)
        try:
            size, md5 = _stream(client, url, upload)
            if size != expected_size:
                raise Mismatch(f"size mismatch: station announced {expected_size} bytes, "
                               f"received {size}")
            if expected_md5 and md5 != expected_md5:
                raise Mismatch(f"checksum mismatch: station MD5 {expected_md5}, received "
                               f"bytes have MD5 {md5}")
            upload.commit(md5)
            return Transferred(size, md5, skipped=False)
        except StationHTTPError as exc:
            upload.abort()
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                raise TransferFailed(str(exc)) from None  # retrying cannot help
            last = str(exc)
        except (Mismatch, StationError, requests.RequestException,
                urllib3.exceptions.HTTPError, OSError) as exc:
            upload.abort()
            last = str(exc) or type(exc).__name__
        except BaseException:
            upload.abort()
            raise
        log.warning("staging %s: attempt %d/%d failed: %s", key, attempt + 1, retries + 1, last)
    raise TransferFailed(f"{last} (after {retries + 1} attempts)")


def _stream(client: ODataClient, url: str, upload: Upload) -> tuple[int, str]:
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with client.open_download(url) as response:
        for chunk in response.iter_content(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            upload.write(chunk)
    return size, digest.hexdigest()
