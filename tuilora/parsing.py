"""TOML and JSON parsing that turns hostile nesting into the decoder's own error.

Python's ``tomllib`` and ``json`` recurse once per nested array or table: a file holding a few
thousand ``[`` raises ``RecursionError`` rather than their own errors, and a few hundred that
still parse can break any later code that walks the value recursively (issue 17). These two
functions parse, then measure the depth without recursion, and raise the decoder's own error
type (``tomllib.TOMLDecodeError`` / ``json.JSONDecodeError``) for both, so each caller's
existing handler, which names the file, covers them too.

No config, run file or LoRA header tuilora reads nests more than a handful of levels;
``MAX_NESTING`` leaves plenty of room above that.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any, Final

#: Arrays and tables inside each other, at most (tuilora's own files use at most 6).
MAX_NESTING: Final = 64

_TOO_DEEP: Final = f"arrays or tables nested more than {MAX_NESTING} levels deep"


def loads_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads``; a too-deep nesting is a ``TOMLDecodeError`` too."""
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(_TOO_DEEP) from None
    if nesting_depth(value) > MAX_NESTING:
        raise tomllib.TOMLDecodeError(_TOO_DEEP)
    return value


def loads_json(text: str | bytes) -> Any:
    """``json.loads``; a too-deep nesting is a ``JSONDecodeError`` too."""
    doc = text if isinstance(text, str) else ""
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(_TOO_DEEP, doc, 0) from None
    if nesting_depth(value) > MAX_NESTING:
        raise json.JSONDecodeError(_TOO_DEEP, doc, 0)
    return value


def nesting_depth(value: Any) -> int:
    """How many lists and dicts sit inside each other in ``value`` (0 for a scalar); walked
    with an explicit stack, so any depth is measured without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth  # deep enough to refuse: no need to walk the rest
        stack.extend((child, depth) for child in children)
    return deepest
