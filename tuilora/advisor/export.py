"""Write a Recommendation as json, tuilora TOML, sd-scripts TOML or an sd-scripts command line.

The table form lives in ``render.py`` (it needs rich); these formats need only the standard
library and tomli-w, so scripting ``tuilora advise --format json`` stays fast.

The sd-scripts forms use sd-scripts' own argument types (DESIGN §3, §11): ``resolution`` as a
"W,H" string, lists of "key=value" strings, booleans only for its store_true flags, no key its
parser does not define, and ``max_token_length`` left out for 75.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import tomli_w

from tuilora.advisor.recommend import Recommendation
from tuilora.config import TrainingConfig, to_toml_dict
from tuilora.errors import UserError
from tuilora.kohya_options import KOHYA_OPTIONS, SDXL_ONLY_OPTIONS

FORMATS: Final = ("table", "json", "toml", "kohya-toml", "kohya-cmd")

#: Paths a runnable sd-scripts config needs, written whenever they are known.
PATH_KEYS: Final = (
    "pretrained_model_name_or_path",
    "train_data_dir",
    "reg_data_dir",
    "output_dir",
    "output_name",
)
#: What each form cannot train without, with the words a note uses for it. sd-scripts has
#: no default output folder; tuilora train uses runs/<output_name>.
_NEEDED: Final = {
    "pretrained_model_name_or_path": "the base model",
    "train_data_dir": "the dataset folder",
    "output_dir": "where the LoRA files go",
}
_NEEDED_BY_TUILORA: Final = ("pretrained_model_name_or_path", "train_data_dir")
#: Where tuilora train puts a run without output_dir (the kohya forms write it out).
DEFAULT_RUNS_DIR: Final = "runs"


def script_for(base_type: str) -> str:
    """SDXL configs are for sdxl_train_network.py, SD1/SD2 ones for train_network.py."""
    return "sdxl_train_network.py" if base_type == "sdxl" else "train_network.py"


def kohya_values(config: TrainingConfig, keys: Iterable[str]) -> dict[str, Any]:
    """``keys`` of ``config`` as sd-scripts reads them from a TOML file."""
    out: dict[str, Any] = {}
    sdxl = config.base_type == "sdxl"
    for key in keys:
        kind = KOHYA_OPTIONS.get(key)
        if kind is None or (key in SDXL_ONLY_OPTIONS and not sdxl):
            continue  # not an sd-scripts option for this script: it would be ignored silently
        value = getattr(config, key)
        if value is None or value == []:
            continue  # an empty list means the same as none to sd-scripts
        if key == "resolution":
            width, height = config.resolution_wh()
            value = f"{width},{height}"
        elif key == "max_token_length":
            if value == 75:
                continue  # sd-scripts' default; its parser accepts only 150 and 225
        elif key == "clip_skip" and sdxl:
            continue  # sd-scripts warns that clip_skip does not work for SDXL
        out[key] = _kohya_typed(key, kind, value)
    return out


def _kohya_typed(key: str, kind: str, value: Any) -> Any:
    if kind == "flag":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind in ("float", "floats"):
        return float(value)
    if kind == "int_or_float":
        return value
    if kind == "strs":
        return [str(item) for item in value]
    return str(value)


def _config_with_paths(
    rec: Recommendation, *, kohya: bool
) -> tuple[TrainingConfig, list[str], dict[str, str]]:
    """The config with its paths absolute (a written file must train from any folder), the
    path keys to write, and sd-scripts-only values: ``logging_dir`` (tuilora logs into the
    run folder itself, so it is not a TrainingConfig field) under the output folder."""
    config = rec.training_config()
    changes: dict[str, Any] = {}
    for key in ("train_data_dir", "reg_data_dir", "output_dir"):
        value = getattr(config, key)
        if value is not None:
            changes[key] = str(Path(value).expanduser().absolute())
    model = config.pretrained_model_name_or_path
    if model is not None and Path(model).expanduser().exists():
        changes["pretrained_model_name_or_path"] = str(Path(model).expanduser().absolute())
    extra: dict[str, str] = {}
    if kohya:
        output_dir = changes.get("output_dir")
        if output_dir is None and config.output_name:
            output_dir = str(Path(DEFAULT_RUNS_DIR, config.output_name).absolute())
            changes["output_dir"] = output_dir
        if output_dir is not None:
            extra["logging_dir"] = str(Path(output_dir, "logs"))
    config = config.replace(**changes) if changes else config
    keys = [key for key in PATH_KEYS if getattr(config, key) is not None]
    return config, [*keys, *rec.config], extra


def processes(rec: Recommendation) -> int:
    return int(rec.plan.get("processes") or 1)


def accelerate_launch(count: int) -> list[str]:
    """``accelerate launch`` with the data-parallel flags when several processes train (the
    plan divided the steps by them: launched on one GPU the run would take longer)."""
    parts = ["accelerate", "launch"]
    if count > 1:
        parts += ["--multi_gpu", "--num_processes", str(count)]
    return parts


def missing_note(config: TrainingConfig, *, kohya: bool) -> str:
    """ "Add before training: ..." for what the file cannot train without ("" when complete)."""
    needed = _NEEDED if kohya else {key: _NEEDED[key] for key in _NEEDED_BY_TUILORA}
    missing = [f"{key} ({words})" for key, words in needed.items() if not getattr(config, key)]
    return "Add before training: " + ", ".join(missing) if missing else ""


def to_json(rec: Recommendation) -> str:
    return json.dumps(rec.to_json(), indent=2, ensure_ascii=False) + "\n"


def to_tuilora_toml(rec: Recommendation, header: str = "") -> str:
    """tuilora's own TOML: the advisor's keys plus tuilora's [tuilora] table, in sections."""
    config, keys, _ = _config_with_paths(rec, kohya=False)
    wanted = {"base_type", "network_type", *keys}
    sections = {
        section: {key: value for key, value in values.items() if key in wanted}
        for section, values in to_toml_dict(config).items()
    }
    body = tomli_w.dumps({name: values for name, values in sections.items() if values})
    train = "tuilora train THIS_FILE"
    if processes(rec) > 1:
        train += f" --processes {processes(rec)}"
    notes = [header, f"Train with: {train}", missing_note(config, kohya=False)]
    return _comment("\n".join(n for n in notes if n)) + body


