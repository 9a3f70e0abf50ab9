"""PRIP: production interface delivery point (L0/L1/L2 products).

Interface: as AUXIP (``GET Products?$filter=..&$expand=Attributes``,
``GET Products(<Id>)/$value``), with ``ContentLength`` an integer, a
``Footprint``/``GeoFootprint`` and mission attributes such as ``orbitNumber``
(Integer) or ``sliceProductFlag`` (Boolean). Spatial search uses
``OData.CSC.Intersects(area=geography'SRID=4326;<WKT>')``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .client import ODataClient

PRODUCTS = "Products"


def search_products(
    client: ODataClient,
    *,
    fields: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
    start: Any = None,
    stop: Any = None,
    time_field: str = "PublicationDate",
    intersects: str | None = None,
) -> Iterator[dict]:
    """Products matching the criteria; ``intersects`` is a WGS84 WKT geometry."""
    return client.search(PRODUCTS, expand="Attributes", fields=fields, attributes=attributes,
                         start=start, stop=stop, time_field=time_field, intersects=intersects)


def product_download_url(client: ODataClient, product_id: Any) -> str:
    return client.download_url(PRODUCTS, product_id)
