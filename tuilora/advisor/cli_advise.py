"""``tuilora advise``: turn flag strings into Answers and overrides, recommend, print or write.

Kept out of ``cli.py`` so the click layer only parses; everything here is testable without
click. The table form imports rich lazily; the scripted forms never touch it.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from tuilora.advisor.answers import QUESTIONS, Answers, parse_number
from tuilora.advisor.dataset_facts import DatasetFacts
from tuilora.advisor.export import FORMATS, argv_without, command_header, render_text
from tuilora.advisor.hardware import detect_vram_gb
from tuilora.advisor.recommend import Recommendation, checked_override, recommend
from tuilora.advisor.rules import Warning
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.modelfile.checks import model_advice
from tuilora.parsing import loads_toml


def answers_from_options(options: Mapping[str, Any]) -> Answers:
    """Answers from the raw flag values (strings or None); errors name the flag."""
    values: dict[str, Any] = {}
    for question in QUESTIONS:
        raw = options.get(question.name)
        if raw is None:
            continue
        if question.kind in ("int", "float"):
            values[question.name] = parse_number(question, str(raw))
        elif question.kind == "bool":
            values[question.name] = bool(raw)
        else:
            text = str(raw)
            values[question.name] = text.upper() if question.name == "category" else text.lower()
    if values.get("vram") is None:
        detected = detect_vram_gb()
        values["vram"] = detected if detected is not None else 24.0
        values["vram_source"] = "nvidia-smi" if detected is not None else "assumed"
    return Answers.from_dict(values)


def parse_overrides(entries: Sequence[str]) -> dict[str, Any]:
    """``--set key=value``: the value is read as TOML (numbers, true/false, lists), else text,
    and checked as the config checks it: a bad type or range is one line naming the entry."""
    out: dict[str, Any] = {}
    for entry in entries:
        key, sep, text = entry.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {entry!r}: write KEY=VALUE, e.g. --set noise_offset=0.06")
        if key in out:
            raise UserError(f"--set {key} is given twice: keep one")
        try:
            value: Any = loads_toml(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        try:
            out[key] = checked_override(key, value)
        except UserError as exc:
            shown = entry if entry.isprintable() else repr(entry)  # one line, always
            raise UserError(f"--set {shown}: {exc}") from None
    return out


def model_base(
    answers: Answers, model: str | None, base: str | None
) -> tuple[Answers, list[Warning]]:
    """The family of ``--model`` (read from its header) decides the base advised for; a
    ``--base`` that says otherwise is a warning naming both (tuilora.modelfile.checks)."""
    if not model:
        return answers, []
    advice = model_advice(model, base)
    notes = [Warning(n.id, n.severity, ("G-BASE",), n.message) for n in advice.notes]
    return (answers.replace(base=advice.base) if advice.base else answers), notes


#: Flags that fix a config field, and the field (giving both the flag and ``--set FIELD``
#: is a contradiction, not a precedence question).
FLAG_FIELDS: Final = {
    "rank": ("--rank", "network_dim"),
    "alpha": ("--alpha", "network_alpha"),
    "batch_size": ("--batch-size", "train_batch_size"),
    "model": ("--model", "pretrained_model_name_or_path"),
    "dataset_dir": ("--dataset", "train_data_dir"),
    "output_name": ("--name", "output_name"),
    "output_dir": ("--output-dir", "output_dir"),
}


def check_conflicts(options: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Two flags that answer the same question: one line naming both, exit 2."""
    for option, (flag, key) in FLAG_FIELDS.items():
        if options.get(option) is not None and key in overrides:
            raise UserError(
                f"{flag} {options[option]} and --set {key}={overrides[key]} both set {key}:"
                " give one of them"
            )
    if options.get("images") is not None and options.get("dataset_dir"):
        raise UserError(
            f"--images {options['images']} and --dataset {options['dataset_dir']} both give the"
            " image count: drop --images (the dataset's own count is used)"
        )


