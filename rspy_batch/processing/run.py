"""Process one window of an input collection: plan products, run the processor, catalog them.

The catalog is the record: a product is done when an item exists in the output collection
whose ``processing:software`` is this processor version and whose ``derived_from`` links
name exactly its inputs. The product is written (data, then ``.zmetadata``) before its item,
so an item never points at a half-written product, and a crash between the two is repaired
by the next run, which rewrites the product under the same name. A product that fails is
recorded in the window's run record with its reason and blocks nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Container, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec

from rspy_batch.catalog import layout
from rspy_batch.catalog.reader import item_keys, read_json
from rspy_batch.catalog.records import (
    COMPLETE,
    FAILED,
    Rejection,
    RunRecord,
    is_complete,
    now,
    recording,
)
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.versions import is_linked, link_versions, versioned_id
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.errors import ConfigError, RspyError
from rspy_batch.mapping.common import iso
from rspy_batch.processing import naming, stac
from rspy_batch.processing.base import OutputTarget, Processor, ProductInput
from rspy_batch.processing.cluster import dask_client
from rspy_batch.processing.product import local_copy
from rspy_batch.processing.quicklook import png_bytes
from rspy_batch.redact import redact
from rspy_batch.s3 import split_location
from rspy_batch.staging import state
from rspy_batch.staging.stage import window_items
from rspy_batch.templates import CollectionTemplate

log = logging.getLogger(__name__)

STAGE = "process"
Progress = Callable[[int, int], None]  # (products done, products planned)


@dataclass(frozen=True)
class PlannedProduct:
    """One output product: its inputs, its deterministic id, and where its item goes."""

    inputs: tuple[dict[str, Any], ...]
    product_id: str
    datetime: datetime
    item_key: str

    @property
    def input_ids(self) -> list[str]:
        return sorted(str(item["id"]) for item in self.inputs)


@dataclass
class ProcessingSettings:
    """Where outputs go and how they are written."""

    products: str                              # root URL/path of product data
    output_collection: str | None = None       # default: <input>-<processor>
    params: Mapping[str, Any] = field(default_factory=dict)
    zarr_format: int = 2
    shards: Mapping[str, int] | None = None
    scheduler: str | None = None               # Dask scheduler address; None = LocalCluster
    scratch: str | None = None                 # local directory for input copies
    #: series base id: the output collection (``versioned_id(version_of, processor
    #: version)``) is one version of it, carries ``version`` and is linked to the others
    version_of: str | None = None


def output_collection_id(input_collection: str, processor: Processor) -> str:
    return f"{input_collection}-{processor.name}"


def _versioned_output(out: str, processor: Processor, settings: ProcessingSettings) -> None:
    """A version series is found by its ids, so a versioned output under another id would
    be silently left out of it: refuse that instead."""
    if settings.version_of is None:
        return
    try:
        expected = versioned_id(settings.version_of, processor.version)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if out != expected:
        raise ConfigError(f"output collection {out!r} of a version of {settings.version_of!r} "
                          f"by {processor.name} {processor.version} must be {expected!r}")


def _times(items: Sequence[Mapping[str, Any]]) -> tuple[datetime, datetime]:
    starts, stops = [], []
    for item in items:
        props = item["properties"]
        starts.append(layout.parse_datetime(props.get("start_datetime") or props["datetime"]))
        stops.append(layout.parse_datetime(props.get("end_datetime") or props.get("datetime")
                                           or props["start_datetime"]))
    return min(starts), max(stops)


def plan_products(processor: Processor, items: Sequence[dict[str, Any]], *,
                  output_collection: str, params: Mapping[str, Any]) -> list[PlannedProduct]:
    """The products ``processor`` makes from ``items`` (pure: names depend only on inputs,
    processor version and parameters, so re-runs find their earlier outputs)."""
    canonical = json.dumps(dict(params), sort_keys=True, default=str)
    planned = []
    for group in processor.group(items):
        start, stop = _times(group)
        props = group[0]["properties"]
        ids = sorted(str(item["id"]) for item in group)
        product_id = naming.product_name(
            processor.product_type_for(group), start, stop,
            platform=str(props.get("platform") or ""),
            relative_orbit=props.get("sat:relative_orbit"),
            timeliness=props.get("product:timeliness_category"),
            identity=[processor.name, processor.version, canonical, *ids])
        planned.append(PlannedProduct(
            inputs=tuple(group), product_id=product_id, datetime=start,
            item_key=layout.item_key(output_collection, product_id, start)))
    return planned


def product_done(store: Store, product: PlannedProduct, processor: Processor,
                 linked: Container[str]) -> bool:
    """The product's item is cataloged (its key in ``linked``, see :func:`linked_items`)
    and says it was derived from these inputs by this processor version."""
    if product.item_key not in linked:
        return False
    item = read_json(store, product.item_key)
    return item is not None and stac.is_derived_from(
        item, processor_name=processor.name, version=processor.version,
        input_ids=product.input_ids)


def linked_items(store: Store, collection_id: str, products: Sequence[PlannedProduct]
                 ) -> set[str]:
    """Item keys reachable from the collection on the products' days. An item file alone
    is not enough: a crash between it and its day catalog leaves it unlinked, and a
    product counted done for it would never be linked."""
    if not products:
        return set()
    first = min(p.datetime for p in products)
    last = max(p.datetime for p in products)
    day = first.replace(hour=0, minute=0, second=0, microsecond=0)
    return set(item_keys(store, collection_id, day, last + timedelta(days=1)))


def window_processed(store: Store, processor: Processor, input_collection: str,
                     start: datetime, stop: datetime, settings: ProcessingSettings) -> bool:
    """True when every product of the window's staged inputs is in the output collection
    and the window's run record says complete."""
    items = window_items(store, input_collection, start, stop)
    if items is None:
        return False
    items = [item for item in items if processor.accepts(item)]
    if not all(state.is_staged(item) for item in items):
        return False
    out = settings.output_collection or output_collection_id(input_collection, processor)
    # A run killed after its last product, before its record, leaves every product done
    # and the window unrecorded (publishing finds processed collections by their records):
    # the next run, finding nothing to make, writes the record.
    if not is_complete(store, STAGE, out, iso(start), iso(stop)):
        return False
    planned = plan_products(processor, items, output_collection=out,
                            params={**processor.parameters, **settings.params})
    linked = linked_items(store, out, planned)
    if not all(product_done(store, p, processor, linked) for p in planned):
        return False
    return settings.version_of is None or is_linked(store, settings.version_of)


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url``: the endpoint from the AWS environment, never secrets
    (s3fs reads credentials from the standard chain itself)."""
    if split_location(url)[0] != "s3":
        return {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def _join(root: str, *parts: str) -> str:
    kind, location = split_location(root)
    if kind == "local":
        return str(Path(location).resolve().joinpath(*parts))
    return "/".join([location.rstrip("/"), *parts])


def _href(url: str) -> str:
    kind, location = split_location(url)
    return Path(location).as_uri() if kind == "local" else location


def _local_inputs(product: PlannedProduct, stack: ExitStack, scratch: str | None
                  ) -> list[ProductInput]:
    inputs = []
    for item in product.inputs:
        files = {}
        for key, asset in item["assets"].items():
            if not state.is_staged_asset(asset):
                raise RspyError(f"input {item['id']}: asset {key} is not staged")
            files[key] = stack.enter_context(local_copy(
                asset["href"], storage_options=storage_options(asset["href"]), scratch=scratch))
        inputs.append(ProductInput(item=item, files=files))
    return inputs


def run_product(processor: Processor, product: PlannedProduct, *, store: Store,
                input_collection: str, output_collection: str,
                settings: ProcessingSettings) -> str:
    """Make one product and write its item; returns the item's catalog key."""
    y, m, _ = layout.day_parts(product.datetime)
    base = _join(settings.products, output_collection, y, m, product.product_id)
    url = f"{base}.zarr"
    options = storage_options(url)
    params = {**processor.parameters, **settings.params}
    target = OutputTarget(
        url=url, product_id=product.product_id, storage_options=options,
        zarr_format=settings.zarr_format, shards=settings.shards,
        properties=stac.processing_properties(
            processor_name=processor.name, version=processor.version, level=processor.level,
            product_type=processor.product_type_for(product.inputs),
            input_ids=product.input_ids,
            when=datetime.now(UTC)),
        processing_history={processor.level: [{
            "processor": processor.name, "version": processor.version,
            "facility": stac.FACILITY, "time": iso(datetime.now(UTC)),
            "inputs": product.input_ids, "outputs": [product.product_id],
            "execution_parameters": json.loads(json.dumps(params, default=str))}]},
    )
    with ExitStack() as stack:
        inputs = _local_inputs(product, stack, settings.scratch)
        try:
            tree = processor.produce(inputs, target, **settings.params)
        except BaseException:
            _remove(url, options)
            raise
    thumbnail = None
    image = processor.quicklook(tree)
    if image is not None:
        thumbnail = f"{base}.png"
        fs, path = fsspec.core.url_to_fs(thumbnail, **options)
        fs.pipe_file(path, png_bytes(image))
    in_keys = [(str(item["id"]), layout.item_key(input_collection, str(item["id"]),
                                                  layout.item_datetime(item)))
               for item in product.inputs]
    item = stac.product_item(
        tree.attrs["stac_discovery"], item_key=product.item_key, product_href=_href(url),
        variables=processor.main_variables(tree),
        thumbnail_href=_href(thumbnail) if thumbnail else None, inputs=in_keys,
        title=processor.title or processor.name)
    CatalogWriter(store).upsert_items(output_collection, [item])
    return product.item_key


