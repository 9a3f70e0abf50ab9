"""The processor registry: built-ins and third-party processors through entry points.

A processor is registered under the ``rspy_batch.processors`` entry-point group, the way
xarray finds backends::

    [options.entry_points]
    rspy_batch.processors =
        my-proc = my_package.module:MyProcessor
"""

from __future__ import annotations

from importlib.metadata import entry_points

from rspy_batch.errors import ConfigError
from rspy_batch.processing.base import Processor

GROUP = "rspy_batch.processors"


def available() -> dict[str, str]:
    """Processor name -> ``module:attr`` of every registered processor."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def get_processor(name: str) -> Processor:
    """An instance of the processor registered as ``name``."""
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(available())) or "none"
        raise ConfigError(f"unknown processor {name!r} (registered: {known})")
    try:
        cls = matches[0].load()
    except Exception as exc:  # a broken plug-in names itself, not a traceback
        raise ConfigError(f"processor {name!r} ({matches[0].value}) failed to load: {exc}") \
            from exc
    processor = cls()
    if not isinstance(processor, Processor):
        raise ConfigError(f"processor {name!r} ({matches[0].value}) is not a Processor")
    return processor