def path_overrides(options: Mapping[str, Any]) -> dict[str, Any]:
    """The paths as config fields, absolute, so a written config trains from any folder (a
    model that is not a local path, e.g. a hub name, stays as typed)."""
    pairs = {
        "pretrained_model_name_or_path": options.get("model"),
        "train_data_dir": options.get("dataset_dir"),
        "output_name": options.get("output_name"),
        "output_dir": options.get("output_dir"),
    }
    out = {key: str(value) for key, value in pairs.items() if value}
    for key in ("train_data_dir", "output_dir", "pretrained_model_name_or_path"):
        if key in out:
            path = Path(out[key]).expanduser()
            if key != "pretrained_model_name_or_path" or path.exists():
                out[key] = str(path.absolute())
    return out


def load_dataset(
    path: str,
    caption_extension: str,
    resolution: int,
    subject: str,
    reg_dir: str | None = None,
) -> DatasetFacts:
    """Scan ``--dataset DIR`` (and a regularization folder) for the advisor."""
    from tuilora.advisor.dataset_facts import dataset_facts

    return dataset_facts(
        path,
        caption_extension=caption_extension,
        resolution=resolution,
        subject=subject,
        reg_dir=reg_dir,
    )


def build(options: Mapping[str, Any]) -> Recommendation:
    fmt = str(options.get("fmt") or "table")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    answers, notes = model_base(
        answers_from_options(options), options.get("model"), options.get("base")
    )
    set_values = parse_overrides(options.get("overrides") or ())
    check_conflicts(options, set_values)
    overrides = {**path_overrides(options), **set_values}
    dataset = None
    dataset_dir = options.get("dataset_dir")
    if dataset_dir:
        directory = Path(dataset_dir)
        if not directory.exists():
            raise UserError(f"--dataset {dataset_dir}: no such directory")
        if not directory.is_dir():
            raise UserError(f"--dataset {dataset_dir}: is a file, expected a directory")
        resolution = 1024 if answers.base == "sdxl" else 512
        reg_dir = overrides.get("reg_data_dir")
        if reg_dir is not None and not Path(str(reg_dir)).is_dir():
            raise UserError(f"--set reg_data_dir={reg_dir}: no such directory")
        dataset = load_dataset(
            dataset_dir,
            str(options.get("caption_extension") or ".txt"),
            resolution,
            answers.subject,
            reg_dir=str(reg_dir) if reg_dir is not None else None,
        )
        if dataset.images == 0:
            raise UserError(
                f"--dataset {dataset_dir}: no training images (sd-scripts layout:"
                " DIR/<repeats>_<name>/ with png, jpg, webp or bmp images)"
            )
    processes = _processes(options.get("processes"))
    rec = recommend(answers, overrides=overrides, dataset=dataset, processes=processes, notes=notes)
    rec.training_config()  # validates the result: a bad --set value names its key
    if rec.errors:
        raise UserError(rec.errors[0].message)
    return rec


def _processes(raw: Any) -> int:
    if raw is None:
        return 1
    try:
        value = int(str(raw))
    except ValueError:
        raise UserError(f"--processes must be a whole number, got {raw!r}") from None
    if not 1 <= value <= 64:
        raise UserError(f"--processes must be between 1 and 64, got {value}")
    return value


def run(options: Mapping[str, Any], argv: Sequence[str]) -> int:
    rec = build(options)
    fmt = str(options.get("fmt") or "table")
    explain_field = options.get("explain_field")
    output = options.get("output")
    if explain_field:
        from tuilora.advisor.render import explain, print_renderable

        renderable = explain(rec, str(explain_field))
        if output:
            write_atomic(output, _plain(renderable), overwrite=bool(options.get("force")))
        else:
            print_renderable(renderable)
        return 0
    if fmt == "table":
        from tuilora.advisor.render import print_renderable, recommendation_table

        if output:
            text = _plain(recommendation_table(rec))
            write_atomic(output, text, overwrite=bool(options.get("force")))
            print(f"wrote {output}", file=sys.stderr)
        else:
            print_renderable(recommendation_table(rec))
        return 0
    text = render_text(
        rec,
        fmt,
        command_header(
            ["advise", *argv_without(argv, options=("--output", "-o"), drop=("--force", "advise"))]
        ),
    )
    if output:
        write_atomic(output, text, overwrite=bool(options.get("force")))
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _plain(renderable: Any) -> str:
    """The renderable as plain text for a file (no colour codes, a fixed width)."""
    import io

    from rich.console import Console

    console = Console(record=True, width=100, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()
