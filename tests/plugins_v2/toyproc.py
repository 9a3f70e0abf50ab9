"""Version 0.2.0 of the test processor ``tests/plugins/toyproc.py`` (same algorithm): putting
``tests/plugins_v2`` on the path instead models the processor team upgrading the package
(``tests/test_versions.py``, ``tests/test_campaign.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Both versions are a module named ``toyproc``, so 0.1.0 is loaded from its file.
_SPEC = importlib.util.spec_from_file_location(
    "toyproc_0_1_0", Path(__file__).resolve().parent.parent / "plugins" / "toyproc.py")
assert _SPEC is not None and _SPEC.loader is not None
_V1 = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_V1)


class ToyBytes(_V1.ToyBytes):
    version = "0.2.0"
