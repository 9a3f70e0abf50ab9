"""AUXIP (ADGS): auxiliary data products.

Interface: ``GET Products?$filter=..&$expand=Attributes`` lists products
(``Name``, ``ContentLength`` (a string here), ``PublicationDate``,
``ContentDate/Start|End``, ``Checksum``) with typed ``Attributes`` such as
``productType``, ``platformShortName``, ``platformSerialIdentifier``; filters on
attributes use ``Attributes/OData.CSC.<Type>Attribute/any(..)``.
``GET Products(<Id>)/$value`` downloads a product.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .client import ODataClient
from .odata import search_filter

PRODUCTS = "Products"


def search_products(
    client: ODataClient,
    *,
    fields: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
    start: Any = None,
    stop: Any = None,
    time_field: str = "PublicationDate",
) -> Iterator[dict]:
    """Products matching ``fields`` and ``attributes`` with ``time_field`` in ``[start, stop)``."""
    filter_ = search_filter(
        fields=fields, attributes=attributes, start=start, stop=stop, time_field=time_field
    )
    return client.iter_entities(
        PRODUCTS, filter=filter_, expand="Attributes", orderby=f"{time_field} asc"
    )


def product_download_url(client: ODataClient, product_id: Any) -> str:
    return client.download_url(PRODUCTS, product_id)
