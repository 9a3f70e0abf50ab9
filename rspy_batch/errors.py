"""Exception types shared across stages; each names the problem for the operator."""

from __future__ import annotations


class RspyError(Exception):
    """Base class: a problem rspy-batch can explain to a user."""


class ConfigError(RspyError):
    """Configuration is missing, malformed or refers to an unset secret."""


class StationError(RspyError):
    """A station answered in a way we cannot use, after retries."""


class EntityRejected(RspyError):
    """A single station entity cannot be mapped to STAC; the rest of the run goes on."""

    def __init__(self, entity_id: str, reason: str) -> None:
        super().__init__(f"{entity_id}: {reason}")
        self.entity_id = entity_id
        self.reason = reason


class ConflictError(RspyError):
    """A conditional write lost a race (HTTP 412 or the local equivalent)."""
