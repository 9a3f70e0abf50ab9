"""What a processor is: inputs in, an EOPF product out.

The runner (:mod:`rspy_batch.processing.run`) groups staged input items, makes their files
local, and calls :meth:`Processor.produce`. Most processors only implement :meth:`run`,
returning a lazy (Dask-backed) DataTree; :meth:`produce` writes it in one Dask pass. A
processor that writes by other means (``eopf-cpm`` runs CPM in a subprocess) overrides
:meth:`produce` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from rspy_batch.processing.product import ProductError, open_product, write_product


@dataclass(frozen=True)
class ProductInput:
    """One input item of a product, with its staged files available locally."""

    item: Mapping[str, Any]
    #: asset key -> local path of the staged file (downloaded to scratch if it was on S3)
    files: Mapping[str, Path]

    @property
    def id(self) -> str:
        return str(self.item["id"])

    def file(self, suffix: str = "") -> Path:
        """The single staged file (ending in ``suffix``); an error names what is there."""
        matches = [p for p in self.files.values() if p.name.endswith(suffix)]
        if len(matches) != 1:
            names = sorted(p.name for p in self.files.values())
            raise ProductError(f"input {self.id}: expected one file ending {suffix!r}, "
                               f"found {names}")
        return matches[0]

    def open(self, suffix: str = ".zip", *, chunks: Mapping[str, int] | None = None
             ) -> xr.DataTree:
        """The input's EOPF product, lazily."""
        return open_product(self.file(suffix), chunks=chunks)


@dataclass(frozen=True)
class OutputTarget:
    """Where and how the product is written, and the attributes the runner decided."""

    url: str
    product_id: str
    #: STAC properties the runner sets on the product (processing:*, product:type, ...)
    properties: Mapping[str, Any]
    processing_history: Mapping[str, Any]
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    zarr_format: int = 2
    shards: Mapping[str, int] | None = None


class Processor(ABC):
    """A processing unit. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    version: ClassVar[str]
    #: ``processing:level`` of the output
    level: ClassVar[str]
    #: ``product:type`` of the output (EOPF product type, e.g. ``S02MSIL2A``)
    product_type: ClassVar[str]
    title: ClassVar[str] = ""
    #: default parameters; ``rspy-batch process --param k=v`` overrides them
    parameters: ClassVar[Mapping[str, Any]] = {}
    #: the input items' ``product:type`` values this processor takes (empty: any); other
    #: items of a mixed collection are left alone rather than failed
    input_types: ClassVar[frozenset[str]] = frozenset()

    def accepts(self, item: Mapping[str, Any]) -> bool:
        """Whether ``item`` is an input of this processor at all."""
        return not self.input_types or \
            (item.get("properties") or {}).get("product:type") in self.input_types

    def group(self, items: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
        """How input items form products: one product per item unless overridden."""
        return [[item] for item in items]

    def product_type_for(self, items: Sequence[Mapping[str, Any]]) -> str:
        """The output ``product:type`` for these inputs (e.g. per mission); by default
        :attr:`product_type`."""
        return self.product_type

    @abstractmethod
    def run(self, inputs: Sequence[ProductInput], **params: Any) -> xr.DataTree:
        """The output product as a lazy DataTree with ``stac_discovery``/``other_metadata``.

        ``stac_discovery`` must hold ``geometry``, ``bbox`` and ``properties`` with
        ``datetime`` / ``start_datetime`` / ``end_datetime`` and ``platform``; the runner adds
        identity and ``processing:*``.
        """

    def main_variables(self, tree: xr.DataTree) -> Mapping[str, str]:
        """Asset key -> variable path of the variables worth an asset of their own."""
        return {}

    def quicklook(self, tree: xr.DataTree) -> np.ndarray | None:
        """A small ``uint8`` image (H×W or H×W×3) of the written product, or None."""
        return None

    def produce(self, inputs: Sequence[ProductInput], target: OutputTarget,
                **params: Any) -> xr.DataTree:
        """Run, stamp the attributes, write once; return the written product, opened."""
        tree = self.run(inputs, **{**self.parameters, **params})
        tree.attrs.update(stamp_attrs(tree.attrs, target))
        write_product(tree, target.url, storage_options=target.storage_options,
                      zarr_format=target.zarr_format, shards=target.shards)
        return open_product(target.url, storage_options=target.storage_options)


def open_single_input(processor: str, inputs: Sequence[ProductInput], types: Collection[str],
                      kind: str) -> tuple[ProductInput, xr.DataTree, dict[str, Any]]:
    """The one input of a one-to-one processor, opened, with its ``stac_discovery``
    properties; a :class:`ProductError` names a wrong count or a wrong product type."""
    if len(inputs) != 1:
        raise ProductError(f"{processor} takes one {kind} product, got {len(inputs)}")
    source = inputs[0]
    tree = source.open()
    props = dict((tree.attrs.get("stac_discovery") or {}).get("properties") or {})
    ptype = props.get("product:type") or props.get("eopf:type")
    if ptype not in types:
        raise ProductError(f"{processor}: input {source.id} is {ptype!r}, expected {kind} "
                           f"({', '.join(sorted(types))})")
    return source, tree, props


def stamp_attrs(attrs: Mapping[str, Any], target: OutputTarget) -> dict[str, Any]:
    """Root attributes with the runner's identity and processing fields merged in."""
    stac = dict(attrs.get("stac_discovery") or {})
    stac.setdefault("type", "Feature")
    stac.setdefault("stac_version", "1.1.0")
    stac["id"] = target.product_id
    stac["properties"] = {**(stac.get("properties") or {}), **target.properties}
    stac.setdefault("links", [{"rel": "self", "href": "./.zattrs.json",
                               "type": "application/json"}])
    stac.setdefault("assets", {})
    return {
        "stac_discovery": stac,
        "other_metadata": dict(attrs.get("other_metadata") or {}),
        "processing_history": {**(attrs.get("processing_history") or {}),
                               **target.processing_history},
    }
