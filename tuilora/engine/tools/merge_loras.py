"""``tuilora tools merge --lora A:0.8 --lora B:0.5 --out C [--dim N]``: LoRAs into one LoRA.

Without ``--dim`` the ranks are concatenated: each module's factors stack, each LoRA's
ratio × alpha/rank folded into its own (√|c| on both, the sign on ``down``), alpha = the new
rank. The result applies exactly the sum of the inputs at their ratios (sd-scripts'
``merge_lora.py --concat`` keeps the first file's alpha instead, which changes the scale).

With ``--dim`` (and ``--conv-dim`` for 3x3 convs) each module's summed change is
re-factored at that rank by SVD, as sd-scripts' ``svd_merge_lora.py``: quantile clamp,
alpha = the new rank; the report says how much of each module's change the rank keeps.
The SVD works on the stacked factors (QR, then a small SVD), never on the full ΔW.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tuilora.engine.tools.loras import (
    LoraInput,
    ModuleResult,
    lora_factors,
    module_shapes,
    read_inputs,
    require_computable,
)
from tuilora.engine.tools.lowrank import Factors, product_factors
from tuilora.engine.tools.outputs import check_output, lora_metadata, save_lora_file
from tuilora.errors import UserError
from tuilora.lorafile.inspect_lora import lora_family
from tuilora.lorafile.lora import LoraModule
from tuilora.lorafile.safetensors_io import SafetensorsFile
from tuilora.modelfile.family import FAMILY_NAMES


@dataclass
class LoraMergeReport:
    out: Path
    family: str
    mode: str  # "concat" or "svd"
    loras: list[tuple[Path, float]]
    modules: list[ModuleResult] = field(default_factory=list)

    @property
    def energy(self) -> float:
        total = sum(m.total for m in self.modules)
        return sum(m.energy * m.total for m in self.modules) / total if total > 0 else 1.0


def merge_loras(
    lora_specs: list[str],
    out: str | Path,
    *,
    dim: int | None = None,
    conv_dim: int | None = None,
    clamp_quantile: float = 0.99,
    save_precision: str | None = None,
    device: str = "cpu",
    force: bool = False,
) -> LoraMergeReport:
    out_path = check_output(out, force=force)
    inputs = read_inputs(lora_specs)
    for item in inputs:
        require_computable(item, additive_only=True, tool="merge")
    family = _common_family(inputs)
    mode = "svd" if dim is not None else "concat"
    report = LoraMergeReport(out_path, family, mode, [(i.path, i.ratio) for i in inputs])
    files = {item.path: SafetensorsFile(item.path) for item in inputs}
    tensors: dict[str, torch.Tensor] = {}
    try:
        for name, parts in _modules(inputs).items():
            ups, downs = [], []
            for item, module in parts:
                up, down = lora_factors(files[item.path], module)
                coefficient = item.ratio * module.scale
                root = math.sqrt(abs(coefficient))
                ups.append(up * root)
                downs.append(down * (root if coefficient >= 0 else -root))
            up, down = torch.cat(ups, dim=1), torch.cat(downs, dim=0)
            module = parts[0][1]
            if dim is not None:
                rank = conv_dim if module.is_conv3x3 and conv_dim else dim
                factors = product_factors(
                    up, down, rank, clamp_quantile=clamp_quantile, device=device
                )
            else:
                factors = Factors(up, down, kept=1.0, total=1.0)
            report.modules.append(ModuleResult(name, factors.rank, factors.energy, factors.total))
            shape_up, shape_down = module_shapes(module, factors.rank)
            tensors[f"{name}.lora_up.weight"] = factors.up.reshape(shape_up)
            tensors[f"{name}.lora_down.weight"] = factors.down.reshape(shape_down)
            tensors[f"{name}.alpha"] = torch.tensor(float(factors.rank))
    finally:
        for file in files.values():
            file.close()
    ranks = sorted({m.rank for m in report.modules})
    rank_text = str(ranks[0]) if len(ranks) == 1 else "Dynamic"
    recipe = ", ".join(f"{path.name} ({ratio:g})" for path, ratio in report.loras)
    args = {"conv_dim": str(conv_dim), "conv_alpha": str(float(conv_dim))} if conv_dim else None
    metadata = lora_metadata(
        family,
        dim=rank_text,
        alpha=rank_text if rank_text == "Dynamic" else str(float(ranks[0])),
        title=out_path.stem,
        network_args=args,
        extra={
            "ss_training_comment": f"merged by tuilora ({mode}) from {recipe}",
            "tuilora_merged_loras": [
                {"file": path.name, "ratio": ratio} for path, ratio in report.loras
            ],
        },
    )
    save_lora_file(out_path, tensors, metadata, save_precision)
    return report


def _common_family(inputs: list[LoraInput]) -> str:
    found: dict[str, Path] = {}
    for item in inputs:
        family, _, _ = lora_family(item.lora)
        if family is not None:
            found.setdefault(family, item.path)
    if len(found) > 1:
        described = ", ".join(f"{path.name} is {FAMILY_NAMES[f]}" for f, path in found.items())
        raise UserError(f"the LoRAs are for different base models ({described})")
    return next(iter(found), "sd1")


def _modules(inputs: list[LoraInput]) -> dict[str, list[tuple[LoraInput, LoraModule]]]:
    """Each module name (in first-seen order) with the inputs that have it; shapes must agree."""
    modules: dict[str, list[tuple[LoraInput, LoraModule]]] = {}
    for item in inputs:
        for name, module in item.lora.modules.items():
            parts = modules.setdefault(name, [])
            if parts and _shape(parts[0][1]) != _shape(module):
                raise UserError(
                    f"{item.path}: {name} has another shape than in {parts[0][0].path}"
                    " (LoRAs for different base models?)"
                )
            parts.append((item, module))
    return modules


def _shape(module: LoraModule) -> tuple[int, int, tuple[int, ...] | None]:
    return module.out_features, module.in_features, module.kernel if module.is_conv3x3 else None
