"""Optimizers and LR schedulers, built as sd-scripts' ``get_optimizer`` / ``get_scheduler_fix``
build them, from the one table in ``tuilora/optimizers.py``.

``optimizer_args`` / ``lr_scheduler_args`` entries are parsed once here, the way sd-scripts
does (split once on ``=``, the value through ``ast.literal_eval``, a bare word kept as text).
"""

from __future__ import annotations

import ast
import importlib
import logging
from collections.abc import Sequence
from typing import Any

import torch

from tuilora.config import TrainingConfig, parse_key_value
from tuilora.errors import UserError
from tuilora.optimizers import canonical_optimizer, check_scheduler_type, optimizer_spec

log = logging.getLogger("tuilora.train")


def parse_args(entries: Sequence[str], key: str = "optimizer_args") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        name, text = parse_key_value(entry, key)
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


def parse_optimizer_args(entries: Sequence[str]) -> dict[str, Any]:
    return parse_args(entries, "optimizer_args")


def optimizer_kwargs(config: TrainingConfig) -> dict[str, Any]:
    """The keyword arguments sd-scripts passes (and records in ``ss_optimizer``)."""
    kwargs = parse_optimizer_args(config.optimizer_args)
    spec = optimizer_spec(config.optimizer_type)
    if spec.nesterov:
        kwargs.setdefault("momentum", 0.9)
    if canonical_optimizer(config.optimizer_type) == "AdaFactor":
        kwargs.setdefault("relative_step", True)
        if kwargs.get("warmup_init"):
            kwargs["relative_step"] = True  # sd-scripts: warmup_init needs relative_step
    return kwargs


def adafactor_relative(config: TrainingConfig) -> bool:
    """AdaFactor with relative_step: its LRs are its own and its schedule replaces
    lr_scheduler (sd-scripts sets ``lr_scheduler = "adafactor:<lr>"``)."""
    return canonical_optimizer(config.optimizer_type) == "AdaFactor" and bool(
        optimizer_kwargs(config)["relative_step"]
    )


def optimizer_class(config: TrainingConfig) -> Any:
    spec = optimizer_spec(config.optimizer_type)
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        package = spec.package or spec.module.split(".")[0]
        raise UserError(
            f"optimizer_type {config.optimizer_type}: install {package} (pip install {package})"
        ) from None
    return getattr(module, spec.cls)


def build_optimizer(
    config: TrainingConfig, groups: list[dict[str, Any]], device: torch.device
) -> torch.optim.Optimizer:
    name = canonical_optimizer(config.optimizer_type)
    spec = optimizer_spec(name)
    if spec.cuda_only and device.type != "cuda":
        raise UserError(
            f"optimizer_type {name} needs a CUDA GPU (bitsandbytes' 8-bit optimizers);"
            " on this machine use AdamW (or Lion / AdaFactor)"
        )
    kwargs = optimizer_kwargs(config)
    lr: float | None = config.learning_rate
    if spec.nesterov:
        kwargs["nesterov"] = True
    if adafactor_relative(config):
        # sd-scripts: with relative_step the LRs are only initial values; Adafactor refuses
        # an explicit lr, so they leave the groups.
        for group in groups:
            group.pop("lr", None)
        lr = None
    if spec.adaptive and len({group.get("lr") for group in groups}) > 1:
        log.warning(
            "%s with several learning rates: only the first takes effect (as in sd-scripts)", name
        )
    cls = optimizer_class(config)
    try:
        return cls(groups, lr=lr, **kwargs)
    except TypeError as exc:
        raise UserError(f"optimizer_args for {name}: {exc}") from None


def warmup_steps(config: TrainingConfig, total_steps: int) -> int:
    """An integer step count, or a fraction (< 1) of the total steps, rounded down as
    sd-scripts does (``int(lr_warmup_steps * num_training_steps)``)."""
    return _steps(config.lr_warmup_steps, total_steps)


def decay_steps(config: TrainingConfig, total_steps: int) -> int:
    return _steps(config.lr_decay_steps, total_steps)


