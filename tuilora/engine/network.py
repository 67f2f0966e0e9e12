"""LoRA-LierLa and LoRA-C3Lier on the modules sd-scripts targets, with sd-scripts' key names.

Each ``LoRAModule`` wraps the ``forward`` of one Linear or Conv2d (the original weights stay
frozen and untouched) and adds ``lora_up(lora_down(x)) * multiplier * alpha / rank``. The
network's ``state_dict`` is exactly the file sd-scripts writes:
``lora_unet_..._proj_in.lora_down.weight``, ``.lora_up.weight``, ``.alpha``.

``NetworkBase`` is what the training loop sees; ``build_network`` picks the implementation
from ``network_module``: this file's ``LoRANetwork`` for ``networks.lora``, the LyCORIS
adapter (``network_lycoris.py``) for ``lycoris.kohya``.

Targets (sd-scripts ``networks/lora.py``): inside UNet ``Transformer2DModel`` blocks every
Linear and 1x1 Conv2d; with ``conv_dim`` also every Conv2d inside ``ResnetBlock2D``,
``Downsample2D`` and ``Upsample2D`` (3x3 convs, C3Lier); inside the text encoder's
``CLIPAttention`` / ``CLIPMLP`` every Linear. Names come from ``naming.py``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuilora.config import TrainingConfig, parse_key_value
from tuilora.engine.naming import ModelNaming, naming_for
from tuilora.errors import UserError

UNET_TARGETS = ("Transformer2DModel",)
UNET_CONV_TARGETS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
TEXT_ENCODER_TARGETS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPFlashAttention2", "CLIPMLP")


def lr_groups(
    parts: Iterable[tuple[str, Iterable[nn.Module], float | None, bool]], default_lr: float
) -> list[dict[str, Any]]:
    """Optimizer groups named ``textencoder`` / ``unet`` (the names events and TensorBoard
    show), each part's trainable parameters with its own LR (None: learning_rate)."""
    groups: list[dict[str, Any]] = []
    for name, modules, lr, wanted in parts:
        params = [p for module in modules for p in module.parameters()]
        if wanted and params:
            for param in params:
                param.requires_grad_(True)
            groups.append({"params": params, "lr": default_lr if lr is None else lr, "name": name})
    return groups


