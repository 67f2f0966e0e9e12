"""Everything a run needs before its first step, as named steps.

``Trainer.build`` (loop.py) calls them in this order, one job each: load the base model in
the training precision, decide which parts train, put the network on them, set the models'
training mode, collect the data (and cache latents), plan the steps, make the optimizer and
scheduler, and set up the text encoding. Each step takes what it needs and returns what the
next needs, so a step can be read, tested or reported (phase events) on its own.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuilora.advisor import steps
from tuilora.config import TrainingConfig
from tuilora.engine import data, latent_cache, optim
from tuilora.engine import loss as losses
from tuilora.engine.models import BaseModel, load_base_model
from tuilora.engine.naming import naming_for
from tuilora.engine.network import NetworkBase, build_network
from tuilora.engine.network_lora import LoRANetwork, RankPlan, ranks_from_weights
from tuilora.engine.text import TextEncoding
from tuilora.errors import UserError
from tuilora.runs.phases import PhaseReporter

log = logging.getLogger("tuilora.train")

SDXL_CLIP_SKIP_NOTICE = "clip_skip does not apply to SDXL (as in sd-scripts): ignored"


@dataclass
class Built:
    """The pieces of a run the loop steps through."""

    model: BaseModel
    network: NetworkBase
    items: list[data.TrainItem]
    optimizer: Any
    scheduler: Any
    steps_per_epoch: int
    total_steps: int
    epochs: int
    train_unet: bool
    train_text_encoder: bool
    weight_dtype: torch.dtype
    #: (id, message) warnings for the events file.
    notices: list[tuple[str, str]] = field(default_factory=list)
    text: TextEncoding | None = None
    #: the noise schedule and SNR table the loss uses (zero_terminal_snr applied).
    schedule: losses.TrainingSchedule | None = None


@dataclass(frozen=True)
class Precision:
    """The dtypes of the frozen weights: UNet and text encoders, and the VAE."""

    weights: torch.dtype
    vae: torch.dtype


@dataclass(frozen=True)
class StepPlan:
    steps_per_epoch: int
    total_steps: int
    epochs: int


def load_model(
    config: TrainingConfig, device: torch.device, mixed_precision: str, *, allow_pickle: bool
) -> tuple[BaseModel, Precision]:
    """The base model, frozen, on ``device``, its weights in the training precision: loaded
    straight in that dtype (the VAE per ``models.vae_dtype_for``: fp32 for SDXL or with
    no_half_vae), never as a second full copy."""
    weights = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)
    model = load_base_model(
        config.pretrained_model_name_or_path or "",
        model_config=config.model_config,
        allow_pickle=allow_pickle,
        force_v_prediction=config.v_parameterization,
        vae_path=config.vae,
        dtype=weights,
        no_half_vae=config.no_half_vae,
        v2=config.v2,
    )
    for part in (model.unet, model.vae, *model.text_encoders):
        part.requires_grad_(False)
        part.to(device)
    vae = model.vae.dtype
    model.vae.eval()
    return model, Precision(weights, vae)


def parts_to_train(config: TrainingConfig) -> tuple[bool, bool]:
    """(train the UNet, train the text encoders): off when switched off or given LR 0."""
    train_te = not config.network_train_unet_only and (
        config.text_encoder_lr is None or config.text_encoder_lr > 0
    )
    train_unet = not config.network_train_text_encoder_only and (
        config.unet_lr is None or config.unet_lr > 0
    )
    if not (train_te or train_unet):
        raise UserError("nothing to train: both the UNet and the text encoder are switched off")
    return train_unet, train_te


def read_weights(path: str, option: str, *, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """A LoRA file's tensors: safetensors, or (only with --allow-pickle) a pickled file read
    with ``torch.load(weights_only=True)``; sd-scripts tells them apart by the extension."""
    if not path.endswith(".safetensors") and not allow_pickle:
        raise UserError(
            f"{option} {path}: not a .safetensors file; reading it would unpickle it. Convert it"
            " to safetensors, or pass --allow-pickle if you trust it"
        )
    from safetensors import SafetensorError

    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
        raise UserError(f"{option} {path}: cannot read ({exc})") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{option} {path}: not a LoRA state dict")
    return loaded


def merge_base_weights(config: TrainingConfig, model: BaseModel, *, allow_pickle: bool) -> None:
    """base_weights: each LoRA file merged into the model's weights at its multiplier (1.0
    when base_weights_multiplier has no entry for it), before the network is made."""
    naming = naming_for(model.family, model.unet, len(model.text_encoders))
    for index, path in enumerate(config.base_weights):
        weights = read_weights(path, "base_weights", allow_pickle=allow_pickle)
        multipliers = config.base_weights_multiplier
        multiplier = multipliers[index] if index < len(multipliers) else 1.0
        plan = RankPlan(
            1, 1.0, is_sdxl=model.family == "sdxl", from_file=ranks_from_weights(weights)
        )
        merged = LoRANetwork(model.unet, model.text_encoders, naming, plan)
        unknown = merged.load_kohya_state_dict(weights)
        if unknown or not merged.modules_by_name():
            example = unknown[0] if unknown else "(none)"
            raise UserError(
                f"base_weights {path}: not a networks.lora file for this model ({len(unknown)}"
                f" keys match no module, e.g. {example})"
            )
        for module in merged.modules_by_name().values():
            module.merge_into_original(multiplier)


def make_network(
    config: TrainingConfig,
    model: BaseModel,
    device: torch.device,
    dtype: torch.dtype,
    *,
    train_unet: bool,
    train_text_encoder: bool,
    allow_pickle: bool,
) -> NetworkBase:
    """The network on the trained parts, in ``dtype`` (fp32, or the weights' precision with
    full_fp16 / full_bf16), hooked into the models, loaded from ``network_weights`` when
    given (its ranks too with dim_from_weights)."""
    weights = None
    if config.network_weights:
        weights = read_weights(config.network_weights, "network_weights", allow_pickle=allow_pickle)
    from_file = None
    if config.dim_from_weights:
        if config.network_module != "networks.lora":
            raise UserError("dim_from_weights works with network_module networks.lora")
        assert weights is not None  # the validator asks for network_weights
        from_file = ranks_from_weights(weights)
    network = build_network(
        config,
        model.unet,
        model.text_encoders,
        model.family,
        train_unet=train_unet,
        train_text_encoder=train_text_encoder,
        from_file=from_file,
    )
    network.to(device, dtype=dtype)
    network.apply_to()
    if weights is not None:
        load_network_weights(network, config.network_weights or "", weights)
    return network


def network_dtype(config: TrainingConfig, weights: torch.dtype) -> torch.dtype:
    """LoRA weights train in fp32; full_fp16 / full_bf16 put them in the half precision of
    the frozen weights (sd-scripts ``network.to(weight_dtype)``)."""
    return weights if config.full_fp16 or config.full_bf16 else torch.float32


def load_network_weights(network: NetworkBase, path: str, weights: dict[str, torch.Tensor]) -> None:
    try:
        unknown = network.load_kohya_state_dict(weights)
    except ValueError as exc:
        raise UserError(f"network_weights {path}: {exc}") from None
    if unknown and len(unknown) == len(weights):
        # sd-scripts loads with strict=False and goes on; with nothing loaded the run would
        # silently start from scratch, which is never what continuing a LoRA means (issue 17).
        raise UserError(
            f"network_weights {path}: none of its {len(weights)} keys matches a module of this"
            f" network, e.g. {unknown[0]} (a LoRA for another model family or network type?)"
        )
    if unknown:
        log.warning("network_weights: %d keys matched no module, e.g. %s", len(unknown), unknown[0])


def set_training_mode(model: BaseModel, *, gradient_checkpointing: bool, train_te: bool) -> None:
    """Gradient checkpointing needs train mode; without it the frozen models run in eval."""
    if gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        model.unet.train()
        if train_te:
            for encoder in model.text_encoders:
                encoder.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
                encoder.train()
    else:
        model.unet.eval()
        for encoder in model.text_encoders:
            encoder.eval()


def prepare_items(
    config: TrainingConfig,
    model: BaseModel,
    device: torch.device,
    vae_dtype: torch.dtype,
    cache_dir: Path,
    phases: PhaseReporter | None = None,
) -> list[data.TrainItem]:
    """The training items, their latents cached when asked: in memory for the run
    (``cache_latents``), and with ``cache_latents_to_disk`` also in ``cache_dir`` (the
    user's latent cache, reused by later runs); ``phases`` hears of the caching (a phase of
    its own, with a count)."""
    items = data.collect_items(config)
    if config.cache_latents:
        if config.color_aug or config.random_crop:
            raise UserError(
                "cache_latents cannot be used with color_aug or random_crop (they change"
                " the image every step): turn one of them off"
            )
        if phases is not None:
            phases.begin("caching latents", total=len({item.image for item in items}))
        still = data.Augment(interpolation=config.resize_interpolation)
        latent_cache.cache_latents(
            items,
            model.vae,
            model.latent_scaling,
            device,
            flip=config.flip_aug,
            dtype=vae_dtype,
            load_view=lambda item, flip: data.load_pixels(
                item, flip=flip, augment=still, rng=random.Random(0)
            ),
            store=latent_cache.LatentStore(cache_dir) if config.cache_latents_to_disk else None,
            transform={"interpolation": str(config.resize_interpolation)},
            progress=phases.advance if phases is not None else None,
        )
    return items


def plan_steps(
    config: TrainingConfig, items: list[data.TrainItem], seed: int, processes: int
) -> StepPlan:
    """Optimizer steps per epoch (the batches the buckets really give, shared by the
    processes, grouped by gradient accumulation), total steps and epochs."""
    batches = len(data.epoch_batches(items, config.train_batch_size, seed, 0, False))
    # The advisor's step arithmetic, so a plan's total is the run's (advisor.steps).
    steps_per_epoch = steps.optimizer_steps(batches, config.gradient_accumulation_steps, processes)
    total_steps, epochs = steps.training_length(
        steps_per_epoch, config.max_train_epochs, config.max_train_steps
    )
    return StepPlan(steps_per_epoch, total_steps, epochs)


def make_optimizer(
    config: TrainingConfig,
    network: NetworkBase,
    device: torch.device,
    total_steps: int,
    *,
    train_unet: bool,
    train_text_encoder: bool,
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer over the network's UNet / text-encoder groups, and its LR scheduler."""
    groups = network.param_groups(
        config.unet_lr,
        config.text_encoder_lr,
        config.learning_rate,
        train_unet=train_unet,
        train_text_encoder=train_text_encoder,
    )
    optimizer = optim.build_optimizer(config, groups, device)
    return optimizer, optim.build_scheduler(config, optimizer, total_steps)


