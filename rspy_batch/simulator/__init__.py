"""Station simulator: CADIP, AUXIP, PRIP and LTA OData stations over loopback HTTP.

Deterministic synthetic entities and payloads, the real stations' quirks, OAuth2,
redirects and injectable faults, so that a client proven here works on real stations.
"""

from rspy_batch.simulator.config import DEFAULT_STATIONS, SimConfig, StationDef, parse_scale
from rspy_batch.simulator.faults import FaultSpec
from rspy_batch.simulator.simulator import Simulator, secret_env_names

__all__ = [
    "DEFAULT_STATIONS",
    "FaultSpec",
    "SimConfig",
    "Simulator",
    "StationDef",
    "parse_scale",
    "secret_env_names",
]
