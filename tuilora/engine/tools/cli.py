"""``tuilora tools extract | merge | resize``: click's option values in, a report out.

Click checks the types and ranges; each ``run_*`` checks what is left (the device, flags
that only make sense together) before any model is read, does the work, prints what it
wrote on stdout (``--format json``: the whole report) and returns the exit code. Progress
goes to stderr.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from tuilora.errors import UserError

SHOWN_LAYERS = 5


def _device(value: Any) -> str:
    import torch

    text = str(value or "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserError(f"--device {text!r} is not a torch device (cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {text}: no CUDA GPU is available here")
    return text


class _Progress:
    """``name i/n`` on stderr: rewritten in place on a terminal, every 10% otherwise."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.live = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, name: str, index: int, total: int) -> None:
        if self.live:
            print(f"\r{self.verb} {index + 1}/{total} {name[:60]:<60}", end="", file=sys.stderr)
            if index + 1 >= total:
                print(file=sys.stderr)
        else:
            tenth = (10 * (index + 1)) // max(total, 1)
            if tenth != self.shown:
                self.shown = tenth
                print(f"{self.verb} {index + 1}/{total}", file=sys.stderr, flush=True)


def _json(report: Any) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if is_dataclass(value) and not isinstance(value, type):
            return asdict(value)
        raise TypeError(type(value).__name__)

    data = asdict(report)
    for name in ("energy", "error"):
        if hasattr(report, name):
            data[name] = getattr(report, name)
    return json.dumps(data, indent=2, default=default)


def _energy_lines(layers: Sequence[Any], verbose: bool) -> list[str]:
    """The overall-kept summary's detail: median, the weakest layers (or all with verbose)."""
    if not layers:
        return []
    energies = [layer.energy for layer in layers]
    lines = [f"  per module: median {statistics.median(energies):.1%}, lowest {min(energies):.1%}"]
    ordered = layers if verbose else sorted(layers, key=lambda layer: layer.energy)[:SHOWN_LAYERS]
    if not verbose:
        lines.append("  lowest:")
    lines += [f"    {layer.energy:7.2%}  rank {layer.rank:<4} {layer.name}" for layer in ordered]
    return lines


def run_extract(options: Mapping[str, Any]) -> int:
    fmt, dim, conv_dim = options["fmt"], options["dim"], options["conv_dim"]
    quantile = options["clamp_quantile"]
    device = _device(options["device"])
    from tuilora.engine.tools.extract import extract_lora

    report = extract_lora(
        options["base"],
        options["tuned"],
        options["out"],
        dim=dim,
        conv_dim=conv_dim,
        clamp_quantile=quantile,
        min_diff=options["min_diff"],
        save_precision=options["save_precision"],
        device=device,
        allow_pickle=bool(options["allow_pickle"]),
        force=bool(options["force"]),
        progress=_Progress("extract"),
    )
    if fmt == "json":
        print(_json(report))
        return 0
    from tuilora.modelfile.family import FAMILY_NAMES

    unet = sum(1 for layer in report.layers if layer.name.startswith("lora_unet_"))
    kind = "LoRA-C3Lier" if conv_dim else "LoRA-LierLa"
    conv = f", conv_dim {conv_dim}" if conv_dim else ""
    print(
        f"wrote {report.out}: {kind} for {FAMILY_NAMES[report.family]}, dim {dim}{conv}"
        f" (alpha = rank), {unet} UNet + {len(report.layers) - unet} text encoder modules"
    )
    if report.text_encoder:
        print(
            f"text encoder: extracted (largest difference {report.text_encoder_max_diff:.3g}"
            f" > --min-diff {report.min_diff:g})"
        )
    else:
        print(
            f"text encoder: not extracted, it is the same in both models (largest difference"
            f" {report.text_encoder_max_diff:.3g} <= --min-diff {report.min_diff:g})"
        )
    print(f"kept energy (share of ‖ΔW‖² the rank holds): {report.energy:.2%} overall")
    for line in _energy_lines(report.layers, bool(options["verbose"])):
        print(line)
    clamp = f"clamp quantile {quantile:g}" if quantile < 1 else "no clamp"
    print(f"relative error of the saved LoRA ({clamp}): {report.error:.3%} of ‖ΔW‖")
    return 0


