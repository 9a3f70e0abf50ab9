"""The stations file: which OData stations exist and how to reach them.

Secrets never live in the stations file itself. Each secret is named by an
environment variable (``*_env`` keys) and resolved from the process environment,
falling back to a dotenv-style secrets file (``$RSPY_SECRETS_FILE``, default
``~/.config/rspy-batch/secrets.env``). Every resolved value is registered for
redaction before it can reach a log line or an error message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from rspy_batch.errors import ConfigError
from rspy_batch.redact import register_secret

SERVICES = frozenset({"cadip", "auxip", "prip", "lta"})
SECRETS_FILE_VAR = "RSPY_SECRETS_FILE"
DEFAULT_SECRETS_FILE = Path("~/.config/rspy-batch/secrets.env")

# Literal keys that would put a secret in the stations file, and the key to use instead.
_LITERAL_SECRET_KEYS = {
    "password": "password_env",
    "client_secret": "client_secret_env",
    "token_request_authorization": "token_request_authorization_env",
    "authorization": "token_request_authorization_env",
}
_AUTH_KEYS = frozenset(
    {
        "type",
        "token_url",
        "client_id",
        "username",
        "client_secret_env",
        "password_env",
        "scope",
        "token_request_authorization_env",
    }
)
_STATION_KEYS = frozenset(
    {
        "service",
        "url",
        "auth",
        "trusted_hosts",
        "page_size",
        "timeout",
        "max_retries",
        "backoff_base",
    }
)


# (variable name, where it is referenced) -> secret value
SecretResolver = Callable[[str, str], str]


@dataclass(frozen=True)
class AuthConfig:
    """OAuth2 password-grant settings with secrets already resolved (hidden from repr)."""

    token_url: str
    client_id: str
    username: str
    password: str = field(repr=False)
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None
    token_request_authorization: str | None = field(default=None, repr=False)
    type: str = "oauth2"


@dataclass(frozen=True)
class StationConfig:
    """One station: its id, interface kind, service root and client tuning."""

    id: str
    service: str
    url: str  # service root, always ending with "/"
    auth: AuthConfig | None = None
    trusted_hosts: tuple[str, ...] = ()
    page_size: int = 1000
    timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 1.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def load_stations(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> dict[str, StationConfig]:
    """Read and validate the stations file; ``environ`` defaults to ``os.environ``."""
    env = os.environ if environ is None else environ
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read stations file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"stations file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("stations"), dict):
        raise ConfigError(f"stations file {path} must have a top-level 'stations:' mapping")
    secrets = _SecretSource(env)
    return {
        str(sid): parse_station(str(sid), raw, secrets.resolve, source=str(path))
        for sid, raw in doc["stations"].items()
    }


def parse_station(
    station_id: str,
    raw: Any,
    resolve_secret: SecretResolver,
    *,
    source: str = "stations file",
) -> StationConfig:
    """Validate one ``stations.<id>`` entry; ``resolve_secret(var_name, where) -> str``."""
    where = f"{source}: station {station_id!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    _reject_unknown(raw, _STATION_KEYS, where)
    service = raw.get("service")
    if service not in SERVICES:
        raise ConfigError(f"{where}: service must be one of {sorted(SERVICES)}, got {service!r}")
    url = _require_http_url(raw.get("url"), f"{where}: url")
    auth_raw = raw.get("auth")
    auth = None if auth_raw is None else _parse_auth(auth_raw, resolve_secret, f"{where}: auth")
    trusted = raw.get("trusted_hosts") or []
    if not isinstance(trusted, list) or not all(isinstance(h, str) for h in trusted):
        raise ConfigError(f"{where}: trusted_hosts must be a list of host names")
    return StationConfig(
        id=station_id,
        service=service,
        url=url if url.endswith("/") else url + "/",
        auth=auth,
        trusted_hosts=tuple(h.strip().lower() for h in trusted),
        page_size=_positive(raw, "page_size", 1000, int, where),
        timeout=float(_positive(raw, "timeout", 30.0, float, where)),
        max_retries=_non_negative_int(raw, "max_retries", 5, where),
        backoff_base=float(_positive(raw, "backoff_base", 1.0, float, where)),
    )


def _parse_auth(raw: Any, resolve_secret: SecretResolver, where: str) -> AuthConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    for key, env_key in _LITERAL_SECRET_KEYS.items():
        if key in raw:
            # Say which key, never echo the value.
            raise ConfigError(
                f"{where}: '{key}' must not be written in the stations file; "
                f"use '{env_key}: <ENV_VAR_NAME>' and set that variable "
                "(environment or secrets file)"
            )
    _reject_unknown(raw, _AUTH_KEYS, where)
    if raw.get("type", "oauth2") != "oauth2":
        raise ConfigError(f"{where}: only type 'oauth2' is supported, got {raw.get('type')!r}")
    token_url = _require_http_url(raw.get("token_url"), f"{where}: token_url")
    client_id = _require_str(raw, "client_id", where)
    username = _require_str(raw, "username", where)
    if "password_env" not in raw:
        raise ConfigError(f"{where}: 'password_env' is required for the password grant")

    def secret(key: str) -> str | None:
        name = raw.get(key)
        if name is None:
            return None
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: '{key}' must be an environment variable name")
        return resolve_secret(name, f"{where}: {key}")

    scope = raw.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise ConfigError(f"{where}: scope must be a string")
    return AuthConfig(
        token_url=token_url,
        client_id=client_id,
        username=username,
        password=secret("password_env") or "",
        client_secret=secret("client_secret_env"),
        scope=scope,
        token_request_authorization=secret("token_request_authorization_env"),
    )


class _SecretSource:
    """Environment first, then the secrets file (read once, lazily)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._file_values: dict[str, str] | None = None
        self._file_path = Path(env.get(SECRETS_FILE_VAR) or DEFAULT_SECRETS_FILE).expanduser()

    def resolve(self, name: str, where: str) -> str:
        value = self._env.get(name)
        if not value:
            value = self._from_file().get(name)
        if not value:
            raise ConfigError(
                f"{where}: environment variable {name} is not set "
                f"(neither in the environment nor in {self._file_path})"
            )
        register_secret(value)
        return value

    def _from_file(self) -> dict[str, str]:
        if self._file_values is None:
            try:
                text = self._file_path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            except OSError as exc:
                raise ConfigError(
                    f"cannot read secrets file {self._file_path}: {exc.strerror or exc}"
                ) from None
            self._file_values = parse_dotenv(text)
            for value in self._file_values.values():
                register_secret(value)
        return self._file_values


