"""Transport-neutral request/response types and JSON helpers shared by the routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Request:
    method: str
    path: str  # decoded path, without the query string
    query: str  # raw query string (fault keys are per path+query)
    params: dict[str, str]
    headers: Mapping[str, str]  # case-insensitive mapping (email.message.Message)
    body: bytes = b""
    listener: str = "main"  # main | other (the redirect target host)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    send_bytes: int | None = None  # send only this many body bytes (truncate fault)
    delay: float = 0.0  # seconds to wait before answering (slow fault)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(payload), dict(headers or {}))


def odata_error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}})


def message(status: int, text: str) -> Response:
    """The ``{"message": ...}`` shape the mocks use for auth and order errors."""
    return json_response(status, {"message": text})
