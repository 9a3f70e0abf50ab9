"""Helpers for end-to-end tests: run the CLI as a user would, and work out from the
simulator's ground truth which items an ingest must produce (independently of the
mapping code under test)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import Store
from rspy_batch.templates import CollectionTemplate

CLI = [sys.executable, "-m", "rspy_batch"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def popen_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))


def _strip(name: str) -> str:
    for suffix in (".SAFE.zip", ".zarr.zip", ".EOF", ".TGZ"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _attrs(entity: dict[str, Any]) -> dict[str, Any]:
    return {a["Name"]: a["Value"] for a in entity.get("Attributes") or []}


def _published(entity: dict[str, Any]) -> datetime | None:
    value = entity.get("PublicationDate")
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def expected(truth: list[dict[str, Any]], tpl: CollectionTemplate, start: datetime,
             stop: datetime) -> tuple[set[str], set[str]]:
    """(item ids, rejected entity labels) an ingest of ``tpl`` over the window must give.

    Selection follows the template's query; an entity whose fault makes it unusable
    (a name that is not a safe file name, a missing name or date) must be rejected.
    """
    items: set[str] = set()
    rejected: set[str] = set()
    for e in truth:
        pub = _published(e)
        if pub is None or not start <= pub < stop:
            continue  # a station cannot select it by publication date
        if any(e.get(k) != v for k, v in tpl.fields.items()):
            continue
        if any(_attrs(e).get(k) != v for k, v in tpl.attributes.items()):
            continue
        if tpl.service == "cadip":
            files = e.get("Files") or []
            bad = "SessionId" not in e or any(
                "evil-name" in f["_faults"] or "Name" not in f for f in files)
            (rejected if bad else items).add(e.get("SessionId") or e["Id"])
        else:
            bad = ("evil-name" in e["_faults"] or "Name" not in e or "ContentDate" not in e)
            if bad:
                rejected.add(e.get("Name") or e["Id"])
            else:
                items.add(_strip(e["_name"]))
    return items, rejected


def catalog_item_ids(store: Store, collection: str) -> list[str]:
    """Item ids reachable from the collection (a list: duplicates would show)."""
    from rspy_batch.catalog.reader import iter_items

    return [it["id"] for it in iter_items(store, collection)]


def stac_files(root: Path) -> dict[str, Any]:
    """Every STAC JSON file under a local catalog, parsed (run records excluded)."""
    return {str(p.relative_to(root)): loads(p.read_bytes()) for p in sorted(root.rglob("*.json"))
            if "_rspy" not in p.parts and ".rspy-locks" not in p.parts}
