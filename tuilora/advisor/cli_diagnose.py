"""``tuilora diagnose`` and ``tuilora runs --history``: flag values in, findings and files out.

Kept out of ``cli.py`` so the click layer only parses (as ``cli_advise``): ``run`` takes the
raw option values (strings, flags, None) and returns the exit code. The table form imports
rich lazily; ``--format json`` never touches it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tuilora.advisor.diagnose import STRENGTHS, Observations
from tuilora.advisor.diagnose_history import history, render_history
from tuilora.advisor.diagnose_inputs import load_input, run_diagnosis
from tuilora.advisor.diagnose_output import check_targets, header_for, to_json_text, write_next
from tuilora.advisor.export import argv_without
from tuilora.errors import UserError

FORMATS: Final = ("table", "json")


def observations_from_options(options: Mapping[str, Any]) -> Observations:
    """Observations from the raw flag values; errors name the flag."""
    strength = options.get("strength")
    if strength is not None:
        strength = str(strength).strip().lower()
        if strength not in STRENGTHS:
            raise UserError(f"--strength {strength!r}: choose one of {', '.join(STRENGTHS)}")
    observations = Observations(
        strength=strength,
        unet=_number(options.get("unet"), "--unet"),
        te=_number(options.get("te"), "--te"),
        noise=bool(options.get("noise")),
        object=str(options["object"]) if options.get("object") else None,
        overfit_from_start=bool(options.get("overfit_from_start")),
        one_checkpoint=bool(options.get("one_checkpoint")),
        epoch=_integer(options.get("epoch"), "--epoch"),
    )
    observations.validate()
    return observations


def _number(raw: Any, flag: str) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UserError(f"{flag} {raw!r}: give a number such as 0.5") from None
    if not math.isfinite(value):
        raise UserError(f"{flag} {raw!r}: give a finite number")
    return value


def _integer(raw: Any, flag: str) -> int | None:
    if raw is None:
        return None
    try:
        return int(str(raw))
    except ValueError:
        raise UserError(f"{flag} {raw!r}: give a whole number such as 7") from None


def run(options: Mapping[str, Any], argv: Sequence[str] = ()) -> int:
    """``tuilora diagnose [RUN] [--config F | --lora F] [observations] [--format] [--write]``."""
    fmt = str(options.get("fmt") or "table")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    observations = observations_from_options(options)
    source = load_input(options.get("run"), options.get("config"), options.get("lora"))
    diagnosis = run_diagnosis(source, observations)
    target = options.get("write")
    if target:
        check_targets(diagnosis, source, str(target), force=bool(options.get("force")))
    if fmt == "json":
        sys.stdout.write(to_json_text(diagnosis))
    else:
        from tuilora.advisor.diagnose_render import diagnosis_view
        from tuilora.advisor.render import print_renderable

        print_renderable(diagnosis_view(diagnosis, source.notes))
    if target:
        written = write_next(
            diagnosis,
            observations,
            source,
            str(target),
            force=bool(options.get("force")),
            header=header_for(["diagnose", *_typed(argv)], source),
        )
        print(f"wrote {written.config}", file=sys.stderr)
        if written.lineage is not None:
            print(f"wrote {written.lineage}", file=sys.stderr)
    return 0


def history_run(options: Mapping[str, Any]) -> int:
    """``tuilora runs --history [ROOT]``: the chain of runs with diffs and outcomes."""
    root = str(options.get("root") or "runs")
    sys.stdout.write(render_history(history(root), root))
    return 0


def _typed(argv: Sequence[str]) -> list[str]:
    """The command as typed, for the written file's header (without --write/--force)."""
    return argv_without(argv, options=("--write",), drop=("--force", "diagnose"))
