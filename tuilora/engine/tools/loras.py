"""LoRA inputs of merge and resize: ``FILE:RATIO`` arguments, the kinds each tool accepts,
and plain LoRA factors as 2-D torch tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from tuilora.engine.tools.sources import tensor_from_bytes
from tuilora.errors import UserError
from tuilora.lorafile.deltas import unsupported
from tuilora.lorafile.lora import LoraFile, LoraModule, read_lora
from tuilora.lorafile.safetensors_io import SafetensorsFile


@dataclass(frozen=True)
class ModuleResult:
    name: str
    rank: int
    energy: float
    total: float


@dataclass
class LoraInput:
    lora: LoraFile
    ratio: float

    @property
    def path(self) -> Path:
        return self.lora.path


def parse_lora_spec(text: str) -> tuple[Path, float]:
    """``path/to/file.safetensors:0.8`` -> (path, 0.8); without ``:RATIO`` the ratio is 1."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            ratio = float(tail)
        except ValueError:
            raise UserError(f"--lora {text}: the ratio after ':' must be a number") from None
        if not math.isfinite(ratio):
            raise UserError(f"--lora {text}: the ratio must be a finite number")
        return Path(head), ratio
    return Path(text), 1.0


def read_inputs(specs: list[str]) -> list[LoraInput]:
    if not specs:
        raise UserError("give at least one --lora FILE[:RATIO]")
    inputs = []
    for spec in specs:
        path, ratio = parse_lora_spec(spec)
        if not path.is_file():
            raise UserError(f"--lora {path}: no such file")
        inputs.append(LoraInput(read_lora(path), ratio))
    return inputs


def require_computable(item: LoraInput, *, additive_only: bool, tool: str) -> None:
    """UserError naming the first module ``tool`` cannot handle."""
    for module in item.lora.modules.values():
        reason = unsupported(module)
        if reason is None and additive_only and module.kind != "lora":
            reason = f"{module.kind} modules (only plain LoRA/LoCon factors can be {tool}d)"
        if reason is None and additive_only and "lora_mid.weight" in module.params:
            reason = "Tucker-decomposed LoCon modules"
        if reason:
            raise UserError(f"{item.path}: {module.name}: tuilora cannot {tool} {reason}")


def lora_factors(file: SafetensorsFile, module: LoraModule) -> tuple[torch.Tensor, torch.Tensor]:
    """(up (out, r), down (r, in·kh·kw)) of a plain LoRA module, float32."""
    tensors = []
    for part in ("lora_up.weight", "lora_down.weight"):
        info = module.params[part]
        raw = file.read_bytes(f"{module.name}.{part}")
        tensor = tensor_from_bytes(raw, info.dtype, info.shape).float()
        tensors.append(tensor.reshape(tensor.shape[0], -1))
    return tensors[0], tensors[1]


def module_shapes(module: LoraModule, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The file shapes of a module's factors at ``rank``: 4-D for convs, as the inputs."""
    down = module.params["lora_down.weight"].shape
    if len(down) == 2:
        return (module.out_features, rank), (rank, down[1])
    return (module.out_features, rank, 1, 1), (rank, *down[1:])
