"""Collection templates (``catalog_templates/*.yaml``): what a collection is and which
station entities belong to it, like RS-PYTHON's ``*_search_config.yaml``.

A template names its station and service and the station query that selects its
entities: ``query.fields`` are top-level entity fields (a scalar is ``eq``, a list is
``in``), ``query.attributes`` are ``Attributes/OData.CSC.*Attribute/any(...)`` terms
(AUXIP/PRIP). ``time_field`` is the field the ingest window applies to.
``staging.key_template`` sets where staged files go (see :mod:`rspy_batch.staging.keys`).
``processors`` lists the processors that run on the collection by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import yaml

from rspy_batch.errors import ConfigError

SERVICES = ("cadip", "auxip", "prip", "lta")
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "catalog_templates"


@dataclass(frozen=True)
class CollectionTemplate:
    id: str
    title: str
    description: str
    station: str
    service: str
    license: str = "other"
    keywords: tuple[str, ...] = ()
    providers: tuple[dict[str, Any], ...] = ()
    summaries: dict[str, Any] = field(default_factory=dict)
    stac_extensions: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    time_field: str = "PublicationDate"
    window_days: float = 7
    links: tuple[dict[str, Any], ...] = ()
    staging: dict[str, Any] = field(default_factory=dict)  # e.g. {"key_template": ...}
    #: processors that run on this collection by default (``rspy-batch demo``, campaigns)
    processors: tuple[str, ...] = ()

    def collection_dict(self) -> dict[str, Any]:
        """The STAC Collection this template describes (extent filled in by the writer)."""
        collection = pystac.Collection(
            id=self.id, title=self.title, description=self.description,
            license=self.license, keywords=list(self.keywords) or None,
            providers=[pystac.Provider.from_dict(p) for p in self.providers] or None,
            summaries=pystac.Summaries(dict(self.summaries)) if self.summaries else None,
            extent=pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                                 pystac.TemporalExtent([[None, None]])),
            stac_extensions=list(self.stac_extensions),
        )
        for link in self.links:
            collection.add_link(pystac.Link.from_dict(link))
        return collection.to_dict(include_self_link=False, transform_hrefs=False)


def template_dir(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get("RSPY_TEMPLATES") or DEFAULT_DIR)


def load_templates(path: str | os.PathLike[str] | None = None) -> dict[str, CollectionTemplate]:
    directory = template_dir(path)
    if not directory.is_dir():
        raise ConfigError(f"template directory {directory} does not exist")
    templates = {}
    for file in sorted(directory.glob("*.yaml")):
        tpl = parse_template(yaml.safe_load(file.read_text()), source=str(file))
        if tpl.id in templates:
            raise ConfigError(f"{file}: collection id {tpl.id!r} defined twice")
        templates[tpl.id] = tpl
    return templates


def get_template(collection_id: str, path: str | os.PathLike[str] | None = None
                 ) -> CollectionTemplate:
    templates = load_templates(path)
    try:
        return templates[collection_id]
    except KeyError:
        known = ", ".join(sorted(templates)) or "none"
        raise ConfigError(f"no template for collection {collection_id!r} "
                          f"(known: {known})") from None


def parse_template(data: Any, source: str = "<template>") -> CollectionTemplate:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a template is a YAML mapping")
    missing = [k for k in ("id", "title", "description", "station", "service") if k not in data]
    if missing:
        raise ConfigError(f"{source}: missing {', '.join(missing)}")
    if data["service"] not in SERVICES:
        raise ConfigError(f"{source}: service must be one of {', '.join(SERVICES)}")
    query = data.get("query") or {}
    known = {"id", "title", "description", "station", "service", "license", "keywords",
             "providers", "summaries", "stac_extensions", "query", "time_field",
             "window_days", "links", "staging", "processors"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
    return CollectionTemplate(
        id=data["id"], title=data["title"], description=data["description"],
        station=data["station"], service=data["service"],
        license=data.get("license", "other"),
        keywords=tuple(data.get("keywords") or ()),
        providers=tuple(data.get("providers") or ()),
        summaries=dict(data.get("summaries") or {}),
        stac_extensions=tuple(data.get("stac_extensions") or ()),
        fields=dict(query.get("fields") or {}),
        attributes=dict(query.get("attributes") or {}),
        time_field=data.get("time_field", "PublicationDate"),
        window_days=float(data.get("window_days", 7)),
        links=tuple(data.get("links") or ()),
        staging=dict(data.get("staging") or {}),
        processors=tuple(data.get("processors") or ()),
    )
