"""How one ``TrainingConfig`` field is declared and checked on its own: its TOML section,
help text, range and choices; sd-scripts' TOML types (integers must be TOML integers,
booleans TOML booleans, ...); the ``"key=value"`` entries of the ``*_args`` lists; resolutions.

Checks that involve several fields live in ``config_rules.py``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

from tuilora.errors import UserError


def opt(
    default: Any,
    section: str,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A config field with the metadata validation, TOML sections and help text read."""
    meta = {
        "section": section,
        "help": help,
        "min": min,
        "max": max,
        "min_exclusive": min_exclusive,
        "choices": choices,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def check_field(spec: dataclasses.Field[Any], value: Any) -> None:
    """Type, range and choices of one field; the message names the key."""
    name, meta = spec.name, spec.metadata
    expected = _expected_kind(spec)
    if value is None:
        if "None" not in str(spec.type):
            raise UserError(f"{name} must be set ({meta['help']})")
        return
    if not _is_kind(value, expected):
        raise UserError(f"{name} must be {_kind_phrase(expected)}, got {value!r}")
    if expected in ("int", "float", "number"):
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value!r}")
        low, high = meta["min"], meta["max"]
        too_low = low is not None and (value <= low if meta["min_exclusive"] else value < low)
        if too_low or (high is not None and value > high):
            raise UserError(f"{name} {value!r} is out of range: allowed {_range_phrase(meta)}")
    choices = meta["choices"]
    if choices is not None and value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise UserError(f"{name} {value!r} is not allowed: choose one of {allowed}")


def _expected_kind(spec: dataclasses.Field[Any]) -> str:
    text = str(spec.type)
    if text.startswith("list[float]"):
        return "floats"
    if text.startswith("list"):
        return "list"
    if text.startswith("bool"):
        return "bool"
    if text.startswith("int | float"):
        return "number"
    if text.startswith("int | str"):
        return "resolution"
    if text.startswith("int"):
        return "int"
    if text.startswith("float"):
        return "float"
    return "str"


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind in ("float", "number"):
        return isinstance(value, int | float)
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "floats":
        return isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        )
    if kind == "resolution":
        return isinstance(value, int | str)
    return isinstance(value, str)


def _kind_phrase(kind: str) -> str:
    return {
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
        "number": "a number",
        "list": 'a list of "key=value" strings',
        "floats": "a list of numbers",
        "resolution": 'a whole number or "W,H"',
        "str": "text",
    }[kind]


def _range_phrase(meta: Mapping[str, Any]) -> str:
    low, high = meta["min"], meta["max"]
    op = ">" if meta["min_exclusive"] else ">="
    if low is not None and high is not None:
        return f"{op} {low:g} and <= {high:g}"
    if low is not None:
        return f"{op} {low:g}"
    return f"<= {high:g}"


#: Fields sd-scripts reads as floats, where a TOML integer (``network_alpha = 8``) is fine.
FLOAT_FIELDS = frozenset(
    {
        "learning_rate",
        "unet_lr",
        "text_encoder_lr",
        "network_alpha",
        "noise_offset",
        "adaptive_noise_scale",
        "ip_noise_gamma",
        "multires_noise_discount",
        "huber_c",
        "huber_scale",
        "v_pred_like_loss",
        "lr_scheduler_power",
        "lr_scheduler_min_lr_ratio",
        "token_warmup_step",
    }
)


def coerce(key: str, value: Any) -> Any:
    """Accept the harmless spellings sd-scripts users write; keep everything else as given."""
    if key in FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key == "text_encoder_lr" and isinstance(value, list):
        # sd-scripts takes a list (one LR per text encoder); tuilora trains them alike.
        if len(value) == 0:
            return None
        if all(item == value[0] for item in value):  # (items may be unhashable lists)
            return coerce(key, value[0])
        raise UserError(
            f"text_encoder_lr {value!r}: tuilora uses one learning rate for all text encoders;"
            " give a single number"
        )
    if key == "base_weights_multiplier" and isinstance(value, list):
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    if key == "max_token_length" and value is None:
        return 75
    return value


def normalize_resolution(value: int | str) -> int | str:
    """512, "512" and "512,512" become 512; "512,768" stays a "W,H" string."""
    if isinstance(value, int) and not isinstance(value, bool):
        sides = [value]
    else:
        parts = str(value).replace("x", ",").split(",")
        try:
            sides = [int(part.strip()) for part in parts]
        except ValueError:
            raise UserError(
                f'resolution {value!r} is not a resolution: write 512 or "512,768"'
            ) from None
        if len(sides) not in (1, 2):
            raise UserError(f'resolution {value!r} is not a resolution: write 512 or "512,768"')
    for side in sides:
        if not 64 <= side <= 8192:
            raise UserError(f"resolution {value!r} is out of range: each side 64 to 8192")
    if len(sides) == 1 or sides[0] == sides[1]:
        return sides[0]
    return f"{sides[0]},{sides[1]}"


def parse_key_value(entry: str, key: str = "optimizer_args") -> tuple[str, str]:
    """Split one sd-scripts "key=value" entry the way sd-scripts does (once, on '=')."""
    name, sep, value = entry.partition("=")
    if not sep or not name or not value or name != name.strip() or value != value.strip():
        raise UserError(
            f'{key} entry {entry!r} is not "key=value": write e.g. "weight_decay=0.01"'
            " (no spaces around =)"
        )
    if "=" in value:
        raise UserError(f"{key} entry {entry!r} has a second '=': one key=value per entry")
    return name, value


def unknown_key_message(key: str, known: Iterable[str], source: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{source}: unknown key {key!r}{hint}"