def run_merge(options: Mapping[str, Any]) -> int:
    fmt, precision = options["fmt"], options["save_precision"]
    specs = list(options["lora"] or ())
    if options["base"] is None:
        return _merge_loras(options, specs, precision, fmt)
    if options["dim"] is not None or options["conv_dim"] is not None:
        raise UserError(
            "--dim and --conv-dim re-rank a LoRA+LoRA merge; with --base leave them out"
        )
    from tuilora.engine.tools.merge_model import merge_into_model
    from tuilora.modelfile.family import FAMILY_NAMES

    report = merge_into_model(
        options["base"],
        specs,
        options["out"],
        save_precision=precision,
        allow_pickle=bool(options["allow_pickle"]),
        force=bool(options["force"]),
        progress=_Progress("merge"),
    )
    if fmt == "json":
        print(_json(report))
        return 0
    layout = "original layout" if report.layout == "ldm" else "diffusers folder"
    print(
        f"wrote {report.out} ({FAMILY_NAMES[report.family]}, {layout}):"
        f" {report.weights_changed} weights changed"
    )
    for path, ratio, modules in report.loras:
        print(f"  {path} x {ratio:g} ({modules} modules)")
    return 0


def _merge_loras(
    options: Mapping[str, Any], specs: list[str], precision: str | None, fmt: str
) -> int:
    dim, conv_dim = options["dim"], options["conv_dim"]
    if conv_dim is not None and dim is None:
        raise UserError("--conv-dim needs --dim (the SVD re-rank); without both, ranks concatenate")
    if len(specs) < 2 and dim is None:
        raise UserError(
            "give --base MODEL to merge into a checkpoint, or two or more --lora to merge LoRAs"
        )
    quantile = options["clamp_quantile"]
    device = _device(options["device"])
    from tuilora.engine.tools.merge_loras import merge_loras

    report = merge_loras(
        specs,
        options["out"],
        dim=dim,
        conv_dim=conv_dim,
        clamp_quantile=quantile,
        save_precision=precision,
        device=device,
        force=bool(options["force"]),
    )
    if fmt == "json":
        print(_json(report))
        return 0
    ranks = sorted({module.rank for module in report.modules})
    rank = str(ranks[0]) if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]}"
    how = "ranks concatenated" if report.mode == "concat" else "SVD re-rank"
    print(f"wrote {report.out}: {len(report.modules)} modules, rank {rank} ({how})")
    for path, ratio in report.loras:
        print(f"  {path} x {ratio:g}")
    if report.mode == "svd":
        print(f"kept energy: {report.energy:.2%} of the summed change overall")
        for line in _energy_lines(report.modules, bool(options["verbose"])):
            print(line)
    return 0


def run_resize(options: Mapping[str, Any]) -> int:
    fmt, dim, conv_dim = options["fmt"], options["dim"], options["conv_dim"]
    device = _device(options["device"])
    from tuilora.engine.tools.resize import resize_lora

    report = resize_lora(
        options["file"],
        options["out"],
        dim=dim,
        conv_dim=conv_dim,
        save_precision=options["save_precision"],
        device=device,
        force=bool(options["force"]),
    )
    if fmt == "json":
        print(_json(report))
        return 0
    old = "/".join(str(rank) for rank in reversed(report.old_ranks)) or "?"
    print(f"wrote {report.out}: rank {old} -> {dim}, {len(report.modules)} modules")
    print(f"kept energy: {report.energy:.2%} of ‖ΔW‖² overall")
    for line in _energy_lines(report.modules, bool(options["verbose"])):
        print(line)
    return 0
