"""Sample prompt files in sd-scripts' syntax (``sample_prompts``), without torch.

A ``.txt`` file holds one prompt per line; blank lines and lines starting with ``#`` are
skipped. A line is the prompt, then options, each introduced by `` --`` (space, two
dashes) as sd-scripts splits them (``train_util.line_to_prompt_dict``)::

    tuidemo, red circle, masterpiece --n lowres, blurry --w 512 --h 768 --s 28 --l 7 --d 42

``--n`` negative prompt, ``--w`` / ``--h`` size, ``--s`` steps, ``--l`` CFG scale, ``--d``
seed, ``--ss`` sampler for this prompt. Options are case-insensitive and the value is the
rest of the segment. ``.json`` (a list of strings or objects) and ``.toml`` (``[prompt]``
defaults with ``[[prompt.subset]]`` entries) files use sd-scripts' key names
(``negative_prompt``, ``width``, ``height``, ``sample_steps``, ``scale``, ``seed``,
``sample_sampler``).

Where sd-scripts is silent about a mistake, this module says so instead: sd-scripts skips
an option it cannot read (``--w big``), clamps steps to 1..1000 and ignores unknown options
(``--ar 16:9`` stays out of the prompt and does nothing); here each is a ``UserError``
naming the file and line. sd-scripts also treats an indented ``#`` line as a prompt; here
any line whose first non-blank character is ``#`` is a comment. Options sd-scripts reads
only for other model families (``--g``, ``--cn``, ``--ctr``, ``--rcfg``, ``--fs``) are kept
in ``ignored`` so the caller can mention them.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tuilora.config import SAMPLE_SAMPLERS
from tuilora.errors import UserError
from tuilora.parsing import loads_json, loads_toml

#: sd-scripts' defaults where a line gives no value (``sample_image_inference``).
DEFAULT_STEPS: Final = 30
DEFAULT_SCALE: Final = 7.5
MAX_STEPS: Final = 1000
#: Sizes are rounded down to a multiple of 8, and at least 64, as sd-scripts does.
SIZE_MULTIPLE: Final = 8
MIN_SIZE: Final = 64

OPTIONS: Final = ("n", "w", "h", "s", "l", "d", "ss")
#: Read by sd-scripts for FLUX / SD3 / ControlNet sampling; no meaning for SD1/SD2/SDXL.
IGNORED_OPTIONS: Final = ("g", "cn", "ctr", "rcfg", "fs")
#: The sd-scripts keys of a ``.json`` / ``.toml`` entry, and the option each one is.
DICT_KEYS: Final = {
    "prompt": "prompt",
    "negative_prompt": "n",
    "width": "w",
    "height": "h",
    "sample_steps": "s",
    "scale": "l",
    "seed": "d",
    "sample_sampler": "ss",
    "guidance_scale": "g",
    "controlnet_image": "cn",
    "cfg_trunc_ratio": "ctr",
    "renorm_cfg": "rcfg",
    "flow_shift": "fs",
    "enum": "",
    "subset": "",
}


@dataclass(frozen=True)
class SamplePrompt:
    """One prompt; None where the file gave no value (the sampler fills in defaults)."""

    prompt: str
    negative: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    scale: float | None = None
    seed: int | None = None
    sampler: str | None = None
    #: Position in the file (0-based), used in image names as sd-scripts does.
    index: int = 0
    #: ``FILE:LINE`` (or ``FILE[#N]`` for json/toml entries), for messages.
    origin: str = ""
    ignored: tuple[str, ...] = field(default=())

    def size(self, default_width: int, default_height: int) -> tuple[int, int]:
        """(width, height) in pixels, rounded as sd-scripts rounds them."""
        return (
            round_size(self.width if self.width is not None else default_width),
            round_size(self.height if self.height is not None else default_height),
        )


def round_size(pixels: int) -> int:
    return max(MIN_SIZE, pixels - pixels % SIZE_MULTIPLE)


def parse_prompt_line(line: str, *, origin: str = "prompt", index: int = 0) -> SamplePrompt:
    """One line of a prompt file (or a ``--prompt`` flag value) in sd-scripts syntax."""
    # A leading space lets a line that starts with options ("--n x") split like the rest.
    head, *segments = f" {line.strip()}".split(" --")
    prompt = head.strip()
    if not prompt:
        raise UserError(f"{origin}: no prompt before the options (write the prompt first)")
    values: dict[str, str] = {}
    for segment in segments:
        name, _, value = segment.strip().partition(" ")
        if not name:
            raise UserError(f"{origin}: an empty option ' --' (give e.g. --n, --w, --s)")
        values[name.lower()] = value.strip()
    return _build(prompt, values, origin, index)


def _build(prompt: str, values: dict[str, str], origin: str, index: int) -> SamplePrompt:
    ignored = []
    for name in values:
        if name in IGNORED_OPTIONS:
            ignored.append(f"--{name}")
        elif name not in OPTIONS:
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise UserError(
                f"{origin}: unknown option --{name}{hint}; sd-scripts prompts take --n, --w,"
                " --h, --s, --l, --d and --ss"
            )
    for name in OPTIONS:
        if name in values and not values[name]:
            raise UserError(f"{origin}: --{name} needs a value")
    sampler = values.get("ss")
    if sampler is not None:
        sampler = sampler.lower()
        if sampler not in SAMPLE_SAMPLERS:
            raise UserError(
                f"{origin}: --ss {sampler!r} is not a sampler; choose one of"
                f" {', '.join(SAMPLE_SAMPLERS)}"
            )
    steps = _integer(values, "s", origin, minimum=1)
    if steps is not None and steps > MAX_STEPS:
        raise UserError(f"{origin}: --s {steps}: at most {MAX_STEPS} steps")
    return SamplePrompt(
        prompt=prompt,
        negative=values.get("n"),
        width=_integer(values, "w", origin, minimum=1),
        height=_integer(values, "h", origin, minimum=1),
        steps=steps,
        scale=_number(values, "l", origin),
        seed=_integer(values, "d", origin, minimum=0),
        sampler=sampler,
        index=index,
        origin=origin,
        ignored=tuple(ignored),
    )


def _integer(values: dict[str, str], name: str, origin: str, *, minimum: int) -> int | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{origin}: --{name} {raw!r} must be a whole number") from None
    if value < minimum:
        raise UserError(f"{origin}: --{name} {value} must be at least {minimum}")
    return value


def _number(values: dict[str, str], name: str, origin: str) -> float | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{origin}: --{name} {raw!r} must be a number such as 7.5") from None
    if not 0 <= value < float("inf"):
        raise UserError(f"{origin}: --{name} {raw!r} must be a number of 0 or more")
    return value


def parse_prompt_text(text: str, source: str) -> list[SamplePrompt]:
    """Every prompt of a text file's content; ``source`` names the file in messages."""
    prompts: list[SamplePrompt] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        prompts.append(parse_prompt_line(line, origin=f"{source}:{number}", index=len(prompts)))
    return prompts


