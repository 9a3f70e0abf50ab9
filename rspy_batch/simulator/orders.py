"""LTA orders: created on request, then queued -> in_progress -> completed over a delay."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rspy_batch.simulator.detrand import entity_uuid
from rspy_batch.simulator.timefmt import iso_ms

_MESSAGES = {
    "queued": "request is queued",
    "in_progress": "request is under processing",
    "completed": "requested product is available",
}


class OrderBook:
    """Orders of one LTA station, keyed by product Id (one order per product)."""

    def __init__(
        self, seed: int, delay: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seed = seed
        self._delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        # product id -> (order id, monotonic submit time, wall submit time, size)
        self._orders: dict[str, tuple[str, float, datetime, int]] = {}

    def place(self, product_id: str, size: int) -> tuple[bool, dict[str, Any]]:
        """Create the order if needed; returns (created, order JSON)."""
        with self._lock:
            created = product_id not in self._orders
            if created:
                order_id = entity_uuid(self._seed, f"order:{product_id}")
                self._orders[product_id] = (order_id, self._clock(), datetime.now(UTC), size)
        return created, self._render(product_id)

    def status(self, product_id: str) -> str | None:
        entry = self._orders.get(product_id)
        if entry is None:
            return None
        elapsed = self._clock() - entry[1]
        if elapsed >= self._delay:
            return "completed"
        return "in_progress" if elapsed >= self._delay / 3 else "queued"

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            ids = list(self._orders)
        return [self._render(p) for p in ids]

    def _render(self, product_id: str) -> dict[str, Any]:
        order_id, _, submitted, size = self._orders[product_id]
        status = self.status(product_id) or "queued"
        estimated = submitted + timedelta(seconds=self._delay)
        order: dict[str, Any] = {
            "Id": order_id,
            "Status": status,
            "StatusMessage": _MESSAGES[status],
            "OrderSize": size,
            "SubmissionDate": iso_ms(submitted),
            "EstimatedDate": iso_ms(estimated),
            "Priority": 1,
        }
        if status == "completed":
            order["CompletedDate"] = iso_ms(estimated)
            order["EvictionDate"] = iso_ms(estimated + timedelta(days=3))
        return order
