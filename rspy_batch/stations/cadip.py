"""CADIP: downlink sessions and their raw DSDB chunk files (ground stations).

Interface: ``GET Sessions?$filter=..&$expand=Files`` lists sessions (fields such
as ``SessionId``, ``Satellite``, ``DownlinkOrbit``, ``PublicationDate``), each
with its ``Files`` when expanded; ``GET Files?$filter=SessionId eq '..'`` lists
a session's files (``Name``, ``Channel``, ``BlockNumber``, ``FinalBlock``,
``Size``); ``GET Sessions(<Id>)?$expand=qualityInfo`` gives per-channel quality
figures; ``GET Files(<Id>)/$value`` downloads one file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .client import ODataClient, entities_from_payload
from .odata import eq

SESSIONS = "Sessions"
FILES = "Files"


def search_sessions(
    client: ODataClient,
    *,
    fields: Mapping[str, Any] | None = None,
    start: Any = None,
    stop: Any = None,
    time_field: str = "PublicationDate",
) -> Iterator[dict]:
    """Sessions matching ``fields`` with ``time_field`` in ``[start, stop)``, files included."""
    for session in client.search(SESSIONS, expand="Files", fields=fields, start=start,
                                 stop=stop, time_field=time_field):
        # Some stations ignore $expand (or have it switched off); an empty list is
        # a real answer, a missing or null one is not.
        if session.get("Files") is None and session.get("SessionId"):
            session = {**session, "Files": session_files(client, session["SessionId"])}
        yield session


def session_files(client: ODataClient, session_id: str) -> list[dict]:
    """All files of one session (by its ``SessionId``), oldest first."""
    return list(
        client.iter_entities(
            FILES, filter=eq("SessionId", session_id), orderby="PublicationDate asc"
        )
    )


def quality_info(client: ODataClient, session_id: Any) -> list[dict]:
    """Quality-info entries of one session, addressed by the session entity ``Id``."""
    # "expand" without "$" as well: the reference CADIP mock only reads that spelling,
    # and OData servers ignore unknown custom options.
    payload = client.get_json(
        client.entity_path(SESSIONS, session_id),
        params={"$expand": "qualityInfo", "expand": "qualityInfo"},
    )
    if isinstance(payload, dict):
        for key in ("QualityInfo", "qualityInfo"):
            if isinstance(payload.get(key), list):
                return payload[key]
    return entities_from_payload(payload)


def file_download_url(client: ODataClient, file_id: Any) -> str:
    return client.download_url(FILES, file_id)