def make_text_encoding(config: TrainingConfig, model: BaseModel) -> TextEncoding:
    return TextEncoding(
        model.family,
        model.tokenizers,
        model.text_encoders,
        max_token_length=config.max_token_length,
        clip_skip=config.clip_skip,
        cache=config.cache_text_encoder_outputs,
    )


def model_notices(
    config: TrainingConfig, model: BaseModel, precision: Precision
) -> list[tuple[str, str]]:
    """What the user should know about options the model or the machine make moot, and
    what sd-scripts warns about."""
    notices = []
    if model.family == "sdxl" and config.clip_skip and config.clip_skip > 1:
        notices.append(("sdxl-clip-skip", SDXL_CLIP_SKIP_NOTICE))
    if config.v2 != (model.family == "sd2"):
        family = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL"}.get(model.family, model.family)
        loads_as = "SD2" if config.v2 else "SD1"
        text = (
            f"v2 is {str(config.v2).lower()} but the model is {family}: tuilora reads the"
            f" architecture from the model (sd-scripts would load it as {loads_as})"
        )
        notices.append(("v2-mismatch", text))
    if (config.full_fp16 or config.full_bf16) and precision.weights == torch.float32:
        text = "full_fp16 / full_bf16 need half precision here: the LoRA trains in fp32"
        notices.append(("full-precision", text))
    if config.zero_terminal_snr and not model.v_prediction:
        text = "zero_terminal_snr without v-prediction: training will be unexpected (sd-scripts)"
        notices.append(("zero-terminal-snr", text))
    if optim.adafactor_relative(config) and config.lr_scheduler != "adafactor":
        text = (
            f"AdaFactor with relative_step uses its own schedule (as sd-scripts):"
            f" lr_scheduler {config.lr_scheduler} is replaced by adafactor"
        )
        notices.append(("adafactor-schedule", text))
    return notices


def training_schedule(config: TrainingConfig, model: BaseModel) -> losses.TrainingSchedule:
    return losses.training_schedule(model.noise_scheduler, config.zero_terminal_snr)
