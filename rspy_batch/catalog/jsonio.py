"""JSON encoding for catalog files: orjson, indented, keys in insertion order.

Stable bytes matter: an unchanged object re-serialises to identical bytes, which is how
a re-run detects that nothing needs writing.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
