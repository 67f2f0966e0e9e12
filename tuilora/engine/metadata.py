"""The ``ss_*`` training metadata sd-scripts writes into a LoRA, and the ``modelspec.*`` keys.

Tools read these (sd-webui's LoRA tab, CivitAI, ``tuilora tools inspect``, ``tuilora
diagnose --lora``): the whole set sd-scripts' ``train_network.py`` writes, with the value
sd-scripts would write where tuilora has no such option (e.g. ``ss_loss_type`` "l2").
Every value is a string, as safetensors metadata requires; ``None`` becomes "None" as
sd-scripts' ``str(v)`` does.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import logging
import mimetypes
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuilora import __version__
from tuilora.config import TrainingConfig
from tuilora.engine.data import TrainItem
from tuilora.engine.optim import adafactor_relative, optimizer_kwargs

log = logging.getLogger("tuilora.train")

#: sd-scripts' ``SS_METADATA_MINIMUM_KEYS``: all that no_metadata keeps (with modelspec).
MINIMUM_KEYS = (
    "ss_v2",
    "ss_base_model_version",
    "ss_network_module",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_network_args",
)
STABILITY_AI = "https://github.com/Stability-AI/generative-models"


def class_path(optimizer: Any) -> str:
    """``module.Class`` of the optimizer, as sd-scripts records it (accelerate's wrapper
    unwrapped)."""
    inner = getattr(optimizer, "optimizer", optimizer)
    cls = type(inner)
    return f"{cls.__module__}.{cls.__name__}"


def legacy_model_hash(path: str) -> str:
    """sd-scripts' ``model_hash`` (sd-webui's old hash): sha256 of the 64 KiB at 1 MiB, 8
    hex digits; a folder gives "IsADirectory" (what sd-scripts writes for diffusers)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0x100000)
            return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
    except FileNotFoundError:
        return "NOFILE"
    except (IsADirectoryError, PermissionError):
        return "IsADirectory"


def file_sha256(path: str) -> str:
    """sd-scripts' ``calculate_sha256`` (sd-webui's new hash): the whole file."""
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        return "NOFILE"
    except (IsADirectoryError, PermissionError):
        return "IsADirectory"


def model_keys(config: TrainingConfig) -> dict[str, str]:
    """ss_sd_model_name / _hash / ss_new_sd_model_hash and the VAE's, as sd-scripts fills
    them: hashes only for paths that exist, names as basenames then (else as given)."""
    out: dict[str, str] = {}
    for option, prefix in (("pretrained_model_name_or_path", "sd_model"), ("vae", "vae")):
        name = getattr(config, option)
        if name is None:
            continue
        if os.path.exists(name):
            out[f"ss_{prefix}_hash"] = legacy_model_hash(name)
            out[f"ss_new_{prefix}_hash"] = file_sha256(name)
            name = os.path.basename(name)
        out[f"ss_{prefix}_name"] = name
    return out


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
    #: ``module.Class`` of the optimizer (``class_path``).
    optimizer_class: str = "torch.optim.adamw.AdamW"


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
    optimizer_args = ",".join(f"{k}={v}" for k, v in optimizer_kwargs(config).items())
    optimizer_text = facts.optimizer_class + (f"({optimizer_args})" if optimizer_args else "")
    scheduler = config.lr_scheduler
    if adafactor_relative(config):
        scheduler = f"adafactor:{config.learning_rate}"  # what sd-scripts records then
    width, height = config.resolution_wh()
    train_views = sum(1 for item in items if not item.is_reg)
    reg_views = sum(1 for item in items if item.is_reg)
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
        "ss_lr_scheduler": scheduler,
        "ss_network_module": config.network_module,
        "ss_network_dim": config.network_dim,
        "ss_network_alpha": config.network_alpha,
        "ss_network_dropout": config.network_dropout,
        "ss_mixed_precision": config.mixed_precision,
        "ss_full_fp16": config.full_fp16,
        "ss_v2": facts.family == "sd2",
        "ss_base_model_version": model_version(facts.family, facts.v_prediction),
        "ss_clip_skip": config.clip_skip,
        "ss_max_token_length": None if config.max_token_length == 75 else config.max_token_length,
        "ss_cache_latents": config.cache_latents,
        "ss_seed": config.seed,
        "ss_lowram": False,
        "ss_noise_offset": config.noise_offset,
        "ss_multires_noise_iterations": config.multires_noise_iterations,
        "ss_multires_noise_discount": config.multires_noise_discount,
        "ss_adaptive_noise_scale": config.adaptive_noise_scale,
        "ss_zero_terminal_snr": config.zero_terminal_snr,
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
        "ss_ip_noise_gamma": config.ip_noise_gamma,
        "ss_debiased_estimation": config.debiased_estimation_loss,
        "ss_noise_offset_random_strength": config.noise_offset_random_strength,
        "ss_ip_noise_gamma_random_strength": config.ip_noise_gamma_random_strength,
        "ss_loss_type": config.loss_type,
        "ss_huber_schedule": config.huber_schedule,
        "ss_huber_scale": config.huber_scale,
        "ss_huber_c": config.huber_c,
        "ss_fp8_base": False,
        "ss_fp8_base_unet": False,
        "ss_validation_seed": None,
        "ss_validation_split": 0.0,
        "ss_max_validation_steps": None,
        "ss_validate_every_n_epochs": None,
        "ss_validate_every_n_steps": None,
        "ss_resize_interpolation": config.resize_interpolation,
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
    }
    if config.network_args:
        args: dict[str, Any] = dict(entry.split("=", 1) for entry in config.network_args)
        if not config.dim_from_weights:
            # sd-scripts adds network_dropout as "dropout" (its LyCORIS workaround) and
            # records the arguments after that
            args.setdefault("dropout", config.network_dropout)
        metadata["ss_network_args"] = json.dumps(args)
    metadata.update(model_keys(config))
    return {key: str(value) for key, value in metadata.items()}


