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
    return client.search(PRODUCTS, expand="Attributes", fields=fields, attributes=attributes,
                         start=start, stop=stop, time_field=time_field)


def product_download_url(client: ODataClient, product_id: Any) -> str:
    return client.download_url(PRODUCTS, product_id)
