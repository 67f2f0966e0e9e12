"""Config values as text in the review table, and typed text back to values.

The review step shows every config field on one line and lets the user type a new value.
Parsing follows the field's type in ``TrainingConfig`` (numbers such as ``1e-4``, whole
numbers, true/false, ``key=value`` lists, ``512`` or ``512,768``); range checks are left to
``TrainingConfig`` and the advisor, which name the key in their messages.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Final

from tuilora.config import TrainingConfig
from tuilora.errors import UserError

_TRUE: Final = frozenset({"true", "yes", "on", "1", "y"})
_FALSE: Final = frozenset({"false", "no", "off", "0", "n"})
_TYPES: Final = {spec.name: str(spec.type) for spec in dataclasses.fields(TrainingConfig)}


def show(value: Any) -> str:
    """A value as the user would type it back (the inverse of ``parse``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)


def parse(key: str, text: str) -> Any:
    """Typed text for config field ``key``; UserError naming the key when it cannot be read."""
    kind = _TYPES.get(key)
    if kind is None:
        raise UserError(f"{key}: not a config field")
    text = text.strip()
    optional = "None" in kind
    if not text:
        if optional or kind.startswith("list"):
            return [] if kind.startswith("list") else None
        raise UserError(f"{key} needs a value")
    if kind.startswith("bool"):
        word = text.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise UserError(f"{key} must be true or false, got {text!r}")
    if kind.startswith("list"):
        # entries are "key=value" without spaces; values may hold commas (betas=0.9,0.999)
        return text.split()
    if kind.startswith("int | str"):
        return text.replace("x", ",").replace(" ", "")
    if kind.startswith("int | float"):
        try:
            return int(text)  # a step count; anything else is a fraction of the steps
        except ValueError:
            return _number(key, text)
    if kind.startswith("int"):
        number = _number(key, text)
        if not number.is_integer():
            raise UserError(f"{key} must be a whole number, got {text!r}")
        return int(number)
    if kind.startswith("float"):
        return _number(key, text)
    return text


def _number(key: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise UserError(f"{key} must be a number such as 1e-4 or 0.0001, got {text!r}") from None
    if not math.isfinite(number):
        raise UserError(f"{key} must be a finite number, got {text!r}")
    return number


def short_path(path: str | os.PathLike[str], cwd: str | None = None) -> str:
    """A path as short as it reads unambiguously: relative to the working folder when it is
    inside it, else with ``~`` for the home folder, else as it is."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text
    here = cwd or os.getcwd()
    try:
        if os.path.commonpath([here, text]) == here:
            return os.path.relpath(text, here)
    except ValueError:
        pass  # other drive (Windows)
    home = os.path.expanduser("~")
    if home not in ("", "/", "~") and os.path.commonpath([home, text]) == home:
        return "~" + text[len(home) :]
    return text


def short_paths_in(text: str, cwd: str | None = None) -> str:
    """Free text (a warning, a dataset problem) with absolute paths under the working folder
    made relative and those under the home folder written with ``~``, as ``short_path``."""
    here = (cwd or os.getcwd()).rstrip(os.sep)
    if here:
        text = text.replace(here + os.sep, "")
    home = os.path.expanduser("~").rstrip(os.sep)
    if home and home != "~":
        text = text.replace(home + os.sep, "~" + os.sep)
    return text
