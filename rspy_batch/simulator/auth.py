"""OAuth2 password/refresh grants and bearer-token checks, as the station mocks do them."""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rspy_batch.simulator.detrand import secret_text

MISSING = "Token is missing!"
INVALID = "Token is invalid!"
EXPIRED = "Token is valid but is expired!"


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    username: str
    password: str


def station_credentials(seed: int, station_id: str) -> Credentials:
    """Per-station credentials derived from the seed, so no secret is a code constant."""
    return Credentials(
        client_id=f"rspy-{station_id}-client",
        client_secret=secret_text(seed, station_id, "client_secret"),
        username=f"{station_id}-operator",
        password=secret_text(seed, station_id, "password"),
    )


def _token() -> str:
    # 59 letters, the shape the reference mock hands out.
    return "".join(secrets.choice(string.ascii_letters) for _ in range(59))


class TokenStore:
    """Issued tokens per station; each has its own expiry."""

    def __init__(
        self, ttl: float, refresh_ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.refresh_ttl = refresh_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._access: dict[str, tuple[str, float]] = {}
        self._refresh: dict[str, tuple[str, float]] = {}
        self.issued: dict[str, int] = {}

    def grant(self, station: str, form: dict[str, str], creds: Credentials) -> tuple[int, dict]:
        """Handle a token request; returns (HTTP status, JSON body)."""
        grant_type = form.get("grant_type", "")
        now = self._clock()
        if grant_type == "password":
            if (form.get("client_id"), form.get("client_secret")) != (
                creds.client_id,
                creds.client_secret,
            ):
                return 401, {"error": "invalid_client", "error_description": "bad client"}
            if (form.get("username"), form.get("password")) != (creds.username, creds.password):
                return 401, {"error": "invalid_grant", "error_description": "bad user credentials"}
        elif grant_type == "refresh_token":
            with self._lock:
                entry = self._refresh.pop(form.get("refresh_token", ""), None)
            if entry is None or entry[0] != station:
                return 401, {"error": "invalid_grant", "error_description": "unknown refresh token"}
            if entry[1] < now:
                return 401, {"error": "invalid_grant", "error_description": "refresh token expired"}
        else:
            return 400, {"error": "Unsupported grant_type"}
        access, refresh = _token(), _token()
        with self._lock:
            self._access[access] = (station, now + self.ttl)
            self._refresh[refresh] = (station, now + self.refresh_ttl)
            self.issued[station] = self.issued.get(station, 0) + 1
        return 200, {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.ttl) if self.ttl == int(self.ttl) else self.ttl,
            "refresh_token": refresh,
            "refresh_expires_in": int(self.refresh_ttl),
        }

    def check(self, station: str, header: str | None) -> str | None:
        """None if the Authorization header holds a live token of this station."""
        parts = (header or "").split()
        if not parts:
            return MISSING
        # Like the mock, take the last word: any scheme word is accepted.
        with self._lock:
            entry = self._access.get(parts[-1])
        if entry is None or entry[0] != station:
            return INVALID
        if entry[1] < self._clock():
            return EXPIRED
        return None
