"""The last check before a byte leaves for the public store: no secret, no private href.

The document builders already drop what is private; this guard does not trust them. It
scans each serialised document for every registered secret (passwords, client secrets,
tokens, S3 keys: :mod:`rspy_batch.redact`) and for the private locations of this run
(station service roots and token endpoints, local paths and buckets of the working
catalog and staging stores, ``file://``). A document that contains any is not published;
the run names the item and what kind of thing it contained, never the thing itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from rspy_batch import redact


@dataclass(frozen=True)
class Needle:
    text: str
    kind: str  # what to call it in a message, e.g. "station URL"


def private_needles(*, station_urls: Iterable[str] = (), private_locations: Iterable[str] = (),
                    public_locations: Iterable[str] = ()) -> list[Needle]:
    """The private strings of a run.

    ``private_locations`` are URLs or paths of the working catalog and staging stores; a
    location whose bucket the destination or the asset rules expose (``public_locations``)
    is not private.
    """
    # Published hrefs are http(s) or relative: an s3:// URL there is an internal location.
    needles = [Needle("file://", "local file URL"), Needle("s3://", "S3 URL")]
    for url in station_urls:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            needles.append(Needle(f"{parts.scheme}://{parts.netloc}", "station URL"))
    exposed = {_bucket(loc) for loc in public_locations} - {None}
    for loc in private_locations:
        bucket = _bucket(loc)
        if bucket is not None:
            if bucket not in exposed:
                needles.append(Needle(f"/{bucket}/", "private bucket"))
                needles.append(Needle(f"{bucket}.s3", "private bucket"))
        elif "://" not in loc and loc.startswith("/") and len(loc) > 1:
            needles.append(Needle(loc.rstrip("/"), "local path"))
    return needles


def find_leaks(data: bytes | str, needles: Iterable[Needle]) -> list[str]:
    """Kinds of private content in ``data`` (empty when clean); never the content itself."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    found = {n.kind for n in needles if n.text and n.text in text}
    if redact.redact(text) != text:
        found.add("registered secret")
    return sorted(found)


def _bucket(location: str) -> str | None:
    parts = urlsplit(location)
    return parts.netloc if parts.scheme == "s3" and parts.netloc else None
