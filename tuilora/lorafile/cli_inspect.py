"""``tuilora tools inspect FILE [--model M] [--format table|json]`` (no torch, no safetensors).

Exit 0; 1 when ``--model`` is given and the LoRA does not fit it; 2 for a bad file.
"""

from __future__ import annotations

import json

from tuilora.errors import UserError
from tuilora.lorafile.inspect_lora import inspect_lora
from tuilora.lorafile.modelkeys import open_model_keys


def run_inspect(file: str, *, model: str | None, fmt: str) -> int:
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not one of: table, json")
    model_keys = open_model_keys(model) if model else None
    report = inspect_lora(file, model_keys)
    if fmt == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        from rich.console import Console

        from tuilora.lorafile.render import inspection_renderable

        Console().print(inspection_renderable(report))
    return 1 if report.fit is not None and not report.fit.fits else 0
