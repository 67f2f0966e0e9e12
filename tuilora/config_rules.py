"""Checks of a ``TrainingConfig`` that involve several fields, with sd-scripts' own rules
(``library/train_util.py`` ``verify_training_args`` and ``get_scheduler_fix``,
``networks/lora.py`` ``create_network``) turned into one-line errors before anything runs.

The validator accepts exactly what the engine runs: schedulers and optimizers come from the
one table in ``optimizers.py``; ``networks.lora``'s ``network_args`` are the keys sd-scripts'
LoRA module reads, with their value formats.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from tuilora.config_fields import parse_key_value
from tuilora.errors import UserError
from tuilora.kohya_options import LORA_NETWORK_ARGS
from tuilora.optimizers import LR_SCHEDULERS, SchedulerSpec, check_scheduler_type

if TYPE_CHECKING:
    from tuilora.config import TrainingConfig

#: sd-scripts' preset curves for ``down_lr_weight`` / ``up_lr_weight`` (optionally "+base").
LR_WEIGHT_PRESETS = ("cosine", "sine", "linear", "reverse_linear", "zeros")


def check_combinations(config: TrainingConfig) -> None:
    for key in ("network_args", "optimizer_args", "lr_scheduler_args"):
        for entry in getattr(config, key):
            parse_key_value(entry, key)
    _parts_and_buckets(config)
    _network(config)
    _schedule(config)
    _noise_and_loss(config)
    _precision(config)
    _captions(config)
    _saving(config)


def _parts_and_buckets(config: TrainingConfig) -> None:
    if config.network_train_unet_only and config.network_train_text_encoder_only:
        raise UserError(
            "network_train_unet_only and network_train_text_encoder_only are both set:"
            " choose one (or neither to train both)"
        )
    if config.enable_bucket and config.min_bucket_reso > config.max_bucket_reso:
        raise UserError(
            f"min_bucket_reso {config.min_bucket_reso} is above max_bucket_reso"
            f" {config.max_bucket_reso}: the smallest bucket side must not exceed the largest"
        )


NETWORK_MODULES = ("networks.lora", "lycoris.kohya")


def _network(config: TrainingConfig) -> None:
    if config.network_module not in NETWORK_MODULES:
        raise UserError(
            f"network_module {config.network_module}: tuilora trains networks.lora (LoRA"
            " LierLa, C3Lier with conv_dim) and lycoris.kohya (algo=locon, loha, lokr, ia3)"
        )
    if config.network_module == "networks.lora":
        if config.network_dim > 768:
            raise UserError(
                f"network_dim {config.network_dim} is out of range: LoRA ranks go from 1 to 768"
                " (beyond that training may break, G-RANK)"
            )
        for entry in config.network_args:
            check_lora_arg(*parse_key_value(entry, "network_args"))
    if config.dim_from_weights and not config.network_weights:
        raise UserError("dim_from_weights needs network_weights: the file to take ranks from")
    if len(config.base_weights_multiplier) > len(config.base_weights):
        raise UserError("base_weights_multiplier has more entries than base_weights: one per file")


def check_lora_arg(key: str, value: str) -> None:
    """One ``network_args`` entry of ``networks.lora``: a key sd-scripts' LoRA reads, with a
    value of its format."""
    if key == "dropout":
        raise UserError(
            "network_args dropout: networks.lora ignores it (as in sd-scripts); set"
            " network_dropout instead"
        )
    if key not in LORA_NETWORK_ARGS:
        close = difflib.get_close_matches(key, list(LORA_NETWORK_ARGS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"network_args {key}: networks.lora has no such option{hint}; it reads "
            + ", ".join(sorted(LORA_NETWORK_ARGS))
        )
    try:
        if key == "conv_dim":
            if int(value) < 1:
                raise ValueError
        elif key in ("rank_dropout", "module_dropout"):
            if not 0 <= float(value) < 1:
                raise ValueError
        elif key in ("block_dims", "conv_block_dims"):
            [int(part) for part in value.split(",")]
        elif key in ("block_alphas", "conv_block_alphas", "mid_lr_weight"):
            [float(part) if part else 0.0 for part in value.split(",")]
        elif key in ("down_lr_weight", "up_lr_weight"):
            _check_lr_weight(value)
        elif key.startswith("loraplus") and float(value) <= 0:
            raise ValueError
        else:  # conv_alpha, block_lr_zero_threshold
            float(value)
    except ValueError:
        raise UserError(
            f"network_args {key}={value}: {_LORA_FORMATS.get(key, 'a number')}"
        ) from None


_LORA_FORMATS = {
    "conv_dim": "a whole number >= 1",
    "rank_dropout": "a probability from 0 to below 1",
    "module_dropout": "a probability from 0 to below 1",
    "block_dims": "whole numbers separated by commas, one per block",
    "conv_block_dims": "whole numbers separated by commas, one per block",
    "block_alphas": "numbers separated by commas, one per block",
    "conv_block_alphas": "numbers separated by commas, one per block",
    "mid_lr_weight": "numbers separated by commas",
    "down_lr_weight": "numbers separated by commas, or " + "/".join(LR_WEIGHT_PRESETS) + "[+base]",
    "up_lr_weight": "numbers separated by commas, or " + "/".join(LR_WEIGHT_PRESETS) + "[+base]",
    "loraplus_lr_ratio": "a number above 0",
    "loraplus_unet_lr_ratio": "a number above 0",
    "loraplus_text_encoder_lr_ratio": "a number above 0",
}


def _check_lr_weight(value: str) -> None:
    """Comma-separated numbers, or a preset: sd-scripts reads a single number as a preset
    name, fails to find it and ignores the option, so that is refused here."""
    if "," in value:
        [float(part) if part else 0.0 for part in value.split(",")]
        return
    name, _, base = value.partition("+")
    if name not in LR_WEIGHT_PRESETS:
        raise ValueError
    if base:
        float(base)


def check_scheduler_name(name: str) -> SchedulerSpec:
    """sd-scripts' scheduler of that name; a UserError with a did-you-mean otherwise."""
    spec = LR_SCHEDULERS.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(LR_SCHEDULERS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        usable = ", ".join(n for n, s in LR_SCHEDULERS.items() if not s.refused)
        raise UserError(f"lr_scheduler {name!r} is unknown{hint}: use one of {usable}")
    if spec.refused:
        raise UserError(f"lr_scheduler {name}: {spec.refused}")
    return spec


def _schedule(config: TrainingConfig) -> None:
    for key in ("lr_warmup_steps", "lr_decay_steps"):
        value = getattr(config, key)
        if isinstance(value, float) and value >= 1:
            raise UserError(
                f"{key} {value} is out of range: give an integer step count or a fraction below 1"
            )
    name = config.lr_scheduler
    args = dict(parse_key_value(entry, "lr_scheduler_args") for entry in config.lr_scheduler_args)
    if config.lr_scheduler_type:
        check_scheduler_type(config.lr_scheduler_type)
        if config.lr_warmup_steps:
            raise UserError(
                f"lr_scheduler_type {config.lr_scheduler_type} takes no lr_warmup_steps (as in"
                " sd-scripts): set lr_warmup_steps = 0"
            )
        return
    spec = check_scheduler_name(name)
    adafactor_schedule = name == "adafactor" or _adafactor_relative_step(config)
    if config.lr_warmup_steps and (not spec.warmup or adafactor_schedule):
        which = "the adafactor schedule" if adafactor_schedule else name
        raise UserError(
            f"lr_warmup_steps {config.lr_warmup_steps}: {which} takes no warmup (sd-scripts"
            " stops on it); set lr_warmup_steps = 0 or use constant_with_warmup"
        )
    if name == "adafactor" and config.optimizer_type != "AdaFactor":
        raise UserError(
            f"lr_scheduler adafactor needs optimizer_type AdaFactor (got"
            f" {config.optimizer_type}): use constant or cosine"
        )
    if name == "piecewise_constant" and "step_rules" not in args:
        raise UserError(
            'lr_scheduler piecewise_constant needs lr_scheduler_args ["step_rules=1:100,0.1"]'
            " (multipliers until each step, then the last)"
        )
    if (
        name == "cosine_with_min_lr"
        and config.lr_scheduler_min_lr_ratio is None
        and not {"min_lr", "min_lr_rate"} & set(args)
    ):
        raise UserError(
            "lr_scheduler cosine_with_min_lr needs lr_scheduler_min_lr_ratio (e.g. 0.1) or"
            ' lr_scheduler_args ["min_lr=1e-6"]'
        )


def _adafactor_relative_step(config: TrainingConfig) -> bool:
    """AdaFactor with relative_step (its default) runs its own schedule in sd-scripts."""
    if config.optimizer_type != "AdaFactor":
        return False
    args = dict(parse_key_value(entry) for entry in config.optimizer_args)
    relative = args.get("relative_step", "True") == "True"
    return relative or args.get("warmup_init", "False") == "True"


def _noise_and_loss(config: TrainingConfig) -> None:
    if config.adaptive_noise_scale is not None and config.noise_offset is None:
        raise UserError("adaptive_noise_scale needs noise_offset (as in sd-scripts): set both")
    if config.scale_v_pred_loss_like_noise_pred and not config.v_parameterization:
        raise UserError(
            "scale_v_pred_loss_like_noise_pred needs v_parameterization (as in sd-scripts)"
        )
    if config.v_pred_like_loss and config.v_parameterization:
        raise UserError(
            "v_pred_like_loss cannot be used with v_parameterization (as in sd-scripts)"
        )
    low, high = config.min_timestep, config.max_timestep
    if low is not None and high is not None and low > high:
        raise UserError(f"min_timestep {low} is above max_timestep {high}: swap them")
    if high == 1000 and low == 1000:
        raise UserError("min_timestep and max_timestep 1000: timesteps go from 0 to 999")


def _precision(config: TrainingConfig) -> None:
    if config.full_fp16 and config.full_bf16:
        raise UserError("full_fp16 and full_bf16 are both set: choose one")
    for flag, precision in (("full_fp16", "fp16"), ("full_bf16", "bf16")):
        if getattr(config, flag) and config.mixed_precision != precision:
            raise UserError(
                f'{flag} needs mixed_precision = "{precision}" (as in sd-scripts), got'
                f" {config.mixed_precision!r}"
            )


def _captions(config: TrainingConfig) -> None:
    if config.face_crop_aug_range is not None:
        try:
            low, high = (float(part) for part in config.face_crop_aug_range.split(","))
        except ValueError:
            low, high = 1.0, 0.0
        if not 0 < low <= high:
            raise UserError(
                f'face_crop_aug_range {config.face_crop_aug_range!r}: write "min,max" with'
                ' 0 < min <= max, e.g. "2.0,4.0"'
            )
        if config.enable_bucket or config.cache_latents:
            # sd-scripts crops faces only without buckets and when it reads the image each
            # step; otherwise it ignores the option silently
            raise UserError(
                "face_crop_aug_range works without buckets and without cached latents (as in"
                " sd-scripts): set enable_bucket and cache_latents to false, or remove it"
            )
    if not config.caption_separator:
        raise UserError('caption_separator is empty: write the text between tags, e.g. ","')


def _saving(config: TrainingConfig) -> None:
    if config.save_last_n_steps and not config.save_every_n_steps:
        raise UserError(
            "save_last_n_steps keeps step snapshots, but none are saved: set save_every_n_steps"
        )
    epochs_saved = config.save_every_n_epochs or config.save_n_epoch_ratio
    if config.save_last_n_epochs and not epochs_saved:
        raise UserError(
            "save_last_n_epochs keeps epoch snapshots, but none are saved: set save_every_n_epochs"
        )