def parse_prompt_entries(entries: list[Any], source: str) -> list[SamplePrompt]:
    """Prompts from a json/toml list: strings in line syntax, or objects of sd-scripts keys."""
    prompts = []
    for index, entry in enumerate(entries):
        origin = f"{source}[#{index + 1}]"
        if isinstance(entry, str):
            prompts.append(parse_prompt_line(entry, origin=origin, index=index))
        elif isinstance(entry, dict):
            prompts.append(_from_mapping(entry, origin, index))
        else:
            raise UserError(f"{origin}: expected a prompt string or an object with 'prompt'")
    return prompts


def _from_mapping(entry: dict[str, Any], origin: str, index: int) -> SamplePrompt:
    for key in entry:
        if key not in DICT_KEYS:
            close = difflib.get_close_matches(str(key), list(DICT_KEYS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"{origin}: unknown key {key!r}{hint}")
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError(f"{origin}: 'prompt' must be a non-empty string")
    values = {
        option: str(value)
        for key, value in entry.items()
        if (option := DICT_KEYS[key]) and key != "prompt"
    }
    return _build(prompt.strip(), values, origin, index)


def load_prompts(path: str | Path) -> list[SamplePrompt]:
    """The prompts of a ``sample_prompts`` file (.txt lines, .json or .toml as sd-scripts)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"sample_prompts {path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"sample_prompts {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"sample_prompts {path}: cannot read ({exc.strerror})") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        prompts = parse_prompt_entries(_json_list(text, path), str(path))
    elif suffix == ".toml":
        prompts = parse_prompt_entries(_toml_list(text, path), str(path))
    else:
        prompts = parse_prompt_text(text, str(path))
    if not prompts:
        raise UserError(f"sample_prompts {path}: no prompts in the file (one per line)")
    return prompts


def _json_list(text: str, path: Path) -> list[Any]:
    try:
        data = loads_json(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"sample_prompts {path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise UserError(f"sample_prompts {path}: expected a JSON list of prompts")
    return data


def _toml_list(text: str, path: Path) -> list[Any]:
    """sd-scripts: ``[prompt]`` holds defaults, each ``[[prompt.subset]]`` one prompt."""
    try:
        data = loads_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"sample_prompts {path}: not valid TOML ({exc})") from None
    table = data.get("prompt")
    if not isinstance(table, dict) or not isinstance(table.get("subset"), list):
        raise UserError(
            f"sample_prompts {path}: expected a [prompt] table with [[prompt.subset]] entries"
        )
    defaults = {key: value for key, value in table.items() if key != "subset"}
    entries: list[Any] = []
    for subset in table["subset"]:
        entries.append({**defaults, **subset} if isinstance(subset, dict) else subset)
    return entries
