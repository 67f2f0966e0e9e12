"""Diagnose's results as text and files: JSON, the next config's TOML, the next run's folder.

No rich here (the table lives in ``diagnose_render.py``), so ``--format json`` stays light.
The next config is written in the form it came in: an sd-scripts TOML (or a LoRA's
metadata) gives a file ``train_network.py --config_file`` accepts; a tuilora config or run
gives tuilora's own TOML.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

import tomli_w

from tuilora.advisor.diagnose import Diagnosis, Observations
from tuilora.advisor.diagnose_history import write_lineage
from tuilora.advisor.diagnose_inputs import DiagnoseInput
from tuilora.advisor.export import kohya_values, script_for
from tuilora.config import TrainingConfig, to_toml_dict
from tuilora.errors import UserError
from tuilora.fileio import check_writable, write_atomic

#: The file the checklist screen writes the next run's config to, inside the next run's
#: folder (config.toml there is the engine's: the resolved config it trains with).
NEXT_CONFIG_NAME: Final = "from-diagnose.toml"


def to_json_text(diagnosis: Diagnosis) -> str:
    return json.dumps(diagnosis.to_json(), indent=2, ensure_ascii=False) + "\n"


def header_for(argv: Sequence[str], source: DiagnoseInput) -> str:
    return "\n".join(
        [
            "Made by: tuilora " + " ".join(shlex.quote(a) for a in argv),
            f"Revised from: {source.source}",
            "The guide's numbers are starting points: train, test, then adjust.",
        ]
    )


def config_toml(
    diagnosis: Diagnosis, *, kohya: bool, header: str = "", raw: Mapping[str, Any] | None = None
) -> str:
    """The revised config as TOML: sd-scripts' form when ``kohya``, else tuilora's.

    With ``raw`` (the user's own sd-scripts file) every key of that file is kept as written
    and only the changed ones are replaced, so options tuilora does not use survive.
    """
    config = diagnosis.config
    comment = "".join(f"# {line}\n" for line in header.splitlines()) + ("\n" if header else "")
    if not kohya:
        return comment + tomli_w.dumps(to_toml_dict(config))
    note = (
        f"# For sd-scripts: accelerate launch {script_for(config.base_type)}"
        " --config_file THIS_FILE\n"
    )
    if raw:
        values = dict(raw)
        for key in diagnosis.changes:
            new = kohya_values(config, [key])
            if key in new:
                values[key] = new[key]
            else:
                values.pop(key, None)
    else:
        keys = ["resolution", *_set_fields(config), *diagnosis.changes]
        values = kohya_values(config, dict.fromkeys(keys))
    return comment + note + tomli_w.dumps(values)


def _set_fields(config: TrainingConfig) -> list[str]:
    """Fields that differ from sd-scripts' defaults: what the user's file must have held."""
    default = TrainingConfig()
    return [
        spec.name
        for spec in fields(config)
        if getattr(config, spec.name) != getattr(default, spec.name)
    ]


@dataclass(frozen=True)
class Written:
    config: Path
    lineage: Path | None


def check_targets(
    diagnosis: Diagnosis, source: DiagnoseInput, path: str | Path, *, force: bool = False
) -> None:
    """Everything ``write_next`` would refuse, checked before anything is printed."""
    check_writable(path, overwrite=force)
    lineage_dir = diagnosis.config.output_dir
    lineage_file = Path(lineage_dir, "lineage.json") if lineage_dir else None
    if source.kind == "run" and lineage_file is not None and lineage_file.exists() and not force:
        raise UserError(f"{lineage_dir}/lineage.json already exists; pass --force")


def write_next(
    diagnosis: Diagnosis,
    observations: Observations,
    source: DiagnoseInput,
    path: str | Path,
    *,
    force: bool = False,
    header: str = "",
) -> Written:
    """``--write NEXT.toml``: the config (atomic; never over a file without ``force``) and,
    when the next run has a folder, its lineage.json."""
    text = config_toml(diagnosis, kohya=source.kohya, header=header, raw=source.raw)
    check_targets(diagnosis, source, path, force=force)
    lineage_dir = diagnosis.config.output_dir
    config_path = write_atomic(path, text, overwrite=force)
    lineage = None
    if lineage_dir and "output_dir" in diagnosis.changes and source.kind == "run":
        lineage = write_lineage(
            lineage_dir,
            source.source,
            diagnosis,
            observations,
            config_file=Path(config_path).resolve(),
            overwrite=force,
        )
    return Written(config=config_path, lineage=lineage)


def start_files(
    diagnosis: Diagnosis, observations: Observations, source: DiagnoseInput, header: str = ""
) -> Written:
    """The checklist's "start next run": the next run's folder with its config and lineage."""
    if source.run is None or not diagnosis.config.output_dir:
        raise UserError("the next run needs a folder: diagnose a run directory")
    run_dir = Path(diagnosis.config.output_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir} already holds files; diagnose again to get a fresh folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    # The engine trains tuilora's TOML; the run it makes should be diagnosable the same way.
    config_path = write_atomic(
        run_dir / NEXT_CONFIG_NAME, config_toml(diagnosis, kohya=False, header=header)
    )
    lineage = write_lineage(
        run_dir, source.source, diagnosis, observations, config_file=config_path.resolve()
    )
    return Written(config=config_path, lineage=lineage)