def model_version(family: str, v_prediction: bool) -> str:
    """sd-scripts' ss_base_model_version names."""
    if family == "sdxl":
        return "sdxl_base_v1-0"
    if family == "sd2":
        return "sd_v2_768_v" if v_prediction else "sd_v2"
    return "sd_v1"


def modelspec_architecture(family: str, v_prediction: bool) -> str:
    """sd-scripts' ModelSpec architecture names (``sai_model_spec``), without ``/lora``."""
    if family == "sdxl":
        return "stable-diffusion-xl-v1-base"
    if family == "sd2":
        return "stable-diffusion-v2-768-v" if v_prediction else "stable-diffusion-v2-512"
    return "stable-diffusion-v1"


def modelspec(config: TrainingConfig, facts: RunFacts, saved_at: float) -> dict[str, str]:
    """The model-spec keys sd-scripts adds at each save (``sai_model_spec.build_metadata``,
    ModelSpec 1.0.1), with the ``metadata_*`` options."""
    arch = modelspec_architecture(facts.family, facts.v_prediction)
    width, height = config.resolution_wh()
    title = config.metadata_title or config.output_name or f"LoRA@{saved_at}"
    spec = {
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": f"{arch}/lora",
        "modelspec.implementation": STABILITY_AI if facts.family == "sdxl" else "diffusers",
        "modelspec.title": title,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": datetime.datetime.fromtimestamp(int(saved_at)).isoformat(),
        "modelspec.prediction_type": "v" if facts.v_prediction else "epsilon",
    }
    for key in ("description", "author", "license", "tags"):
        value = getattr(config, f"metadata_{key}")
        if value is not None:
            spec[f"modelspec.{key}"] = value
    if config.min_timestep is not None or config.max_timestep is not None:
        low = config.min_timestep if config.min_timestep is not None else 0
        high = config.max_timestep if config.max_timestep is not None else 1000
        spec["modelspec.timestep_range"] = f"{low},{high}"
    if config.clip_skip is not None:
        spec["modelspec.encoder_layer"] = str(config.clip_skip)
    for key in (
        "usage_hint",
        "merged_from",
        "trigger_phrase",
        "preprocessor",
        "is_negative_embedding",
    ):
        value = getattr(config, f"metadata_{key}")
        if value is not None:
            spec[f"modelspec.{key}"] = value
    if config.metadata_thumbnail:
        thumbnail = thumbnail_data_url(config.metadata_thumbnail)
        if thumbnail:
            spec["modelspec.thumbnail"] = thumbnail
    spec["modelspec.implementation_version"] = f"tuilora/{__version__}"
    return spec


def thumbnail_data_url(value: str) -> str | None:
    """sd-scripts embeds a thumbnail file as a data URL (a data URL is kept as it is; a
    missing file is left out with a warning, as sd-scripts does)."""
    if value.startswith("data:"):
        return value
    path = Path(value)
    if not path.is_file():
        log.warning("metadata_thumbnail %s: no such file, left out", value)
        return None
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def finish(
    metadata: dict[str, str],
    config: TrainingConfig,
    facts: RunFacts,
    *,
    steps: int,
    epoch: int,
) -> dict[str, str]:
    """The metadata of one save: when, after how many steps and epochs, and the model spec
    of that moment; with no_metadata only sd-scripts' minimum keys and the model spec."""
    saved_at = time.time()
    out = dict(metadata)
    out["ss_training_finished_at"] = str(saved_at)
    out["ss_steps"] = str(steps)
    out["ss_epoch"] = str(epoch)
    if config.no_metadata:
        out = {key: out[key] for key in MINIMUM_KEYS if key in out}
    out.update(modelspec(config, facts, saved_at))
    return out
