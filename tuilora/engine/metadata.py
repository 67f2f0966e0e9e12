"""The ``ss_*`` training metadata sd-scripts writes into a LoRA, and the ``modelspec.*`` keys.

Tools read these (sd-webui's LoRA tab, CivitAI, ``tuilora tools inspect``, ``tuilora
diagnose --lora``): the whole set sd-scripts' ``train_network.py`` writes, with the value
sd-scripts would write where tuilora has no such option (e.g. ``ss_loss_type`` "l2").
Every value is a string, as safetensors metadata requires; ``None`` becomes "None" as
sd-scripts' ``str(v)`` does.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuilora import __version__
from tuilora.config import TrainingConfig, canonical_optimizer
from tuilora.engine.data import TrainItem
from tuilora.engine.optim import parse_optimizer_args

OPTIMIZER_CLASSES = {
    "AdamW": "torch.optim.adamw.AdamW",
    "AdamW8bit": "bitsandbytes.optim.adamw.AdamW8bit",
    "Lion": "lion_pytorch.lion_pytorch.Lion",
    "Lion8bit": "bitsandbytes.optim.lion.Lion8bit",
    "SGDNesterov": "torch.optim.sgd.SGD",
    "SGDNesterov8bit": "bitsandbytes.optim.sgd.SGD8bit",
    "DAdaptAdam": "dadaptation.dadapt_adam.DAdaptAdam",
    "Prodigy": "prodigyopt.prodigy.Prodigy",
    "AdaFactor": "transformers.optimization.Adafactor",
}


@dataclass
class RunFacts:
    """What the metadata needs from the run besides the config."""

    family: str
    v_prediction: bool
    num_batches_per_epoch: int
    num_epochs: int
    max_train_steps: int
    total_batch_size: int
    session_id: int = field(default_factory=lambda: random.randint(0, 2**32))
    started_at: float = field(default_factory=time.time)


def _dirs_info(items: Sequence[TrainItem], is_reg: bool) -> dict[str, dict[str, int]]:
    views: Counter[str] = Counter()
    images: dict[str, set[Path]] = {}
    for item in items:
        if item.is_reg != is_reg:
            continue
        folder = item.image.parent.name
        views[folder] += 1
        images.setdefault(folder, set()).add(item.image)
    return {
        folder: {
            "n_repeats": views[folder] // len(images[folder]),
            "img_count": len(images[folder]),
        }
        for folder in sorted(views)
    }


def tag_frequency(items: Sequence[TrainItem]) -> dict[str, dict[str, int]]:
    """sd-scripts' ss_tag_frequency: per training folder, each lower-cased tag counted once
    per image caption (repeats do not multiply it)."""
    out: dict[str, Counter[str]] = {}
    seen: set[Path] = set()
    for item in items:
        if item.is_reg or item.image in seen:
            continue
        seen.add(item.image)
        counter = out.setdefault(item.image.parent.name, Counter())
        for tag in item.caption.split(","):
            tag = tag.strip()
            if tag:
                counter[tag.lower()] += 1
    return {folder: dict(counter) for folder, counter in out.items()}


def bucket_info(items: Sequence[TrainItem]) -> dict[str, Any]:
    counts = Counter(item.bucket for item in items)
    buckets = {
        str(index): {"resolution": list(bucket), "count": counts[bucket]}
        for index, bucket in enumerate(sorted(counts))
    }
    return {"buckets": buckets, "mean_img_ar_error": 0.0}


def training_metadata(
    config: TrainingConfig, items: Sequence[TrainItem], facts: RunFacts
) -> dict[str, str]:
    optimizer = canonical_optimizer(config.optimizer_type)
    args = ",".join(f"{k}={v}" for k, v in parse_optimizer_args(config.optimizer_args).items())
    optimizer_text = OPTIMIZER_CLASSES.get(optimizer, optimizer) + (f"({args})" if args else "")
    width, height = config.resolution_wh()
    train_views = sum(1 for item in items if not item.is_reg)
    reg_views = sum(1 for item in items if item.is_reg)
    model_name = config.pretrained_model_name_or_path or ""
    metadata: dict[str, Any] = {
        "ss_session_id": facts.session_id,
        "ss_training_started_at": facts.started_at,
        "ss_output_name": config.output_name,
        "ss_learning_rate": config.learning_rate,
        "ss_text_encoder_lr": config.text_encoder_lr,
        "ss_unet_lr": config.unet_lr,
        "ss_num_train_images": train_views,
        "ss_num_validation_images": 0,
        "ss_num_reg_images": reg_views,
        "ss_num_batches_per_epoch": facts.num_batches_per_epoch,
        "ss_num_epochs": facts.num_epochs,
        "ss_gradient_checkpointing": config.gradient_checkpointing,
        "ss_gradient_accumulation_steps": config.gradient_accumulation_steps,
        "ss_max_train_steps": facts.max_train_steps,
        "ss_lr_warmup_steps": config.lr_warmup_steps,
        "ss_lr_scheduler": config.lr_scheduler,
        "ss_network_module": config.network_module,
        "ss_network_dim": config.network_dim,
        "ss_network_alpha": config.network_alpha,
        "ss_network_dropout": config.network_dropout,
        "ss_mixed_precision": config.mixed_precision,
        "ss_full_fp16": config.full_fp16,
        "ss_v2": facts.family == "sd2",
        "ss_base_model_version": _model_version(facts.family, facts.v_prediction),
        "ss_clip_skip": config.clip_skip,
        "ss_max_token_length": None if config.max_token_length == 75 else config.max_token_length,
        "ss_cache_latents": config.cache_latents,
        "ss_seed": config.seed,
        "ss_lowram": False,
        "ss_noise_offset": config.noise_offset,
        "ss_multires_noise_iterations": None,
        "ss_multires_noise_discount": 0.3,
        "ss_adaptive_noise_scale": None,
        "ss_zero_terminal_snr": False,
        "ss_training_comment": config.training_comment,
        "ss_sd_scripts_commit_hash": f"(tuilora {__version__})",
        "ss_optimizer": optimizer_text,
        "ss_max_grad_norm": config.max_grad_norm,
        "ss_caption_dropout_rate": config.caption_dropout_rate,
        "ss_caption_dropout_every_n_epochs": config.caption_dropout_every_n_epochs,
        "ss_caption_tag_dropout_rate": config.caption_tag_dropout_rate,
        "ss_face_crop_aug_range": config.face_crop_aug_range,
        "ss_prior_loss_weight": config.prior_loss_weight,
        "ss_min_snr_gamma": config.min_snr_gamma,
        "ss_scale_weight_norms": config.scale_weight_norms,
        "ss_ip_noise_gamma": None,
        "ss_debiased_estimation": False,
        "ss_noise_offset_random_strength": False,
        "ss_ip_noise_gamma_random_strength": False,
        "ss_loss_type": "l2",
        "ss_huber_schedule": "snr",
        "ss_huber_scale": 1.0,
        "ss_huber_c": 0.1,
        "ss_fp8_base": False,
        "ss_fp8_base_unet": False,
        "ss_validation_seed": None,
        "ss_validation_split": 0.0,
        "ss_max_validation_steps": None,
        "ss_validate_every_n_epochs": None,
        "ss_validate_every_n_steps": None,
        "ss_resize_interpolation": None,
        "ss_batch_size_per_device": config.train_batch_size,
        "ss_total_batch_size": facts.total_batch_size,
        "ss_resolution": f"({width}, {height})",
        "ss_color_aug": config.color_aug,
        "ss_flip_aug": config.flip_aug,
        "ss_random_crop": config.random_crop,
        "ss_shuffle_caption": config.shuffle_caption,
        "ss_enable_bucket": config.enable_bucket,
        "ss_bucket_no_upscale": config.bucket_no_upscale,
        "ss_min_bucket_reso": config.min_bucket_reso,
        "ss_max_bucket_reso": config.max_bucket_reso,
        "ss_keep_tokens": config.keep_tokens,
        "ss_dataset_dirs": json.dumps(_dirs_info(items, False)),
        "ss_reg_dataset_dirs": json.dumps(_dirs_info(items, True)),
        "ss_tag_frequency": json.dumps(tag_frequency(items)),
        "ss_bucket_info": json.dumps(bucket_info(items)),
        "ss_sd_model_name": os.path.basename(model_name.rstrip("/")) if model_name else None,
    }
    if config.network_args:
        metadata["ss_network_args"] = json.dumps(
            dict(entry.split("=", 1) for entry in config.network_args)
        )
    if config.vae:
        metadata["ss_vae_name"] = os.path.basename(config.vae)
    metadata.update(modelspec(config, facts))
    return {key: str(value) for key, value in metadata.items()}


def _model_version(family: str, v_prediction: bool) -> str:
    """sd-scripts' ss_base_model_version names."""
    if family == "sdxl":
        return "sdxl_base_v1-0"
    if family == "sd2":
        return "sd_v2_768_v" if v_prediction else "sd_v2"
    return "sd_v1"


