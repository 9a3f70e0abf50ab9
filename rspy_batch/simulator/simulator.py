"""The public face of the simulator: start/stop listeners, describe stations, write files."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from rspy_batch.simulator.app import App
from rspy_batch.simulator.config import SimConfig
from rspy_batch.simulator.server import Listener


def secret_env_names(station_id: str) -> tuple[str, str]:
    """Env var names for (client secret, password) of a station."""
    prefix = f"RSPY_STATION_{station_id.upper()}"
    return f"{prefix}_CLIENT_SECRET", f"{prefix}_PASSWORD"


class Simulator:
    """Simulated Copernicus stations over real HTTP on loopback."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.app = App(self.config)
        self._main: Listener | None = None
        self._other: Listener | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> Simulator:
        if self._main is not None:
            return self
        c = self.config
        self._main = Listener(c.host, c.port, self.app, "main")
        if c.redirect == "other":
            self._other = Listener(c.other_host, c.other_port, self.app, "other")
            self.app.other_url = self._other.url
        self.app.base_url = self._main.url
        self._main.start()
        if self._other:
            self._other.start()
        return self

    def stop(self) -> None:
        for listener in (self._main, self._other):
            if listener is not None:
                listener.stop()
        self._main = self._other = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- description ------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._main is None:
            raise RuntimeError("simulator not started")
        return self._main.url

    @property
    def other_url(self) -> str | None:
        """The redirect-target listener (mode "other" only)."""
        return self._other.url if self._other else None

    @property
    def stations(self) -> dict[str, dict[str, str]]:
        base = self.base_url
        return {
            sid: {
                "service": st.service,
                "url": f"{base}/{sid}/odata/v1/",
                "token_url": f"{base}/{sid}/oauth2/token",
            }
            for sid, st in self.app.stations.items()
        }

    @property
    def credentials(self) -> dict[str, str]:
        out = {}
        for sid, creds in self.app.credentials.items():
            secret_env, password_env = secret_env_names(sid)
            out[secret_env] = creds.client_secret
            out[password_env] = creds.password
        return out

    def stations_document(self) -> dict[str, Any]:
        """The stations file content: env var names only, never secret values."""
        doc: dict[str, Any] = {}
        for sid, info in self.stations.items():
            creds = self.app.credentials[sid]
            secret_env, password_env = secret_env_names(sid)
            doc[sid] = {
                "service": info["service"],
                "url": info["url"],
                "auth": {
                    "type": "oauth2",
                    "token_url": info["token_url"],
                    "client_id": creds.client_id,
                    "username": creds.username,
                    "client_secret_env": secret_env,
                    "password_env": password_env,
                },
                "trusted_hosts": [],
                "page_size": self.config.page_cap,
            }
        return {"stations": doc}

    def write_stations_file(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.stations_document(), sort_keys=False))
        return path

    def write_secrets_file(self, path: str | Path) -> Path:
        path = Path(path)
        # Create with 0600 from the start so the secrets are never world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{k}={v}\n" for k, v in self.credentials.items())
        os.chmod(path, 0o600)
        return path

    # -- ground truth -----------------------------------------------------------
    def truth(self, station_id: str) -> list[dict[str, Any]]:
        return self.app.catalogs[station_id].truth()

    def stats(self) -> dict[str, Any]:
        snap = self.app.stats.snapshot()
        snap["tokens_issued"] = dict(self.app.tokens.issued)
        return snap
