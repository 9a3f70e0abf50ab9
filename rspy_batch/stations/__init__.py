"""Clients for the Copernicus station OData interfaces (CADIP, AUXIP, PRIP, LTA)."""

from .client import ODataClient, StationHTTPError, client_for, entities_from_payload
from .config import AuthConfig, StationConfig, load_stations

__all__ = [
    "AuthConfig",
    "ODataClient",
    "StationConfig",
    "StationHTTPError",
    "client_for",
    "entities_from_payload",
    "load_stations",
]
