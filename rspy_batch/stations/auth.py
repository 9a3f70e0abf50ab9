"""OAuth2 password-grant tokens for one station, shared by all worker threads.

Stations hand out short-lived access tokens (``expires_in``, typically 1200 s)
plus a refresh token (``refresh_expires_in``, sometimes omitted). One
:class:`TokenManager` per station keeps a single token for every thread: it is
reused until shortly before it expires, then refreshed, and a full password
login is done only when there is no usable refresh token or refreshing fails.
Hammering the token endpoint once per worker is what rs-server PR #906 fixed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from rspy_batch.errors import StationError
from rspy_batch.redact import redact, register_secret

from .config import AuthConfig

log = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 300.0  # used when a station omits expires_in
EXPIRY_MARGIN = 30.0  # renew this long before expiry so in-flight requests don't race it
TOKEN_RETRIES = 3


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float
    refresh_token: str | None
    refresh_expires_at: float | None  # None: the station did not say


class TokenManager:
    """Obtains, caches and renews the bearer token of one station (thread-safe)."""

    def __init__(
        self,
        station_id: str,
        auth: AuthConfig,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 1.0,
    ) -> None:
        self.station_id = station_id
        self._auth = auth
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._backoff_base = backoff_base
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.logins = 0  # counters for tests and run records
        self.refreshes = 0

    def token(self) -> str:
        """A valid access token, fetching or renewing it if needed."""
        # The lock is held across the HTTP call on purpose: other threads wait for
        # the one renewal instead of each logging in.
        with self._lock:
            now = self._clock()
            current = self._token
            if current is not None and now < current.expires_at:
                return current.access_token
            if current is not None and self._can_refresh(current, now):
                try:
                    self._token = self._refresh(current)
                    return self._token.access_token
                except StationError as exc:
                    log.info(
                        "station %s: token refresh failed (%s); logging in again",
                        self.station_id,
                        exc,
                    )
            self._token = self._login()
            return self._token.access_token

    def authorization_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self, token: str | None = None) -> None:
        """Forget the access token after a 401 (keeps the refresh token).

        Pass the token that was rejected: if another thread already replaced it,
        the newer token is kept rather than thrown away.
        """
        with self._lock:
            current = self._token
            if current is None or (token is not None and token != current.access_token):
                return
            self._token = Token(
                "", float("-inf"), current.refresh_token, current.refresh_expires_at
            )

    def _can_refresh(self, token: Token, now: float) -> bool:
        if not token.refresh_token:
            return False
        return token.refresh_expires_at is None or now < token.refresh_expires_at

    def _login(self) -> Token:
        form = {
            "grant_type": "password",
            "client_id": self._auth.client_id,
            "username": self._auth.username,
            "password": self._auth.password,
        }
        if self._auth.client_secret:
            form["client_secret"] = self._auth.client_secret
        if self._auth.scope:
            form["scope"] = self._auth.scope
        token = self._request(form, "login")
        self.logins += 1
        return token

    def _refresh(self, current: Token) -> Token:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": current.refresh_token or "",
            "client_id": self._auth.client_id,
        }
        if self._auth.client_secret:
            form["client_secret"] = self._auth.client_secret
        token = self._request(form, "refresh")
        self.refreshes += 1
        # Without a new refresh token from the station, the old one may still be good.
        if token.refresh_token is None and current.refresh_token:
            token = Token(
                token.access_token,
                token.expires_at,
                current.refresh_token,
                current.refresh_expires_at,
            )
        return token

    def _request(self, form: dict[str, str], what: str) -> Token:
        headers = {"Accept": "application/json"}
        if self._auth.token_request_authorization:
            headers["Authorization"] = self._auth.token_request_authorization
        url = self._auth.token_url
        cause = "no attempt made"
        for attempt in range(TOKEN_RETRIES):
            if attempt:
                delay = self._backoff_base * 2 ** (attempt - 1)
                self._sleep(delay / 2 + random.uniform(0, delay / 2))
            try:
                resp = self._session.post(
                    url, data=form, headers=headers, timeout=self._timeout, allow_redirects=False
                )
            except requests.RequestException as exc:
                cause = type(exc).__name__
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                cause = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                raise StationError(
                    self._message(
                        f"token {what} rejected with HTTP {resp.status_code}{error_detail(resp)}"
                    )
                )
            try:
                body = resp.json()
            except ValueError:
                cause = "malformed JSON in token response"
                continue
            return self._parse(body, what)
        raise StationError(
            self._message(f"token {what} failed after {TOKEN_RETRIES} attempts: {cause}")
        )

    def _parse(self, body: Any, what: str) -> Token:
        access = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise StationError(self._message(f"token {what} response has no access_token"))
        register_secret(access)
        refresh = body.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            refresh = None
        register_secret(refresh)
        now = self._clock()
        expires_in = _seconds(body.get("expires_in"), DEFAULT_EXPIRES_IN)
        refresh_in = _seconds(body.get("refresh_expires_in"), None)
        return Token(
            access_token=access,
            expires_at=now + expires_in - min(EXPIRY_MARGIN, expires_in / 2),
            refresh_token=refresh,
            refresh_expires_at=(
                None
                if refresh_in is None
                else now + refresh_in - min(EXPIRY_MARGIN, refresh_in / 2)
            ),
        )

    def _message(self, text: str) -> str:
        return redact(f"station {self.station_id}: {text} (token URL {self._auth.token_url})")


def _seconds(value: Any, default: float | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if seconds > 0 else default


def error_detail(resp: requests.Response) -> str:
    """The station's own error text, shortened; callers redact the final message too.

    Redacted before it is cut: a secret the station echoes across the cut would otherwise
    leave its first part behind, which no longer matches the secret."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return f": {redact(text)[:200]}" if text else ""
    if isinstance(body, dict):
        for key in ("error_description", "error", "message", "detail"):
            if isinstance(body.get(key), str):
                return f": {redact(body[key])[:200]}"
    return ""
