"""LoRA-LierLa and LoRA-C3Lier on the modules sd-scripts targets, with sd-scripts' key names.

Each ``LoRAModule`` wraps the ``forward`` of one Linear or Conv2d (the original weights stay
frozen and untouched) and adds ``lora_up(lora_down(x)) * multiplier * alpha / rank``. The
network's ``kohya_state_dict`` is exactly the file sd-scripts writes:
``lora_unet_..._proj_in.lora_down.weight``, ``.lora_up.weight``, ``.alpha``.

Ranks come from a ``RankPlan``: one rank and alpha (``conv_dim`` / ``conv_alpha``, alpha 1.0
when only ``conv_dim`` is given, as sd-scripts), one per block (``network_blocks.py``), or
the ranks and alphas of a file (``dim_from_weights``). ``network_args`` ``rank_dropout`` /
``module_dropout`` and the LoRA+ ratios work as in sd-scripts' ``networks/lora.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuilora.engine.naming import ModelNaming
from tuilora.engine.network import (
    TEXT_ENCODER_TARGETS,
    UNET_CONV_TARGETS,
    UNET_TARGETS,
    NetworkBase,
    TargetCounts,
    find_targets,
)
from tuilora.engine.network_blocks import BlockRanks, block_index


def _assemble(
    name: str, modules: Iterable[nn.Module], lr: float, plus_ratio: float | None
) -> list[dict[str, Any]]:
    """One LR group of ``modules``, and with LoRA+ a second (``name plus``) holding the
    ``lora_up`` weights at ``lr * plus_ratio`` (sd-scripts' ``assemble_params``)."""
    plain: list[nn.Parameter] = []
    plus: list[nn.Parameter] = []
    for module in modules:
        for param_name, param in module.named_parameters():
            (plus if plus_ratio is not None and "lora_up" in param_name else plain).append(param)
    out = []
    for params, suffix, rate in ((plain, "", lr), (plus, " plus", lr * (plus_ratio or 1.0))):
        if params and rate:
            for param in params:
                param.requires_grad_(True)
            out.append({"params": params, "lr": rate, "name": name + suffix})
    return out


class LoRAModule(nn.Module):
    """A low-rank delta beside one Linear/Conv2d; the original module is not replaced."""

    lora_down: nn.Linear | nn.Conv2d
    lora_up: nn.Linear | nn.Conv2d
    alpha: torch.Tensor

    def __init__(
        self,
        name: str,
        original: nn.Module,
        rank: int,
        alpha: float,
        dropout: float | None = None,
        rank_dropout: float | None = None,
        module_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.lora_name = name
        self.rank = rank
        if isinstance(original, nn.Conv2d):
            self.lora_down = nn.Conv2d(
                original.in_channels,
                rank,
                original.kernel_size,  # type: ignore[arg-type]
                original.stride,  # type: ignore[arg-type]
                original.padding,  # type: ignore[arg-type]
                bias=False,
            )
            self.lora_up = nn.Conv2d(rank, original.out_channels, 1, 1, bias=False)
        else:
            assert isinstance(original, nn.Linear)
            self.lora_down = nn.Linear(original.in_features, rank, bias=False)
            self.lora_up = nn.Linear(rank, original.out_features, bias=False)
        # sd-scripts: alpha 0 or None means "no damping" (alpha = rank).
        alpha = float(rank) if not alpha else float(alpha)
        self.register_buffer("alpha", torch.tensor(alpha))
        self.scale = alpha / rank
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        self.multiplier = 1.0
        self.dropout = dropout
        self.rank_dropout = rank_dropout
        self.module_dropout = module_dropout
        # Kept outside the module tree so the state dict holds only the LoRA weights.
        self._original = [original]
        self._original_forward: Any = None

    @property
    def original(self) -> nn.Module:
        return self._original[0]

    def apply_to(self) -> None:
        if self._original_forward is None:
            self._original_forward = self.original.forward
            self.original.forward = self.forward

    def remove(self) -> None:
        if self._original_forward is not None:
            self.original.forward = self._original_forward
            self._original_forward = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self._original_forward(x)
        if self.multiplier == 0:
            return base
        # sd-scripts' order: module dropout skips the whole delta, then neuron dropout on
        # the rank activations, then rank dropout (scaled up as if the rank were smaller).
        # The draws use torch's global RNG, which the loop seeds per step.
        dropping = self.module_dropout is not None and self.training
        if dropping and float(torch.rand(1)) < (self.module_dropout or 0.0):
            return base
        hidden = self.lora_down(x.to(self.lora_down.weight.dtype))
        if self.dropout is not None and self.training:
            hidden = nn.functional.dropout(hidden, p=self.dropout)
        scale = self.scale
        if self.rank_dropout is not None and self.training:
            mask = torch.rand((hidden.size(0), self.rank), device=hidden.device) > self.rank_dropout
            if hidden.dim() == 3:
                mask = mask.unsqueeze(1)  # (batch, tokens, rank)
            elif hidden.dim() == 4:
                mask = mask.unsqueeze(-1).unsqueeze(-1)  # (batch, rank, h, w)
            hidden = hidden * mask
            scale = self.scale / (1.0 - self.rank_dropout)
        delta = self.lora_up(hidden) * (self.multiplier * scale)
        return base + delta.to(base.dtype)

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """up @ down x scale in the original module's weight shape (for merging)."""
        up, down = self.lora_up.weight.float(), self.lora_down.weight.float()
        if down.dim() == 2:
            weight = up @ down
        elif down.shape[2:] == (1, 1):
            weight = (up.flatten(1) @ down.flatten(1)).unsqueeze(2).unsqueeze(3)
        else:
            weight = nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3)
        return weight * self.scale

    @torch.no_grad()
    def merge_into_original(self, multiplier: float) -> None:
        """Add this delta to the original module's weight for good (sd-scripts' merge_to)."""
        weight = self.original.weight
        assert isinstance(weight, torch.Tensor)
        weight.add_((self.delta_weight() * multiplier).to(weight.device, weight.dtype))


@dataclass(frozen=True)
class RankPlan:
    """Which modules get a LoRA, with which rank and alpha (sd-scripts' ``create_network``
    patterns: one rank, plus ``conv_dim`` for 3x3 convs; per block; from a file)."""

    rank: int
    alpha: float
    conv_rank: int | None = None
    conv_alpha: float | None = None
    blocks: BlockRanks | None = None
    is_sdxl: bool = False
    #: dim_from_weights: module name -> (rank, alpha) read from the file; only these train.
    from_file: Mapping[str, tuple[int, float]] | None = None

    @property
    def convs(self) -> bool:
        """Whether 3x3 convs (ResNets, samplers) are targets at all."""
        if self.from_file is not None or self.conv_rank is not None:
            return True
        return self.blocks is not None and self.blocks.conv_dims is not None

    def unet(self, name: str, is_3x3: bool) -> tuple[int, float] | None:
        if self.from_file is not None:
            return self.from_file.get(name)
        if self.blocks is not None:
            return self.blocks.for_module(block_index(name, self.is_sdxl), is_3x3)
        if not is_3x3:
            return self.rank, self.alpha
        if self.conv_rank is None:
            return None
        return self.conv_rank, 1.0 if self.conv_alpha is None else self.conv_alpha

    def text(self, name: str) -> tuple[int, float] | None:
        if self.from_file is not None:
            return self.from_file.get(name)
        return self.rank, self.alpha


@dataclass(frozen=True)
class Dropouts:
    """network_dropout (neuron), and network_args rank_dropout / module_dropout."""

    neuron: float | None = None
    rank: float | None = None
    module: float | None = None


@dataclass(frozen=True)
class LearningRates:
    """LR shaping of sd-scripts' ``prepare_optimizer_params``: LoRA+ ratios (the up weights
    train at lr x ratio) and per-block LR weights of the UNet."""

    unet_plus: float | None = None
    text_encoder_plus: float | None = None
    block_weights: list[float] | None = None


class LoRANetwork(NetworkBase):
    """All LoRA modules of one model, keyed by their sd-scripts names."""

    def __init__(
        self,
        unet: nn.Module | None,
        text_encoders: Sequence[nn.Module],
        naming: ModelNaming,
        plan: RankPlan,
        dropouts: Dropouts = Dropouts(),
        rates: LearningRates = LearningRates(),
    ) -> None:
        super().__init__()
        self.unet_loras = nn.ModuleDict()
        self.te_loras = nn.ModuleDict()
        self._te_counts: list[int] = []
        self.rates = rates
        self.is_sdxl = plan.is_sdxl

        def add(group: nn.ModuleDict, name: str, module: nn.Module, rank_alpha: Any) -> None:
            if rank_alpha is not None:
                rank, alpha = rank_alpha
                group[name] = LoRAModule(
                    name, module, rank, alpha, dropouts.neuron, dropouts.rank, dropouts.module
                )

        if unet is not None:
            targets = UNET_TARGETS + (UNET_CONV_TARGETS if plan.convs else ())
            for path, module in find_targets(unet, targets, conv3x3=plan.convs):
                is_3x3 = isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)
                name = naming.unet_name(path)
                add(self.unet_loras, name, module, plan.unet(name, is_3x3))
        for index, encoder in enumerate(text_encoders):
            before = len(self.te_loras)
            for path, module in find_targets(encoder, TEXT_ENCODER_TARGETS, conv3x3=False):
                name = naming.text_encoder_name(index, path, encoder)
                add(self.te_loras, name, module, plan.text(name))
            self._te_counts.append(len(self.te_loras) - before)

    def modules_by_name(self) -> dict[str, LoRAModule]:
        out: dict[str, LoRAModule] = {}
        for group in (self.unet_loras, self.te_loras):
            for name, module in group.items():
                assert isinstance(module, LoRAModule)
                out[name] = module
        return out

    def counts(self) -> TargetCounts:
        return TargetCounts(unet=len(self.unet_loras), text_encoders=tuple(self._te_counts))

    def apply_to(self) -> None:
        for module in self.modules_by_name().values():
            module.apply_to()

    def remove(self) -> None:
        for module in self.modules_by_name().values():
            module.remove()

    def set_multiplier(self, value: float) -> None:
        for module in self.modules_by_name().values():
            module.multiplier = value

    def kohya_state_dict(self) -> dict[str, torch.Tensor]:
        """``{lora_name}.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` as sd-scripts."""
        out: dict[str, torch.Tensor] = {}
        for name, module in self.modules_by_name().items():
            out[f"{name}.lora_down.weight"] = module.lora_down.weight.detach()
            out[f"{name}.lora_up.weight"] = module.lora_up.weight.detach()
            out[f"{name}.alpha"] = module.alpha.detach()
        return out

    def load_kohya_state_dict(self, weights: dict[str, torch.Tensor]) -> list[str]:
        """Load matching keys; return the file's keys this network has no module for."""
        modules = self.modules_by_name()
        unknown: list[str] = []
        for key, tensor in weights.items():
            name, _, part = key.partition(".")
            module = modules.get(name)
            if module is None:
                unknown.append(key)
                continue
            if part == "alpha":
                module.alpha.copy_(tensor)
                module.scale = float(tensor) / module.rank
            elif part in ("lora_down.weight", "lora_up.weight"):
                target = getattr(module, part.split(".")[0]).weight
                if target.shape != tensor.shape:
                    raise ValueError(
                        f"{key}: shape {tuple(tensor.shape)} does not match the network's"
                        f" {tuple(target.shape)} (different rank?)"
                    )
                with torch.no_grad():
                    target.copy_(tensor.to(target.dtype))
            else:
                unknown.append(key)
        return unknown

    def param_groups(
        self,
        unet_lr: float | None,
        text_encoder_lr: float | None,
        default_lr: float,
        *,
        train_unet: bool = True,
        train_text_encoder: bool = True,
    ) -> list[dict[str, Any]]:
        """sd-scripts' groups: ``textencoder``, then ``unet`` (or ``unet_block{N}`` with
        per-block LR weights), each followed by its ``plus`` group of up weights with LoRA+.
        None means learning_rate; a group whose LR is 0 is left out, as in sd-scripts."""
        groups: list[dict[str, Any]] = []
        if train_text_encoder:
            lr = default_lr if text_encoder_lr is None else text_encoder_lr
            groups += _assemble(
                "textencoder", self.te_loras.values(), lr, self.rates.text_encoder_plus
            )
        if train_unet:
            lr = default_lr if unet_lr is None else unet_lr
            weights = self.rates.block_weights
            if weights is None:
                groups += _assemble("unet", self.unet_loras.values(), lr, self.rates.unet_plus)
            else:
                by_block: dict[int, list[nn.Module]] = {}
                for name, module in self.unet_loras.items():
                    by_block.setdefault(block_index(name, self.is_sdxl), []).append(module)
                for index, modules in by_block.items():
                    rate = lr * weights[index]
                    groups += _assemble(f"unet_block{index}", modules, rate, self.rates.unet_plus)
        return groups

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float) -> tuple[int, float]:
        """scale_weight_norms: shrink modules whose up @ down norm exceeds ``max_norm``.

        Returns how many modules were scaled and the largest norm seen (logged per step).
        """
        scaled = 0
        largest = 0.0
        for module in self.modules_by_name().values():
            down = module.lora_down.weight.float()
            up = module.lora_up.weight.float()
            if down.dim() == 4:
                down, up = down.flatten(1), up.flatten(1)
            norm = float((up @ down).norm() * module.scale)
            largest = max(largest, norm)
            if norm > max_norm:
                ratio = math.sqrt(max_norm / norm)
                module.lora_down.weight.mul_(ratio)
                module.lora_up.weight.mul_(ratio)
                scaled += 1
        return scaled, largest


def ranks_from_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, float]]:
    """dim_from_weights: each module's rank (rows of ``lora_down``) and alpha (the rank when
    the file has none), as sd-scripts' ``create_network_from_weights`` reads a file."""
    ranks: dict[str, int] = {}
    alphas: dict[str, float] = {}
    for key, value in weights.items():
        if "." not in key:
            continue
        name = key.split(".")[0]
        if "alpha" in key:
            alphas[name] = float(value)
        elif "lora_down" in key:
            ranks[name] = int(value.shape[0])
    return {name: (rank, alphas.get(name, float(rank))) for name, rank in ranks.items()}