def _steps(value: int | float, total_steps: int) -> int:
    if isinstance(value, float):
        return int(value * total_steps)
    return int(value)


def build_scheduler(
    config: TrainingConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> Any:
    """sd-scripts' ``get_scheduler_fix``: each name with the arguments sd-scripts gives it,
    plus ``lr_scheduler_args``. The step counts are optimizer steps (tuilora steps the
    scheduler once per optimizer step, with every process)."""
    kwargs = parse_args(config.lr_scheduler_args, "lr_scheduler_args")
    name = config.lr_scheduler
    try:
        if config.lr_scheduler_type:
            cls = getattr(torch.optim.lr_scheduler, check_scheduler_type(config.lr_scheduler_type))
            return cls(optimizer, **kwargs)
        if name == "adafactor" or adafactor_relative(config):
            from transformers.optimization import AdafactorSchedule

            return AdafactorSchedule(optimizer, config.learning_rate)
        return _transformers_or_diffusers(config, name, optimizer, total_steps, kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"lr_scheduler {name} with lr_scheduler_args: {exc}") from None


def _transformers_or_diffusers(
    config: TrainingConfig,
    name: str,
    optimizer: torch.optim.Optimizer,
    total: int,
    kwargs: dict[str, Any],
) -> Any:
    if name == "piecewise_constant":
        from diffusers.optimization import get_piecewise_constant_schedule

        return get_piecewise_constant_schedule(optimizer, **kwargs)
    from transformers import SchedulerType
    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION

    build: Any = TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(name)]
    if name == "constant":
        return build(optimizer, **kwargs)
    warmup = warmup_steps(config, total)
    cycles = config.lr_scheduler_num_cycles
    if name == "constant_with_warmup":
        return build(optimizer, num_warmup_steps=warmup, **kwargs)
    if name == "inverse_sqrt":
        return build(
            optimizer, num_warmup_steps=warmup, timescale=config.lr_scheduler_timescale, **kwargs
        )
    if name == "cosine_with_restarts":
        kwargs["num_cycles"] = cycles
    elif name == "polynomial":
        kwargs["power"] = config.lr_scheduler_power
    elif name == "cosine_with_min_lr":
        kwargs = {
            "num_cycles": cycles / 2,
            "min_lr_rate": config.lr_scheduler_min_lr_ratio,
        } | kwargs
    elif name == "warmup_stable_decay":
        decay = decay_steps(config, total)
        if warmup + decay > total:
            raise UserError(
                f"lr_scheduler warmup_stable_decay: warmup {warmup} + decay {decay} steps exceed"
                f" the {total} training steps"
            )
        ratio = config.lr_scheduler_min_lr_ratio
        defaults = {"num_cycles": cycles / 2, "min_lr_ratio": ratio if ratio is not None else 0.0}
        return build(
            optimizer,
            num_warmup_steps=warmup,
            num_stable_steps=total - warmup - decay,
            num_decay_steps=decay,
            **(defaults | kwargs),
        )
    return build(optimizer, num_warmup_steps=warmup, num_training_steps=total, **kwargs)


def current_lrs(optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, float]:
    """LR per group (the scheduler's value; AdaFactor's own relative step when it has one)."""
    out: dict[str, float] = {}
    lrs = scheduler.get_last_lr() if hasattr(scheduler, "get_last_lr") else []
    for index, group in enumerate(optimizer.param_groups):
        name = str(group.get("name", f"group{index}"))
        value = lrs[index] if index < len(lrs) else group.get("lr")
        out[name] = float(value) if value is not None else float("nan")
    return out


def lr_times_d(optimizer: torch.optim.Optimizer) -> dict[str, float] | None:
    """lr x d per group for D-Adaptation / Prodigy (G-OPT-D), else None."""
    values: dict[str, float] = {}
    for index, group in enumerate(optimizer.param_groups):
        if "d" not in group:
            return None
        name = str(group.get("name", f"group{index}"))
        values[name] = float(group["lr"]) * float(group["d"])
    return values
