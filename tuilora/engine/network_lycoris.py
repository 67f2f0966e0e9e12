"""LyCORIS networks (LoCon, LoHa, LoKr, (IA)^3) through the ``lycoris-lora`` package.

``network_module = "lycoris.kohya"`` with ``network_args`` such as ``algo=loha``,
``conv_dim=8``, ``conv_alpha=4``, ``preset=attn-mlp``, exactly as sd-scripts users write
them: the arguments go to ``lycoris.kohya.create_network`` unchanged, so a config means the
same thing here as in sd-scripts. The file is LyCORIS' own key format (``hada_w1_a``,
``lokr_w1``, ``weight`` ...) under sd-scripts' module names, which sd-webui and ComfyUI read.

Three things are bridged:
- Module names: LyCORIS names modules from the module tree it walks. transformers 5's
  ``CLIPTextModel`` lacks the ``text_model`` segment the format keeps, so the encoders are
  handed over inside a ``TextModelView`` that puts it back (``text_encoder_views``); SDXL's
  UNet modules are renamed to the SGM names sd-scripts writes (``naming.SgmNaming``).
- LyCORIS keeps its target lists and presets as class attributes that ``create_network``
  overwrites and never resets; they are restored before each network is made, so one
  network's preset cannot leak into the next (as each sd-scripts run starts fresh).
- The presets are written for sd-scripts' own UNet classes, which differ from diffusers' in
  two places (``adapt_preset``): sd-scripts' attention class is ``CrossAttention`` where
  diffusers has ``Attention`` (so ``attn-only`` would match nothing), and lycoris-lora 4.1.3
  targets both the ``TimestepEmbedding`` class (for Anima) and the names
  ``time_embedding.linear_1/2``, which in a diffusers UNet are the same two layers, so
  LyCORIS stops on a duplicated name. Presets get ``Attention`` beside ``CrossAttention``
  and lose the class where the names already cover it: the layers sd-scripts would train.
- LyCORIS logs at INFO to stdout with colours from its own handler: the handler is removed
  and its records go through ``logging`` (warnings and up) into the run's log.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuilora.engine.naming import UNET_PREFIX, ModelNaming, kohya_name
from tuilora.engine.network import NetworkBase, TargetCounts, lr_groups
from tuilora.errors import UserError

ALGOS = ("lora", "locon", "loha", "lokr", "ia3", "dylora", "glora", "full", "diag-oft", "boft")
_CLASS_STATE = (
    "ENABLE_CONV",
    "UNET_TARGET_REPLACE_MODULE",
    "UNET_TARGET_REPLACE_NAME",
    "TEXT_ENCODER_TARGET_REPLACE_MODULE",
    "TEXT_ENCODER_TARGET_REPLACE_NAME",
    "MODULE_ALGO_MAP",
    "NAME_ALGO_MAP",
    "USE_FNMATCH",
    "TARGET_EXCLUDE_NAME",
)
_pristine: dict[str, Any] = {}


def import_lycoris() -> Any:
    """``lycoris.kohya``, with its logger routed through logging instead of stdout."""
    try:
        import lycoris.kohya as kohya  # type: ignore[import-untyped]
        from lycoris.logging import logger  # type: ignore[import-untyped]
    except ImportError:
        raise UserError(
            "network_module lycoris.kohya needs the lycoris-lora package: pip install"
            " lycoris-lora (or tuilora[lycoris])"
        ) from None
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    # A NullHandler keeps logging's last-resort stderr output away when nothing is
    # configured; records still propagate to the run's log when there is one.
    logger.addHandler(logging.NullHandler())
    logger.propagate = True
    logger.setLevel(logging.WARNING)
    if not _pristine:
        for name in _CLASS_STATE:
            _pristine[name] = copy.deepcopy(getattr(kohya.LycorisNetworkKohya, name))
    return kohya


def adapt_preset(preset: dict[str, Any]) -> dict[str, Any]:
    """A preset for sd-scripts' UNet classes, for diffusers' (see the module docstring)."""
    out = copy.deepcopy(preset)
    modules = list(out.get("unet_target_module") or [])
    names = out.get("unet_target_name") or []
    if "TimestepEmbedding" in modules and any(n.startswith("time_embedding.") for n in names):
        modules.remove("TimestepEmbedding")
    if "CrossAttention" in modules and "Attention" not in modules:
        modules.append("Attention")
    if "unet_target_module" in out:
        out["unet_target_module"] = modules
    return out


def reset_presets(kohya: Any) -> None:
    """Put LyCORIS' class-level targets back to what a fresh import has (adapted to
    diffusers' UNet, so that ``create_network_from_weights`` works on it too)."""
    for name, value in _pristine.items():
        setattr(kohya.LycorisNetworkKohya, name, copy.deepcopy(value))
    cls = kohya.LycorisNetworkKohya
    adapted = adapt_preset(
        {
            "unet_target_module": cls.UNET_TARGET_REPLACE_MODULE,
            "unet_target_name": cls.UNET_TARGET_REPLACE_NAME,
        }
    )
    cls.UNET_TARGET_REPLACE_MODULE = adapted["unet_target_module"]


