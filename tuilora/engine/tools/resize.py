"""``tuilora tools resize FILE --dim N [--conv-dim M] --out X``: a LoRA at a lower rank.

As sd-scripts' ``networks/resize_lora.py`` (fixed rank): each module's up·down is
re-factored by SVD at min(N, its rank) (``--conv-dim`` for 3x3 convs, default N), no clamp,
and alpha = old alpha/rank × new rank so the strength stays what it was. The SVD works on
the factors (QR, then a small SVD). The report gives the share of each module's ‖ΔW‖² the
new rank keeps (sd-scripts' verbose "fro retained" is its square root) and the overall one;
at the full rank it is 100% and the file applies exactly the same change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from tuilora.engine.tools.loras import (
    LoraInput,
    ModuleResult,
    lora_factors,
    module_shapes,
    require_computable,
)
from tuilora.engine.tools.lowrank import product_factors
from tuilora.engine.tools.outputs import check_output, save_lora_file
from tuilora.lorafile.lora import read_lora
from tuilora.lorafile.safetensors_io import SafetensorsFile


@dataclass
class ResizeReport:
    out: Path
    old_ranks: list[int]
    dim: int
    conv_dim: int | None
    modules: list[ModuleResult] = field(default_factory=list)

    @property
    def energy(self) -> float:
        total = sum(m.total for m in self.modules)
        return sum(m.energy * m.total for m in self.modules) / total if total > 0 else 1.0


def resize_lora(
    path: str | Path,
    out: str | Path,
    *,
    dim: int,
    conv_dim: int | None = None,
    save_precision: str | None = None,
    device: str = "cpu",
    force: bool = False,
) -> ResizeReport:
    out_path = check_output(out, force=force)
    lora = read_lora(path)
    require_computable(LoraInput(lora, 1.0), additive_only=True, tool="resize")
    old_ranks = sorted({m.rank for m in lora.modules.values() if m.rank is not None})
    report = ResizeReport(out_path, old_ranks, dim, conv_dim)
    tensors: dict[str, torch.Tensor] = {}
    alphas: set[float] = set()
    with SafetensorsFile(lora.path) as file:
        for name, module in lora.modules.items():
            up, down = lora_factors(file, module)
            wanted = conv_dim if module.is_conv3x3 and conv_dim else dim
            factors = product_factors(up, down, min(wanted, module.rank or wanted), device=device)
            alpha = module.scale * factors.rank
            alphas.add(alpha)
            report.modules.append(ModuleResult(name, factors.rank, factors.energy, factors.total))
            shape_up, shape_down = module_shapes(module, factors.rank)
            tensors[f"{name}.lora_up.weight"] = factors.up.reshape(shape_up)
            tensors[f"{name}.lora_down.weight"] = factors.down.reshape(shape_down)
            tensors[f"{name}.alpha"] = torch.tensor(alpha)
    metadata = dict(lora.metadata)
    old = str(old_ranks[-1]) if old_ranks else "?"
    conv = f" (conv: {conv_dim})" if conv_dim and conv_dim != dim else ""
    comment = metadata.get("ss_training_comment", "")
    metadata["ss_training_comment"] = f"dimension is resized from {old} to {dim}{conv}; {comment}"
    metadata["ss_network_dim"] = str(dim)
    metadata["ss_network_alpha"] = f"{alphas.pop():g}" if len(alphas) == 1 else "Dynamic"
    save_lora_file(out_path, tensors, metadata, save_precision)
    return report
