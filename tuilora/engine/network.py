"""What the training loop sees of a network, and which one ``network_module`` names.

``NetworkBase`` is the interface (``state_dict`` for resume, ``kohya_state_dict`` for the
file, LR groups, max-norm); ``build_network`` picks the implementation: LoRA-LierLa / C3Lier
(``network_lora.py``) for ``networks.lora``, the LyCORIS adapter (``network_lycoris.py``) for
``lycoris.kohya``. ``find_targets`` walks the modules sd-scripts targets: inside UNet
``Transformer2DModel`` blocks every Linear and 1x1 Conv2d; with 3x3 convs also every Conv2d
inside ``ResnetBlock2D``, ``Downsample2D`` and ``Upsample2D``; inside the text encoder's
``CLIPAttention`` / ``CLIPMLP`` every Linear.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuilora.config import TrainingConfig, parse_key_value
from tuilora.engine.naming import naming_for
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
    from_file: Mapping[str, tuple[int, float]] | None = None,
) -> NetworkBase:
    """The network ``network_module`` names, over the parts being trained (``from_file``:
    the ranks and alphas of dim_from_weights)."""
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
    from tuilora.engine.network_blocks import block_lr_weights, block_ranks
    from tuilora.engine.network_lora import Dropouts, LearningRates, LoRANetwork, RankPlan

    if config.network_module != "networks.lora":
        raise UserError(
            f"network_module {config.network_module}: tuilora trains networks.lora (LoRA"
            " LierLa, C3Lier with conv_dim) and lycoris.kohya (algo=locon, loha, lokr, ia3)"
        )
    is_sdxl = family == "sdxl"
    conv_rank = int(args["conv_dim"]) if "conv_dim" in args else None
    # sd-scripts: conv_dim without conv_alpha means conv alpha 1.0 (not the rank).
    conv_alpha = float(args.get("conv_alpha", 1.0)) if conv_rank is not None else None
    lr_weights = block_lr_weights(args, is_sdxl)
    plan = RankPlan(
        config.network_dim,
        config.network_alpha,
        conv_rank,
        conv_alpha,
        block_ranks(
            args,
            is_sdxl,
            config.network_dim,
            config.network_alpha,
            conv_rank,
            conv_alpha,
            lr_weights,
        ),
        is_sdxl,
        from_file,
    )
    ratio = _float_arg(args, "loraplus_lr_ratio")
    rates = LearningRates(
        unet_plus=_float_arg(args, "loraplus_unet_lr_ratio") or ratio,
        text_encoder_plus=_float_arg(args, "loraplus_text_encoder_lr_ratio") or ratio,
        block_weights=lr_weights,
    )
    dropouts = Dropouts(
        config.network_dropout,
        _float_arg(args, "rank_dropout"),
        _float_arg(args, "module_dropout"),
    )
    return LoRANetwork(
        unet if train_unet else None,
        text_encoders if train_text_encoder else [],
        naming,
        plan,
        dropouts,
        rates,
    )


def _float_arg(args: Mapping[str, str], key: str) -> float | None:
    return float(args[key]) if key in args else None