def register_secrets_file(environ: Mapping[str, str] | None = None) -> None:
    """Register every value of the secrets file, so that output is redacted of them (and
    the publish leak guard refuses them) even when no station is loaded in this process."""
    _SecretSource(os.environ if environ is None else environ)._from_file()


def station_urls(path: str | os.PathLike[str]) -> list[str]:
    """Service roots and token endpoints named in a stations file (no secrets resolved):
    locations that must never appear in a published catalog. Empty when there is no file."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    urls = []
    for raw in (doc.get("stations") or {}).values() if isinstance(doc, dict) else []:
        if isinstance(raw, dict):
            urls.append(str(raw.get("url", "")))
            if isinstance(raw.get("auth"), dict):
                urls.append(str(raw["auth"].get("token_url", "")))
    return [u for u in urls if u]


def parse_dotenv(text: str) -> dict[str, str]:
    """``NAME=value`` lines; blank lines, ``#`` comments and ``export`` prefixes allowed."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if name:
            values[name] = value
    return values


def _reject_unknown(raw: dict, allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _require_str(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: '{key}' is required")
    return value


def _require_http_url(value: Any, where: str) -> str:
    if isinstance(value, str) and "@" in urlsplit(value).netloc:
        # The URL lands in logs, errors and catalog hrefs; secrets belong in *_env keys.
        raise ConfigError(f"{where} must not hold credentials (user:password@); "
                          "use the auth section and its *_env keys")
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise ConfigError(f"{where} must be an http(s) URL, got {value!r}")
    if not urlsplit(value).hostname:
        raise ConfigError(f"{where} has no host: {value!r}")
    return value


def _positive(raw: dict, key: str, default: float, kind: type, where: str) -> Any:
    value = raw.get(key, default)
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types) or value <= 0:
        raise ConfigError(f"{where}: {key} must be a positive number, got {value!r}")
    return value


def _non_negative_int(raw: dict, key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: {key} must be an integer >= 0, got {value!r}")
    return value