class TextModelView(nn.Module):
    """An encoder seen under ``text_model.``, so LyCORIS names its modules as the format does."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.text_model = encoder


def text_encoder_views(encoders: Sequence[nn.Module]) -> list[nn.Module]:
    return [e if hasattr(e, "text_model") else TextModelView(e) for e in encoders]


def lycoris_text_encoder_arg(encoders: Sequence[nn.Module]) -> Any:
    """What LyCORIS takes: one encoder (names ``lora_te_``) or a list (``lora_te1_``, ...)."""
    views = text_encoder_views(encoders)
    if not views:
        return None
    return views[0] if len(views) == 1 else views


class LycorisAdapter(NetworkBase):
    """A ``LycorisNetworkKohya`` behind the interface the training loop uses."""

    def __init__(
        self,
        unet: nn.Module,
        text_encoders: Sequence[nn.Module],
        naming: ModelNaming,
        *,
        rank: int,
        alpha: float,
        args: dict[str, str],
        dropout: float | None = None,
        train_unet: bool = True,
        train_text_encoder: bool = True,
    ) -> None:
        super().__init__()
        kohya = import_lycoris()
        algo = args.get("algo", "lora").lower()
        if algo not in ALGOS:
            raise UserError(
                f"network_args algo={algo}: LyCORIS knows {', '.join(ALGOS)}"
                " (tuilora tests locon, loha, lokr and ia3)"
            )
        kwargs: dict[str, Any] = dict(args)
        if dropout and "dropout" not in kwargs:
            kwargs["dropout"] = str(dropout)
        reset_presets(kohya)
        builtin = kohya.PRESET
        kohya.PRESET = {name: adapt_preset(preset) for name, preset in builtin.items()}
        try:
            network = kohya.create_network(
                1.0,
                rank,
                alpha,
                None,
                lycoris_text_encoder_arg(text_encoders),
                unet,
                warn_on_unmatched=False,
                **kwargs,
            )
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise UserError(f"network_args {args}: LyCORIS refused them ({exc})") from None
        finally:
            kohya.PRESET = builtin
            reset_presets(kohya)
        if not train_text_encoder:
            network.text_encoder_loras = []
        if not train_unet:
            network.unet_loras = []
        renames = _unet_renames(unet, naming)
        for module in network.unet_loras:
            module.lora_name = renames.get(module.lora_name, module.lora_name)
        network.loras = network.text_encoder_loras + network.unet_loras
        if not network.loras:
            raise UserError(
                f"network_args {args}: LyCORIS found no module to train in this model"
                " (check preset)"
            )
        for module in network.loras:
            network.add_module(module.lora_name, module)
        self.network = network
        self._te_counts = [
            sum(1 for m in network.text_encoder_loras if m.lora_name.startswith(prefix + "_"))
            for prefix in (naming.text_encoder_prefix(i) for i in range(len(text_encoders)))
        ]

    # -- the loop's interface ----------------------------------------------------------
    def modules_by_name(self) -> dict[str, nn.Module]:
        return {module.lora_name: module for module in self.network.loras}

    def counts(self) -> TargetCounts:
        return TargetCounts(unet=len(self.network.unet_loras), text_encoders=tuple(self._te_counts))

    def apply_to(self) -> None:
        for module in self.network.loras:
            module.apply_to()

    def remove(self) -> None:
        for module in self.network.loras:
            module.restore()

    def set_multiplier(self, value: float) -> None:
        for module in self.network.loras:
            module.multiplier = value

    def kohya_state_dict(self) -> dict[str, torch.Tensor]:
        """The file LyCORIS' own ``save_weights`` writes: its state dict, module by module."""
        return {key: value.detach() for key, value in self.network.state_dict().items()}

    def load_kohya_state_dict(self, weights: dict[str, torch.Tensor]) -> list[str]:
        try:
            result = self.network.load_state_dict(weights, strict=False)
        except RuntimeError as exc:
            raise ValueError(
                f"does not fit this network (different algo or rank?): {exc}"
            ) from None
        return list(result.unexpected_keys)

    def param_groups(
        self,
        unet_lr: float | None,
        text_encoder_lr: float | None,
        default_lr: float,
        *,
        train_unet: bool = True,
        train_text_encoder: bool = True,
    ) -> list[dict[str, Any]]:
        return lr_groups(
            (
                (
                    "textencoder",
                    self.network.text_encoder_loras,
                    text_encoder_lr,
                    train_text_encoder,
                ),
                ("unet", self.network.unet_loras, unet_lr, train_unet),
            ),
            default_lr,
        )

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float) -> tuple[int, float]:
        device = next(self.network.parameters()).device
        scaled, _, largest = self.network.apply_max_norm_regularization(max_norm, device)
        return int(scaled), float(largest)


def _unet_renames(unet: nn.Module, naming: ModelNaming) -> dict[str, str]:
    """LyCORIS' name for each UNet module (from diffusers paths) → the file's name."""
    renames: dict[str, str] = {}
    for path, _ in unet.named_modules():
        if path:
            ours = naming.unet_name(path)
            theirs = kohya_name(UNET_PREFIX, path)
            if ours != theirs:
                renames[theirs] = ours
    return renames


def reload_with_lycoris(
    path: str | Path,
    unet: nn.Module,
    text_encoders: Sequence[nn.Module],
    naming: ModelNaming,
    *,
    multiplier: float = 1.0,
) -> Any:
    """A LyCORIS file read back by LyCORIS' own ``create_network_from_weights`` over a
    diffusers model (SGM UNet names mapped back to the paths it walks); the modules carry
    the file's names again."""
    from safetensors.torch import load_file

    kohya = import_lycoris()
    reset_presets(kohya)
    renames = _unet_renames(unet, naming)
    back = {ours: theirs for theirs, ours in renames.items()}
    weights: dict[str, torch.Tensor] = {}
    for key, value in load_file(str(path)).items():
        name, _, rest = key.partition(".")
        weights[f"{back.get(name, name)}.{rest}"] = value
    network, _ = kohya.create_network_from_weights(
        multiplier, str(path), None, lycoris_text_encoder_arg(text_encoders), unet, weights
    )
    for module in network.unet_loras:
        module.lora_name = renames.get(module.lora_name, module.lora_name)
    return network