def _remove(url: str, options: Mapping[str, Any]) -> None:
    """Drop a half-written product; what cannot be removed is overwritten next time."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the real error
        log.warning("could not remove partial product %s: %s", url, redact(str(exc)))


def process_window(processor: Processor, template: CollectionTemplate, start: datetime,
                   stop: datetime, *, store: Store, settings: ProcessingSettings,
                   progress: Progress | None = None) -> RunRecord:
    """Process every product of one window of ``template``'s collection; record the run."""
    out = settings.output_collection or output_collection_id(template.id, processor)
    _versioned_output(out, processor, settings)
    record = RunRecord(stage=STAGE, collection=out, start=iso(start), stop=iso(stop),
                       started=now())
    counts = {"inputs": 0, "other_inputs": 0, "products": 0, "processed": 0,
              "already_processed": 0, "failed": 0, "not_staged": 0}
    with recording(store, record, counts):
        items = window_items(store, template.id, start, stop)
        if items is None:
            raise RspyError(f"{template.id} {record.start}..{record.stop} is not ingested yet")
        staged = []
        for item in items:
            if not processor.accepts(item):
                counts["other_inputs"] += 1
            elif state.is_staged(item):
                staged.append(item)
            else:
                counts["not_staged"] += 1
                record.rejected.append(Rejection(str(item["id"]), "inputs not staged"))
        counts["inputs"] = len(staged)
        params = {**processor.parameters, **settings.params}
        planned = plan_products(processor, staged, output_collection=out, params=params)
        counts["products"] = len(planned)
        todo = []
        linked = linked_items(store, out, planned)
        for product in planned:
            if product_done(store, product, processor, linked):
                counts["already_processed"] += 1
                record.items.append(product.item_key)
            else:
                todo.append(product)
        if todo:
            writer = CatalogWriter(store)
            writer.ensure_collection(stac.output_collection(
                collection_id=out, input_collection=template.collection_dict(),
                processor_name=processor.name, processor_title=processor.title,
                version=processor.version, level=processor.level,
                product_type=processor.product_type,
                versioned=settings.version_of is not None))
            with dask_client(settings.scheduler):
                for done, product in enumerate(todo, 1):
                    try:
                        record.items.append(run_product(
                            processor, product, store=store, input_collection=template.id,
                            output_collection=out, settings=settings))
                        counts["processed"] += 1
                    except Exception as exc:  # one bad product must not stop the window
                        reason = redact(f"{type(exc).__name__}: {exc}")
                        record.rejected.append(Rejection(product.product_id, reason))
                        counts["failed"] += 1
                        log.warning("product %s failed: %s", product.product_id, reason)
                    if progress:
                        progress(done, len(todo))
        if settings.version_of is not None:
            # Also when nothing was to do: a crash after the products may have left the
            # series unlinked, and linking an already linked series writes nothing.
            link_versions(store, settings.version_of)
        failed = counts["failed"] + counts["not_staged"]
        record.status = FAILED if failed else COMPLETE
        if failed:
            record.error = (f"{counts['failed']} of {counts['products']} products failed, "
                            f"{counts['not_staged']} inputs not staged (see rejected)")
    log.info("process %s %s %s..%s: %s", processor.name, out, record.start[:10],
             record.stop[:10], counts)
    return record


def scratch_dir(path: str | None) -> str:
    """The scratch directory for input copies (created), default the system temp dir."""
    directory = Path(path or tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory)
