"""LTA products are ordered first and downloaded once the order is completed.

The order is placed (an existing order for the product is returned as it is) and polled
until ``completed``; ``failed``/``cancelled``, an order that vanished, or one still not
completed after the timeout ends in :class:`TransferFailed` naming its last state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rspy_batch.errors import StationError
from rspy_batch.staging.transfer import TransferFailed
from rspy_batch.stations import lta
from rspy_batch.stations.client import ODataClient

FINAL_FAILURES = ("failed", "cancelled", "canceled", "expired")


def wait_for_product(client: ODataClient, product_id: str, *, timeout: float = 600,
                     poll: float = 2.0, clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> dict:
    """Order ``product_id`` and wait until it can be downloaded; return the order."""
    try:
        order = lta.create_order(client, product_id)
    except StationError as exc:
        raise TransferFailed(f"LTA order for product {product_id} could not be placed: "
                             f"{exc}") from None
    deadline = clock() + timeout
    polls = 0
    while True:
        state = str(order.get("Status", "")).lower()
        if state == "completed":
            return order
        if state in FINAL_FAILURES:
            raise TransferFailed(f"LTA order {order.get('Id')} for product {product_id} "
                                 f"ended {state}: {order.get('StatusMessage', '')}".rstrip(": "))
        if clock() >= deadline:
            raise TransferFailed(f"LTA order {order.get('Id')} for product {product_id} not "
                                 f"completed after {timeout:g} s (status {state or 'unknown'})")
        # Start quick (small orders complete in seconds), back off to ``poll``.
        sleep(min(poll, 0.1 * 2 ** polls))
        polls += 1
        try:
            order = lta.order_status(client, order["Id"])
        except StationError as exc:
            raise TransferFailed(f"LTA order {order.get('Id')} status unavailable: "
                                 f"{exc}") from None
