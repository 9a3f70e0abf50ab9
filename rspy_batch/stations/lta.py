"""LTA: long term archive, where products are ordered before they can be downloaded.

Interface: ``GET Products?$filter=..`` searches (no ``Attributes``; **404** when
nothing matches, and a single result may come back as a bare object);
``POST Products(<Id>)/OData.CSC.Order`` orders a product (201, or the existing
order when it was already ordered); ``GET Orders(<Id>)`` (or
``Orders?$filter=Id eq <Id>``) follows the order through ``queued`` →
``in_progress`` → ``completed``; ``GET Products(<Id>)/$value`` downloads it
once completed (403 before, 404 without an order).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from rspy_batch.errors import StationError

from .client import ODataClient, StationHTTPError, entities_from_payload
from .odata import eq, query_params

PRODUCTS = "Products"
ORDERS = "Orders"
ORDER_STATUSES = ("queued", "in_progress", "completed", "failed", "cancelled")


def search_products(
    client: ODataClient,
    *,
    fields: Mapping[str, Any] | None = None,
    start: Any = None,
    stop: Any = None,
    time_field: str = "PublicationDate",
    intersects: str | None = None,
) -> Iterator[dict]:
    """Products matching ``fields`` with ``time_field`` in ``[start, stop)`` (no Attributes:
    LTA entities have none)."""
    return client.search(PRODUCTS, fields=fields, start=start, stop=stop,
                         time_field=time_field, intersects=intersects)


def create_order(client: ODataClient, product_id: Any, *, priority: int | None = None) -> dict:
    """Order a product; an order that already exists is returned as it is."""
    path = client.entity_path(PRODUCTS, product_id) + "/OData.CSC.Order"
    body = None if priority is None else {"Priority": priority}
    status, payload = client.request_json(
        "POST", path, json_body=body, passthrough=frozenset({409})
    )
    order = _single_entity(payload)
    if order is None:
        raise StationError(
            f"station {client.station.id}: order of product {product_id} answered "
            f"HTTP {status} without an order"
        )
    return order


def order_status(client: ODataClient, order_id: Any) -> dict:
    """The current state of an order (``Status``, ``StatusMessage``, dates...)."""
    # Not every LTA implements key lookup on Orders; the filter form is the fallback.
    status, payload = client.request_json(
        "GET",
        client.entity_path(ORDERS, order_id),
        passthrough=frozenset({400, 404, 405, 501}),
    )
    order = _single_entity(payload) if status < 300 else None
    if order is not None:
        return order
    status, payload = client.request_json(
        "GET",
        ORDERS,
        params=query_params(filter=eq("Id", _guid_or_str(order_id))),
        passthrough=frozenset({404}),
    )
    order = _single_entity(payload) if status < 300 else None
    if order is None:
        raise StationHTTPError(
            f"station {client.station.id}: order {order_id} not found",
            station_id=client.station.id,
            method="GET",
            url=client.url_for(ORDERS),
            status=404,
        )
    return order


def product_download_url(client: ODataClient, product_id: Any) -> str:
    return client.download_url(PRODUCTS, product_id)


def _single_entity(payload: Any) -> dict | None:
    if payload is None:
        return None
    try:
        entities = entities_from_payload(payload)
    except StationError:
        return None
    return entities[0] if entities else None


def _guid_or_str(value: Any) -> Any:
    # GUID keys are unquoted in OData; anything else is compared as a string.
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return str(value)