def to_kohya_toml(rec: Recommendation, header: str = "") -> str:
    """A file ``train_network.py --config_file`` accepts as is."""
    config, keys, extra = _config_with_paths(rec, kohya=True)
    values = {**kohya_values(config, keys), **extra}
    launch = " ".join(accelerate_launch(processes(rec)))
    notes = [
        header,
        f"For sd-scripts: {launch} {script_for(config.base_type)} --config_file THIS_FILE",
        missing_note(config, kohya=True),
    ]
    return _comment("\n".join(n for n in notes if n)) + tomli_w.dumps(values)


def to_kohya_cmd(rec: Recommendation) -> str:
    """The equivalent ``accelerate launch ... train_network.py --key=value ...`` line, then a
    comment line saying what to add when a path is missing."""
    config, keys, extra = _config_with_paths(rec, kohya=True)
    note = missing_note(config, kohya=True)
    line = kohya_command(config, keys, processes(rec), extra)
    return line + "\n" + (f"# {note}\n" if note else "")


def kohya_command(
    config: TrainingConfig,
    keys: Iterable[str],
    processes: int = 1,
    extra: Mapping[str, str] | None = None,
) -> str:
    parts = [*accelerate_launch(processes), "--num_cpu_threads_per_process", "8"]
    parts.append(script_for(config.base_type))
    for key, value in {**kohya_values(config, keys), **(extra or {})}.items():
        kind = KOHYA_OPTIONS[key]
        if kind == "flag":
            if value:
                parts.append(f"--{key}")
        elif kind == "strs":
            if value:  # nargs="*": the entries follow as separate words
                parts.append(f"--{key}")
                parts.extend(shlex.quote(item) for item in value)
        else:
            parts.append(shlex.quote(f"--{key}={_cli_value(value)}"))
    return " ".join(parts)


def _cli_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _comment(text: str) -> str:
    if not text:
        return ""
    return "".join(f"# {line}\n" if line else "#\n" for line in text.splitlines()) + "\n"


def render_text(rec: Recommendation, fmt: str, header: str = "") -> str:
    """Any non-table format as text."""
    if fmt == "json":
        return to_json(rec)
    if fmt == "toml":
        return to_tuilora_toml(rec, header)
    if fmt == "kohya-toml":
        return to_kohya_toml(rec, header)
    if fmt == "kohya-cmd":
        return to_kohya_cmd(rec)
    raise UserError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")


def command_header(argv: Iterable[str], extra: Mapping[str, str] | None = None) -> str:
    """The comment on top of a written config: how it was made, and that it is a start."""
    lines = ["Made by: tuilora " + " ".join(shlex.quote(a) for a in argv)]
    lines.append("The guide's numbers are starting points: train, test, then adjust.")
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def argv_without(
    argv: Iterable[str], *, options: Iterable[str], drop: Iterable[str] = ()
) -> list[str]:
    """The command as typed, for a file's header: without the output options (and their
    values, as ``--opt V`` or ``--opt=V``) and without the words in ``drop``."""
    with_value = set(options)
    dropped = set(drop)
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in with_value:
            skip = True
        elif arg.split("=", 1)[0] in with_value or arg in dropped:
            continue
        else:
            out.append(arg)
    return out
