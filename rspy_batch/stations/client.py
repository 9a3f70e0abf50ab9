"""HTTP client for one Copernicus OData station: paging, retries, auth, redirects.

Stations are flaky in known ways (see the station-interface notes): they cap
``$top`` silently, wrap results in ``value``/``responses``/nothing, answer 404 for
an empty LTA search, throttle with 429, and redirect downloads to other hosts.
This module absorbs those quirks so the per-kind modules stay thin.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

import requests

from rspy_batch.errors import StationError
from rspy_batch.redact import redact

from .auth import TokenManager, error_detail
from .config import StationConfig
from .odata import encode_query, query_params, search_filter

log = logging.getLogger(__name__)

BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 30.0
_RETRYABLE_EXCEPTIONS = (
    requests.ConnectionError,  # includes ConnectTimeout
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class StationHTTPError(StationError):
    """A station request failed; ``status`` is the last HTTP status seen, if any."""

    def __init__(
        self, message: str, *, station_id: str, method: str, url: str, status: int | None
    ) -> None:
        super().__init__(message)
        self.station_id = station_id
        self.method = method
        self.url = url
        self.status = status


class StationSession(requests.Session):
    """A Session that re-sends ``Authorization`` on redirect only to allowed hosts.

    requests keeps the header for same-origin redirects and drops it otherwise;
    some stations (e.g. Neustrelitz) redirect downloads to a storage host that
    needs the same bearer token, so the operator lists it in ``trusted_hosts``
    (any port of it). The station's own host is allowed on the station's own port
    (or the https upgrade of it) only: another port there is another service.
    """

    def __init__(self, allowed_hosts: frozenset[str], *, station_url: str | None = None
                 ) -> None:
        super().__init__()
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.origin = urlsplit(station_url) if station_url else None

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        old, new = urlsplit(old_url), urlsplit(new_url)
        if old.scheme == "https" and new.scheme != "https":
            return True  # never downgrade a bearer token to clear text
        if (new.hostname or "").lower() in self.allowed_hosts:
            return False
        return self.origin is None or not _same_origin(self.origin, new)

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        # Unlike requests' default, no netrc lookup: a station token must not be
        # swapped for whatever credentials a netrc file holds for the new host.
        headers = prepared_request.headers
        if "Authorization" in headers and self.should_strip_auth(
            response.request.url or "", prepared_request.url or ""
        ):
            del headers["Authorization"]


def station_session(station: StationConfig) -> StationSession:
    return StationSession(frozenset(station.trusted_hosts), station_url=station.url)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(origin: SplitResult, url: SplitResult) -> bool:
    """Same host and port as the station's root, or its http → https upgrade on the
    default ports (as requests allows)."""
    if (url.hostname or "").lower() != (origin.hostname or "").lower():
        return False
    port, origin_port = _port(url), _port(origin)
    if port is None or origin_port is None:
        return False
    if url.scheme == origin.scheme:
        return port == origin_port
    return (origin.scheme, origin_port, url.scheme, port) == ("http", 80, "https", 443)


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # not a port number: no origin to match
        return None


def entities_from_payload(payload: Any) -> list[dict]:
    """Entities from any envelope the stations use.

    Accepted: ``{"value": [...]}``, ``{"responses": [...]}``, a bare list, and a
    single bare entity (an object with ``Id``, as LTA returns for one result).
    """
    if isinstance(payload, dict):
        for key in ("value", "responses"):
            if key in payload:
                items = payload[key]
                if isinstance(items, list):
                    return _only_objects(items, f"'{key}'")
                raise StationError(
                    f"unexpected OData payload: '{key}' is {_json_type(items)}, not a list"
                )
        if "Id" in payload:
            return [payload]
        keys = sorted(str(k) for k in payload)[:10]
        raise StationError(
            f"unexpected OData payload: object without 'value', 'responses' or 'Id' (keys: {keys})"
        )
    if isinstance(payload, list):
        return _only_objects(payload, "the list")
    raise StationError(f"unexpected OData payload: {_json_type(payload)}")


def _only_objects(items: list, where: str) -> list[dict]:
    bad = [i for i, item in enumerate(items) if not isinstance(item, dict)]
    if bad:
        raise StationError(
            f"unexpected OData payload: item {bad[0]} of {where} is "
            f"{_json_type(items[bad[0]])}, not an object"
        )
    return items


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class ODataClient:
    """Requests against one station's service root, with its auth and retry policy.

    One instance can be shared by threads; the token is shared through the
    :class:`TokenManager`.
    """

    def __init__(
        self,
        station: StationConfig,
        session: requests.Session | None = None,
        *,
        token_manager: TokenManager | None = None,
        backoff_base: float | None = None,
        backoff_cap: float = BACKOFF_CAP,
        retry_after_cap: float = RETRY_AFTER_CAP,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.station = station
        self.session = session if session is not None else station_session(station)
        self.backoff_base = station.backoff_base if backoff_base is None else backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self._sleep = sleep
        if token_manager is None and station.auth is not None:
            token_manager = TokenManager(
                station.id,
                station.auth,
                timeout=station.timeout,
                sleep=sleep,
                backoff_base=self.backoff_base,
            )
        self.tokens = token_manager

    # -- URLs -------------------------------------------------------------------

    def url_for(self, path_or_url: str, params: Mapping[str, str] | None = None) -> str:
        """Absolute URL; relative paths (with or without a leading ``/``) sit under the root."""
        if urlsplit(path_or_url).scheme in ("http", "https"):
            url = path_or_url
        else:
            url = self.station.url + path_or_url.lstrip("/")
        if params:
            url += ("&" if "?" in url else "?") + encode_query(params)
        return url

    def entity_path(self, entity_set: str, entity_id: Any) -> str:
        return f"{entity_set}({quote(str(entity_id), safe=_KEY_SAFE)})"

    def download_url(self, entity_set: str, entity_id: Any) -> str:
        """``<root>Files(<Id>)/$value`` or ``<root>Products(<Id>)/$value``."""
        return self.url_for(self.entity_path(entity_set, entity_id) + "/$value")

    # -- JSON requests ----------------------------------------------------------

    def get_json(self, path_or_url: str, params: Mapping[str, str] | None = None) -> Any:
        return self.request_json("GET", path_or_url, params=params)[1]

    def post_json(self, path_or_url: str, data: Any = None) -> Any:
        """POST ``data`` as a JSON body (none if ``None``) and return the parsed answer."""
        return self.request_json("POST", path_or_url, json_body=data)[1]

    def request_json(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        passthrough: frozenset[int] = frozenset(),
    ) -> tuple[int, Any]:
        """(status, parsed JSON). Statuses in ``passthrough`` are returned (with their
        JSON body if any, else ``None``) instead of raising, for callers that give
        them a meaning (LTA 404 for an empty search, 409 for an existing order)."""
        url = self.url_for(path_or_url, params)
        resp, payload = self._send(
            method, url, json_body=json_body, want_json=True, passthrough=passthrough
        )
        return resp.status_code, payload

    # -- paging -----------------------------------------------------------------

    def search(
        self,
        entity_set: str,
        *,
        expand: str | None = None,
        fields: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        start: Any = None,
        stop: Any = None,
        time_field: str = "PublicationDate",
        intersects: str | None = None,
    ) -> Iterator[dict]:
        """Entities matching the criteria with ``time_field`` in ``[start, stop)``, oldest
        first (a stable order keeps ``$skip`` paging consistent while a station publishes)."""
        filter_ = search_filter(fields=fields, attributes=attributes, start=start, stop=stop,
                                time_field=time_field, footprint_wkt=intersects)
        return self.iter_entities(entity_set, filter=filter_, expand=expand,
                                  orderby=f"{time_field} asc")

    def iter_entities(
        self,
        entity_set: str,
        *,
        filter: str | None = None,
        expand: str | None = None,
        orderby: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict]:
        """Every matching entity once, paging with ``$top``/``$skip``.

        A short page does not mean the end (stations cap ``$top`` silently), so
        ``$skip`` advances by what was received and paging stops on an empty page,
        once ``@odata.count`` is reached, or when a page brings nothing new (a
        station ignoring ``$skip`` would otherwise loop forever).
        """
        top = page_size or self.station.page_size
        # LTA answers 404 for an empty search; elsewhere 404 means a wrong URL.
        not_found_is_empty = self.station.service == "lta"
        seen: set[Any] = set()
        skip = 0
        while True:
            params = query_params(
                filter=filter, top=top, skip=skip, orderby=orderby, expand=expand, count=True
            )
            status, payload = self.request_json(
                "GET",
                entity_set,
                params=params,
                passthrough=frozenset({404}) if not_found_is_empty else frozenset(),
            )
            if status == 404:
                return
            entities = entities_from_payload(payload)
            if not entities:
                return
            new = 0
            for entity in entities:
                key = entity.get("Id")
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                new += 1
                yield entity
            skip += len(entities)
            total = payload.get("@odata.count") if isinstance(payload, dict) else None
            if isinstance(total, int) and not isinstance(total, bool) and skip >= total:
                return
            if new == 0:
                log.warning(
                    "station %s: page at $skip=%d of %s repeated earlier entities; stopping",
                    self.station.id,
                    skip - len(entities),
                    entity_set,
                )
                return

    # -- downloads --------------------------------------------------------------

    @contextlib.contextmanager
    def open_download(self, url: str) -> Iterator[requests.Response]:
        """A streaming response for ``url`` (redirects followed, status checked).

        Retries cover failures before the body starts; a failure while reading
        the body is the caller's to retry.
        """
        resp, _ = self._send("GET", self.url_for(url), stream=True, accept="*/*")
        try:
            yield resp
        finally:
            resp.close()

    # -- core -------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        stream: bool = False,
        want_json: bool = False,
        accept: str = "application/json",
        passthrough: frozenset[int] = frozenset(),
    ) -> tuple[requests.Response, Any]:
        station = self.station
        shown_url = redact(url)
        max_retries = station.max_retries
        reauthenticated = False
        failures = 0
        cause = "no attempt made"
        last_status: int | None = None
        while True:
            token = self.tokens.token() if self.tokens is not None else None
            headers = {"Accept": accept}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            retry_after: float | None = None
            started = time.monotonic()
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=headers,
                    json=json_body,
                    stream=stream,
                    timeout=station.timeout,
                )
            except _RETRYABLE_EXCEPTIONS as exc:
                cause = _exception_cause(exc)
            except requests.RequestException as exc:
                raise self._error(
                    method, shown_url, f"request failed: {_exception_cause(exc)}", None
                ) from None
            else:
                status = last_status = resp.status_code
                log.debug(
                    "station %s: %s %s -> %d (%.2fs)",
                    station.id,
                    method,
                    shown_url,
                    status,
                    time.monotonic() - started,
                )
                if status == 401 and token and self.tokens is not None and not reauthenticated:
                    # One fresh token per request: a second 401 is a real refusal.
                    resp.close()
                    self.tokens.invalidate(token)
                    reauthenticated = True
                    log.info(
                        "station %s: 401 on %s %s; retrying with a new token",
                        station.id,
                        method,
                        shown_url,
                    )
                    continue
                if status in passthrough:
                    payload = _json_or_none(resp) if want_json else None
                    resp.close()
                    return resp, payload
                if status == 429 or status >= 500:
                    cause = f"HTTP {status}{error_detail(resp)}"
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    resp.close()
                elif not 200 <= status < 300:
                    detail = error_detail(resp)
                    resp.close()
                    raise self._error(method, shown_url, f"HTTP {status}{detail}", status)
                elif not want_json:
                    return resp, None
                else:
                    try:
                        return resp, resp.json()
                    except ValueError:
                        cause = f"malformed JSON body (HTTP {status})"
                    except _RETRYABLE_EXCEPTIONS as exc:
                        cause = _exception_cause(exc)
            failures += 1
            if failures > max_retries:
                raise self._error(
                    method,
                    shown_url,
                    f"gave up after {failures} attempts; last cause: {cause}",
                    last_status,
                )
            delay = self._delay(failures, retry_after)
            log.warning(
                "station %s: %s %s failed (%s); retry %d/%d in %.2fs",
                station.id,
                method,
                shown_url,
                redact(cause),
                failures,
                max_retries,
                delay,
            )
            self._sleep(delay)

    def _delay(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (failures - 1))
        # Jitter keeps many workers from retrying in lockstep against one station.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _error(self, method: str, url: str, what: str, status: int | None) -> StationHTTPError:
        message = redact(f"station {self.station.id}: {method} {url}: {what}")
        return StationHTTPError(
            message, station_id=self.station.id, method=method, url=url, status=status
        )

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ODataClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# OData keys: GUIDs and quoted strings must pass through unchanged.
_KEY_SAFE = "'-._~:@"


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except (ValueError, *_RETRYABLE_EXCEPTIONS):
        return None


def _exception_cause(exc: BaseException) -> str:
    # The exception text can embed the full URL and proxy details; the type and a
    # short, redacted reason are enough for an operator.
    text = str(exc)
    return redact(f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__)


_shared_lock = threading.Lock()
_shared_tokens: dict[tuple[str, ...], TokenManager] = {}


def shared_token_manager(station: StationConfig) -> TokenManager | None:
    """One TokenManager per station (and credentials) for the whole process."""
    if station.auth is None:
        return None
    auth = station.auth
    key = (station.id, auth.token_url, auth.client_id, auth.username)
    with _shared_lock:
        manager = _shared_tokens.get(key)
        if manager is None:
            manager = TokenManager(
                station.id, auth, timeout=station.timeout, backoff_base=station.backoff_base
            )
            _shared_tokens[key] = manager
        return manager


def client_for(station: StationConfig, session: requests.Session | None = None) -> ODataClient:
    """A client whose token is shared with every other client of the same station."""
    return ODataClient(station, session, token_manager=shared_token_manager(station))