class LoRAModule(nn.Module):
    """A low-rank delta beside one Linear/Conv2d; the original module is not replaced."""

    lora_down: nn.Linear | nn.Conv2d
    lora_up: nn.Linear | nn.Conv2d
    alpha: torch.Tensor

    def __init__(
        self, name: str, original: nn.Module, rank: int, alpha: float, dropout: float | None = None
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
        hidden = self.lora_down(x.to(self.lora_down.weight.dtype))
        if self.dropout and self.training:
            hidden = nn.functional.dropout(hidden, p=self.dropout)
        delta = self.lora_up(hidden) * (self.multiplier * self.scale)
        return base + delta.to(base.dtype)


@dataclass(frozen=True)
class TargetCounts:
    unet: int
    text_encoders: tuple[int, ...]


def find_targets(
    root: nn.Module, class_names: Sequence[str], *, conv3x3: bool
) -> Iterable[tuple[str, nn.Module]]:
    """(path, module) of each Linear / 1x1 Conv2d (and 3x3 Conv2d if asked) inside targets."""
    for path, module in root.named_modules():
        if type(module).__name__ not in class_names:
            continue
        for child_path, child in module.named_modules():
            full = f"{path}.{child_path}" if child_path else path
            is_target_conv = isinstance(child, nn.Conv2d) and (
                child.kernel_size == (1, 1) or conv3x3
            )
            if isinstance(child, nn.Linear) or is_target_conv:
                yield full, child


class NetworkBase(nn.Module):
    """The interface the training loop uses, whatever the network type.

    ``state_dict()`` (resume state) and ``kohya_state_dict()`` (the file) may differ in
    their key prefixes; each round-trips through its own loader.
    """

    @abstractmethod
    def modules_by_name(self) -> Mapping[str, nn.Module]: ...

    @abstractmethod
    def counts(self) -> TargetCounts: ...

    @abstractmethod
    def apply_to(self) -> None: ...

    @abstractmethod
    def remove(self) -> None: ...

    @abstractmethod
    def set_multiplier(self, value: float) -> None: ...

    @abstractmethod
    def kohya_state_dict(self) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def load_kohya_state_dict(self, weights: dict[str, torch.Tensor]) -> list[str]: ...

    @abstractmethod
    def param_groups(
        self,
        unet_lr: float | None,
        text_encoder_lr: float | None,
        default_lr: float,
        *,
        train_unet: bool = True,
        train_text_encoder: bool = True,
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    def apply_max_norm(self, max_norm: float) -> tuple[int, float]: ...


class LoRANetwork(NetworkBase):
    """All LoRA modules of one model, keyed by their sd-scripts names."""

    def __init__(
        self,
        unet: nn.Module | None,
        text_encoders: Sequence[nn.Module],
        naming: ModelNaming,
        *,
        rank: int,
        alpha: float,
        conv_rank: int | None = None,
        conv_alpha: float | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.unet_loras = nn.ModuleDict()
        self.te_loras = nn.ModuleDict()
        self._te_counts: list[int] = []
        if unet is not None:
            targets = UNET_TARGETS + (UNET_CONV_TARGETS if conv_rank else ())
            for path, module in find_targets(unet, targets, conv3x3=bool(conv_rank)):
                is_3x3 = isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)
                module_rank = conv_rank if is_3x3 and conv_rank else rank
                module_alpha = (conv_alpha or module_rank) if is_3x3 else alpha
                name = naming.unet_name(path)
                self.unet_loras[name] = LoRAModule(name, module, module_rank, module_alpha, dropout)
        for index, encoder in enumerate(text_encoders):
            before = len(self.te_loras)
            for path, module in find_targets(encoder, TEXT_ENCODER_TARGETS, conv3x3=False):
                name = naming.text_encoder_name(index, path, encoder)
                self.te_loras[name] = LoRAModule(name, module, rank, alpha, dropout)
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
        """One optimizer group per part, each with its own LR (None means learning_rate)."""
        return lr_groups(
            (
                ("textencoder", self.te_loras.values(), text_encoder_lr, train_text_encoder),
                ("unet", self.unet_loras.values(), unet_lr, train_unet),
            ),
            default_lr,
        )

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


def network_args(config: TrainingConfig) -> dict[str, str]:
    """``network_args`` as sd-scripts passes them to a network module: ``{key: "value"}``."""
    return dict(parse_key_value(entry, "network_args") for entry in config.network_args)


def build_network(
    config: TrainingConfig,
    unet: nn.Module,
    text_encoders: Sequence[nn.Module],
    family: str,
    *,
    train_unet: bool,
    train_text_encoder: bool,
) -> NetworkBase:
    """The network ``network_module`` names, over the parts being trained."""
    naming = naming_for(family, unet, len(text_encoders))
    args = network_args(config)
    if config.network_module == "lycoris.kohya":
        from tuilora.engine.network_lycoris import LycorisAdapter

        return LycorisAdapter(
            unet,
            text_encoders,
            naming,
            rank=config.network_dim,
            alpha=config.network_alpha,
            args=args,
            dropout=config.network_dropout,
            train_unet=train_unet,
            train_text_encoder=train_text_encoder,
        )
    if config.network_module != "networks.lora":
        raise UserError(
            f"network_module {config.network_module}: tuilora trains networks.lora (LoRA"
            " LierLa, C3Lier with conv_dim) and lycoris.kohya (algo=locon, loha, lokr, ia3)"
        )
    return LoRANetwork(
        unet if train_unet else None,
        text_encoders if train_text_encoder else [],
        naming,
        rank=config.network_dim,
        alpha=config.network_alpha,
        conv_rank=int(args["conv_dim"]) if "conv_dim" in args else None,
        conv_alpha=float(args["conv_alpha"]) if "conv_alpha" in args else None,
        dropout=config.network_dropout,
    )