def modelspec(config: TrainingConfig, facts: RunFacts) -> dict[str, str]:
    """The Stability AI model-spec keys sd-scripts adds (ModelSpec 1.0.1)."""
    arch = {"sd1": "stable-diffusion-v1", "sdxl": "stable-diffusion-xl-v1-base"}.get(
        facts.family,
        "stable-diffusion-v2-768-v" if facts.v_prediction else "stable-diffusion-v2-512",
    )
    width, height = config.resolution_wh()
    spec = {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": f"{arch}/lora",
        "modelspec.implementation": "sgm" if facts.family == "sdxl" else "diffusers",
        "modelspec.title": config.output_name or "LoRA",
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": datetime.datetime.fromtimestamp(int(facts.started_at)).isoformat(),
        "modelspec.prediction_type": "v" if facts.v_prediction else "epsilon",
    }
    if config.clip_skip is not None:
        spec["modelspec.encoder_layer"] = str(config.clip_skip)
    return spec


def finish(metadata: dict[str, str], *, steps: int, epoch: int) -> dict[str, str]:
    """The per-save keys: when, after how many steps and epochs."""
    out = dict(metadata)
    out["ss_training_finished_at"] = str(time.time())
    out["ss_steps"] = str(steps)
    out["ss_epoch"] = str(epoch)
    return out
