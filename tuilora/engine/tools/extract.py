"""``tuilora tools extract``: a LoRA from the difference between a base and a tuned model.

sd-scripts' ``networks/extract_lora_from_models.py``, layer by layer: for each module an
sd-scripts LoRA would have on the base (LierLa; with ``conv_dim`` also the 3x3 convs,
C3Lier), ΔW = tuned − base, SVD, keep ``dim`` (``conv_dim`` for 3x3 convs) singular
directions, quantile clamp, alpha = the module's rank (scale 1). The text encoders are
extracted only when some weight differs by more than ``min_diff`` (sd-scripts' test: the
largest absolute difference), and the report says which way it went.

Each weight is read, differenced and decomposed on its own, so memory stays at one layer
plus the growing LoRA, whatever the models' size. The two models may be in different
layouts (a diffusers folder and an original single file): both are named by LoRA module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tuilora.engine.tools.lowrank import as_lora_shapes, flat, svd_factors
from tuilora.engine.tools.outputs import (
    check_output,
    describe_source,
    lora_metadata,
    save_lora_file,
)
from tuilora.engine.tools.sources import ModelSource, open_model
from tuilora.errors import UserError
from tuilora.lorafile.modelkeys import Target
from tuilora.modelfile.family import FAMILY_NAMES

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LayerResult:
    name: str
    rank: int
    #: Share of ‖ΔW‖² the kept singular values hold (before the clamp).
    energy: float
    #: ‖ΔW‖² of the layer (weights the overall figure).
    total: float
    #: ‖ΔW − up·down‖ / ‖ΔW‖ of the saved factors (after the clamp).
    error: float


@dataclass
class ExtractReport:
    out: Path
    family: str
    dim: int
    conv_dim: int | None
    text_encoder: bool
    text_encoder_max_diff: float
    min_diff: float
    layers: list[LayerResult] = field(default_factory=list)

    @property
    def energy(self) -> float:
        total = sum(layer.total for layer in self.layers)
        kept = sum(layer.energy * layer.total for layer in self.layers)
        return kept / total if total > 0 else 1.0

    @property
    def error(self) -> float:
        """Relative error of the whole extracted change: √(Σ err²·‖ΔW‖² / Σ ‖ΔW‖²)."""
        total = sum(layer.total for layer in self.layers)
        residual = sum(layer.error**2 * layer.total for layer in self.layers)
        return math.sqrt(residual / total) if total > 0 else 0.0


def extract_lora(
    base: str | Path,
    tuned: str | Path,
    out: str | Path,
    *,
    dim: int,
    conv_dim: int | None = None,
    clamp_quantile: float = 0.99,
    min_diff: float = 0.01,
    save_precision: str | None = None,
    device: str = "cpu",
    allow_pickle: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> ExtractReport:
    out_path = check_output(out, force=force)
    with (
        open_model(base, allow_pickle=allow_pickle, flag="--base") as base_model,
        open_model(tuned, allow_pickle=allow_pickle, flag="--tuned") as tuned_model,
    ):
        pairs = _pairs(base_model, tuned_model, conv=conv_dim is not None)
        text = [pair for pair in pairs if not _is_unet(pair[0])]
        largest = _largest_difference(base_model, tuned_model, text)
        report = ExtractReport(
            out=out_path,
            family=base_model.family,
            dim=dim,
            conv_dim=conv_dim,
            text_encoder=largest > min_diff,
            text_encoder_max_diff=largest,
            min_diff=min_diff,
        )
        chosen = pairs if report.text_encoder else [p for p in pairs if _is_unet(p[0])]
        tensors: dict[str, torch.Tensor] = {}
        for index, (base_target, tuned_target) in enumerate(chosen):
            if progress:
                progress(base_target.name, index, len(chosen))
            difference = (
                tuned_model.read(tuned_target.slot).float()
                - base_model.read(base_target.slot).float()
            )
            is_3x3 = difference.dim() == 4 and difference.shape[2:] != (1, 1)
            rank = conv_dim if is_3x3 and conv_dim else dim
            matrix = flat(difference)
            del difference
            factors = svd_factors(matrix, rank, clamp_quantile=clamp_quantile, device=device)
            up, down = as_lora_shapes(factors, base_target.slot.weight_shape)
            residual = torch.linalg.matrix_norm(matrix - factors.up @ factors.down)
            norm = math.sqrt(factors.total)
            report.layers.append(
                LayerResult(
                    name=base_target.name,
                    rank=factors.rank,
                    energy=factors.energy,
                    total=factors.total,
                    error=float(residual) / norm if norm > 0 else 0.0,
                )
            )
            tensors[f"{base_target.name}.lora_up.weight"] = up
            tensors[f"{base_target.name}.lora_down.weight"] = down
            tensors[f"{base_target.name}.alpha"] = torch.tensor(float(factors.rank))
        network_args = (
            {"conv_dim": str(conv_dim), "conv_alpha": str(float(conv_dim))} if conv_dim else None
        )
        metadata = lora_metadata(
            report.family,
            dim=str(dim),
            alpha=str(float(dim)),
            title=out_path.stem,
            network_args=network_args,
            extra={
                "ss_sd_model_name": Path(base).name,
                "ss_training_comment": (
                    f"extracted by tuilora from {describe_source(Path(tuned))} against"
                    f" {describe_source(Path(base))}, dim {dim}"
                    + (f", conv_dim {conv_dim}" if conv_dim else "")
                ),
                "tuilora_extract": {
                    "base": describe_source(Path(base)),
                    "tuned": describe_source(Path(tuned)),
                    "clamp_quantile": clamp_quantile,
                    "text_encoder": report.text_encoder,
                    "energy": round(report.energy, 6),
                },
            },
        )
    save_lora_file(out_path, tensors, metadata, save_precision)
    return report


def _pairs(base: ModelSource, tuned: ModelSource, *, conv: bool) -> list[tuple[Target, Target]]:
    """The (base, tuned) weight of every module to extract; UserError when the two models
    are not the same architecture."""
    if base.family != tuned.family:
        raise UserError(
            f"--base is {FAMILY_NAMES[base.family]} and --tuned is {FAMILY_NAMES[tuned.family]};"
            " extract needs two models of the same architecture"
        )
    base_targets = base.keys.targets()
    tuned_targets = tuned.keys.targets()
    pairs: list[tuple[Target, Target]] = []
    for name, target in base_targets.items():
        if not target.in_network(conv=conv):
            continue
        other = tuned_targets.get(name)
        if other is None or other.slot.weight_shape != target.slot.weight_shape:
            shape = "missing" if other is None else f"shape {other.slot.weight_shape}"
            raise UserError(
                f"--tuned has no weight matching --base's {name} {target.slot.weight_shape}"
                f" ({shape}); extract needs two models of the same architecture"
            )
        pairs.append((target, other))
    # Text encoders first (the order sd-scripts' networks list them), then the UNet.
    pairs.sort(key=lambda pair: _is_unet(pair[0]))
    return pairs


def _is_unet(target: Target) -> bool:
    return target.name.startswith("lora_unet_")


def _largest_difference(
    base: ModelSource, tuned: ModelSource, pairs: list[tuple[Target, Target]]
) -> float:
    largest = 0.0
    for base_target, tuned_target in pairs:
        difference = tuned.read(tuned_target.slot).float() - base.read(base_target.slot).float()
        largest = max(largest, float(difference.abs().max()) if difference.numel() else 0.0)
    return largest
