"""Station entities → STAC item dicts: pure functions, one module per station type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rspy_batch.mapping import auxip, cadip, lta, prip

Mapper = Callable[..., dict[str, Any]]

MAPPERS: dict[str, Mapper] = {
    "cadip": cadip.session_to_item,
    "auxip": auxip.product_to_item,
    "prip": prip.product_to_item,
    "lta": lta.product_to_item,
}
