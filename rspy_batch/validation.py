"""Offline STAC validation against pystac's core schemas plus the extension schemas we ship.

Stations and catalog hosts are reachable, but the schema hosts (stac-extensions.github.io,
home.rs-python.eu) are not, so every schema must come from the package. Anything not shipped
is reported as such instead of silently skipped or fetched.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from pystac.errors import STACTypeError, STACValidationError
from pystac.serialization import identify_stac_object
from pystac.stac_object import STACObjectType
from pystac.validation.local_validator import get_local_schema_cache
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

from rspy_batch.errors import RspyError

__all__ = [
    "SchemaNotShipped",
    "OfflineSTACValidator",
    "offline_validator",
    "shipped_schemas",
    "validate_dict",
]

_INDEX_FILE = "index.json"


class SchemaNotShipped(RspyError):
    """A schema URL is neither in pystac's local cache nor vendored in rspy_batch/schemas."""

    def __init__(self, schema_uri: str) -> None:
        super().__init__(
            f"schema {schema_uri} is not shipped with rspy-batch; offline validation cannot "
            "check it (vendor it under rspy_batch/schemas/ and list it in index.json)"
        )
        self.schema_uri = schema_uri


def _normalise_uri(uri: str) -> str:
    # Upstream $ids often end in '#', while stac_extensions lists the bare URL.
    return uri.split("#", 1)[0]


@functools.cache
def _vendored_schemas() -> dict[str, dict[str, Any]]:
    root = importlib.resources.files("rspy_batch") / "schemas"
    index: dict[str, str] = json.loads((root / _INDEX_FILE).read_text(encoding="utf-8"))
    schemas: dict[str, dict[str, Any]] = {}
    for uri, rel_path in index.items():
        node = root
        for part in rel_path.split("/"):
            node = node / part
        schemas[_normalise_uri(uri)] = json.loads(node.read_text(encoding="utf-8"))
    return schemas


@functools.cache
def extension_fields(uri: str, prefix: str) -> frozenset[str]:
    """The ``prefix``-ed field names a vendored extension schema defines (any depth)."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                found.update(k for k in props if k.startswith(prefix))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(_vendored_schemas().get(_normalise_uri(uri), {}))
    return frozenset(found)


def shipped_schemas() -> list[str]:
    """Every schema URL validation can use offline: pystac's core set plus the vendored ones."""
    return sorted({*get_local_schema_cache(), *_vendored_schemas()})


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def _is_rfc3339(instance: object) -> bool:
    # jsonschema only checks date-time when the optional rfc3339-validator is installed,
    # which it is not here; without this a "2024-13-45..." datetime would pass silently.
    if not isinstance(instance, str):
        return True
    match = _RFC3339.match(instance)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        # Leap seconds are legal in RFC 3339 but not in datetime, so clamp before checking.
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_is_rfc3339)
    return checker


class OfflineSTACValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator that never touches the network.

    Unlike the parent, ``date-time`` and ``uuid`` formats are asserted, as STAC's own tooling
    (stac-node-validator) does.
    """

    def __init__(self) -> None:
        super().__init__()
        # Copies: jsonschema never mutates schemas, but callers of schema_cache might.
        self.schema_cache = {
            **get_local_schema_cache(),
            **copy.deepcopy(_vendored_schemas()),
        }
        self._registry: Registry[dict[str, Any]] | None = None
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._format_checker = _format_checker()

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        key = _normalise_uri(schema_uri)
        if key not in self.schema_cache:
            raise SchemaNotShipped(key)
        return self.schema_cache[key]

    @property
    def registry(self) -> Any:
        # The parent rebuilds the registry on every call; ours is fixed, so build it once.
        if self._registry is None:

            def retrieve(uri: str) -> Resource[dict[str, Any]]:
                try:
                    return Resource.from_contents(self._get_schema(uri))
                except SchemaNotShipped as error:
                    raise NoSuchResource(ref=uri) from error

            resources: list[tuple[str, Resource[dict[str, Any]]]] = []
            for uri, contents in self.schema_cache.items():
                resource = Resource.from_contents(contents)
                resources.append((uri, resource))
                # Register under the $id too, so relative $refs resolve even when a file's
                # $id differs from its published URL (processing v1.1.0 says v1.0.0).
                own_id = resource.id()
                if own_id and _normalise_uri(own_id) != uri:
                    resources.append((_normalise_uri(own_id), resource))
            self._registry = Registry(retrieve=retrieve).with_resources(resources)  # type: ignore[call-arg]
        return self._registry

    def _validator(self, schema_uri: str) -> jsonschema.protocols.Validator:
        key = _normalise_uri(schema_uri)
        if key not in self._validators:
            schema = self._get_schema(key)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validators[key] = cls(
                schema, registry=self.registry, format_checker=self._format_checker
            )
        return self._validators[key]

    def iter_errors(
        self, stac_dict: dict[str, Any], schema_uri: str
    ) -> Iterator[jsonschema.exceptions.ValidationError]:
        """All schema errors of ``stac_dict`` against one schema; raises SchemaNotShipped."""
        try:
            yield from self._validator(schema_uri).iter_errors(stac_dict)
        except Unresolvable as error:
            # A $ref into a schema we do not ship: surface our error, not referencing's.
            cause = error.__cause__
            while cause is not None and not isinstance(cause, SchemaNotShipped):
                cause = cause.__cause__
            raise (cause or SchemaNotShipped(str(error))) from error

    def _validate_from_uri(
        self,
        stac_dict: dict[str, Any],
        stac_object_type: STACObjectType,
        schema_uri: str,
        href: str | None = None,
    ) -> None:
        # Same contract as pystac's (raise STACValidationError on the best error), but with
        # cached validators and format assertion.
        errors = list(self.iter_errors(stac_dict, schema_uri))
        if errors:
            msg = f"Validation failed for {stac_object_type} "
            if href is not None:
                msg += f"at {href} "
            if stac_dict.get("id") is not None:
                msg += f"with ID {stac_dict['id']} "
            msg += f"against schema at {schema_uri}"
            best = jsonschema.exceptions.best_match(errors)
            if best is not None:
                msg += "\n" + str(best)
            raise STACValidationError(msg, source=errors) from best


@functools.cache
def offline_validator() -> OfflineSTACValidator:
    """The shared offline validator (schemas parsed once per process)."""
    return OfflineSTACValidator()


def _is_type_mismatch(error: jsonschema.exceptions.ValidationError) -> bool:
    return error.json_path == "$.type" and error.validator in ("const", "enum")


def _leaves(
    error: jsonschema.exceptions.ValidationError,
) -> list[jsonschema.exceptions.ValidationError]:
    # Extension schemas wrap everything in oneOf/anyOf over Item | Collection | Catalog, whose
    # own message ("... is not valid under any of the given schemas") names nothing useful,
    # and jsonschema's best_match tends to pick the "'Collection' was expected" branch.
    if not error.context:
        return [error]
    branches: dict[Any, list[jsonschema.exceptions.ValidationError]] = {}
    for sub in error.context:
        branch = sub.relative_schema_path[0] if sub.relative_schema_path else None
        branches.setdefault(branch, []).append(sub)
    # A branch that failed on the object's "type" describes another kind of STAC object.
    relevant = [
        subs for subs in branches.values() if not any(_is_type_mismatch(e) for e in subs)
    ] or list(branches.values())
    if len(relevant) == 1:
        return [leaf for sub in relevant[0] for leaf in _leaves(sub)]
    best = jsonschema.exceptions.best_match(e for subs in relevant for e in subs)
    return _leaves(best) if best is not None else [error]


def _describe(
    obj_id: str, schema_uri: str, error: jsonschema.exceptions.ValidationError
) -> list[str]:
    out = []
    for leaf in _leaves(error):
        message = leaf.message
        if len(message) > 300:
            message = message[:297] + "..."
        out.append(f"{obj_id}: {schema_uri}: {leaf.json_path}: {message}")
    return out


def validate_dict(obj: dict[str, Any]) -> list[str]:
    """Validate one STAC Item/Collection/Catalog dict offline; return readable errors.

    Checks the core schema for the object's type and ``stac_version`` and every URL in
    ``stac_extensions``. Each message reads ``<id>: <schema>: <json path>: <problem>``; an
    empty list means valid. Links are never followed, so relative hrefs are fine.
    """
    obj_id = str(obj.get("id", "<no id>"))
    try:
        # Same normalisation as pystac (tuples -> lists) and proof the object is plain JSON.
        stac_dict = json.loads(json.dumps(obj))
    except (TypeError, ValueError) as error:
        return [f"{obj_id}: not JSON-serialisable: {error}"]

    try:
        object_type = identify_stac_object(stac_dict).object_type
    except (STACTypeError, KeyError, TypeError, AttributeError) as error:
        return [f"{obj_id}: not a recognisable STAC object: {error}"]
    if object_type not in (STACObjectType.ITEM, STACObjectType.COLLECTION, STACObjectType.CATALOG):
        return [f"{obj_id}: unsupported STAC object type {object_type}"]

    validator = offline_validator()
    messages: list[str] = []
    stac_version = stac_dict.get("stac_version")
    if not isinstance(stac_version, str):
        messages.append(f"{obj_id}: $.stac_version: missing or not a string")
        core_uri = None
    else:
        core_uri = validator.schema_uri_map.get_object_schema_uri(object_type, stac_version)

    extensions = stac_dict.get("stac_extensions", [])
    if not isinstance(extensions, list):
        messages.append(f"{obj_id}: $.stac_extensions: must be an array of schema URLs")
        extensions = []

    for schema_uri in [core_uri, *extensions]:
        if schema_uri is None:
            continue
        if not isinstance(schema_uri, str):
            messages.append(f"{obj_id}: $.stac_extensions: {schema_uri!r} is not a URL")
            continue
        try:
            errors = sorted(validator.iter_errors(stac_dict, schema_uri), key=lambda e: e.json_path)
        except SchemaNotShipped as error:
            messages.append(f"{obj_id}: {error}")
            continue
        for error in errors:
            messages.extend(_describe(obj_id, schema_uri, error))
    return messages
