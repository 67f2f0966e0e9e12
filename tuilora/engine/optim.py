"""Optimizers by sd-scripts name through their own packages, and the LR schedulers.

``optimizer_args`` entries are parsed once here, the way sd-scripts does (split once on
``=``, the value through ``ast.literal_eval``, a bare word kept as text).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from typing import Any

import torch

from tuilora.config import TrainingConfig, canonical_optimizer, parse_key_value
from tuilora.errors import UserError


def parse_optimizer_args(entries: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        key, text = parse_key_value(entry, "optimizer_args")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def build_optimizer(
    config: TrainingConfig, groups: list[dict[str, Any]], device: torch.device
) -> torch.optim.Optimizer:
    name = canonical_optimizer(config.optimizer_type)
    kwargs = parse_optimizer_args(config.optimizer_args)
    lr = config.learning_rate
    try:
        return _construct(name, groups, lr, kwargs, device)
    except TypeError as exc:
        raise UserError(f"optimizer_args for {name}: {exc}") from None


def _construct(
    name: str,
    groups: list[dict[str, Any]],
    lr: float,
    kwargs: dict[str, Any],
    device: torch.device,
) -> torch.optim.Optimizer:
    if name == "AdamW":
        return torch.optim.AdamW(groups, lr=lr, **kwargs)
    if name == "SGDNesterov":
        kwargs.setdefault("momentum", 0.9)
        return torch.optim.SGD(groups, lr=lr, nesterov=True, **kwargs)
    if name in ("AdamW8bit", "SGDNesterov8bit", "Lion8bit", "PagedAdamW8bit", "PagedLion8bit"):
        return _bitsandbytes(name, groups, lr, kwargs, device)
    if name == "Lion":
        from lion_pytorch import Lion

        return Lion(groups, lr=lr, **kwargs)
    if name == "Prodigy":
        from prodigyopt import Prodigy

        return Prodigy(groups, lr=lr, **kwargs)
    if name in ("DAdaptAdam", "DAdaptation", "DAdaptLion", "DAdaptSGD", "DAdaptAdaGrad"):
        import dadaptation

        cls = {
            "DAdaptAdam": dadaptation.DAdaptAdam,
            "DAdaptation": dadaptation.DAdaptAdam,
            "DAdaptLion": dadaptation.DAdaptLion,
            "DAdaptSGD": dadaptation.DAdaptSGD,
            "DAdaptAdaGrad": dadaptation.DAdaptAdaGrad,
        }[name]
        return cls(groups, lr=lr, **kwargs)
    if name == "AdaFactor":
        from transformers.optimization import Adafactor

        kwargs.setdefault("relative_step", True)
        if kwargs.get("relative_step"):
            # sd-scripts: with relative_step the LRs are only initial values; Adafactor
            # refuses an explicit lr, so drop them from the groups.
            for group in groups:
                group.pop("lr", None)
            return Adafactor(groups, lr=None, **kwargs)
        return Adafactor(groups, lr=lr, **kwargs)
    raise UserError(
        f"optimizer_type {name}: tuilora's engine supports AdamW, AdamW8bit, Lion, Lion8bit,"
        " SGDNesterov, SGDNesterov8bit, DAdaptAdam, Prodigy and AdaFactor"
    )


def _bitsandbytes(
    name: str,
    groups: list[dict[str, Any]],
    lr: float,
    kwargs: dict[str, Any],
    device: torch.device,
) -> torch.optim.Optimizer:
    if device.type != "cuda":
        raise UserError(
            f"optimizer_type {name} needs a CUDA GPU (bitsandbytes' 8-bit optimizers);"
            " on this machine use AdamW (or Lion / AdaFactor)"
        )
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise UserError(
            f"optimizer_type {name}: install bitsandbytes (pip install bitsandbytes)"
        ) from None
    if name == "SGDNesterov8bit":
        kwargs.setdefault("momentum", 0.9)
        return bnb.optim.SGD8bit(groups, lr=lr, nesterov=True, **kwargs)
    cls = {
        "AdamW8bit": bnb.optim.AdamW8bit,
        "PagedAdamW8bit": bnb.optim.PagedAdamW8bit,
        "Lion8bit": bnb.optim.Lion8bit,
        "PagedLion8bit": bnb.optim.PagedLion8bit,
    }[name]
    return cls(groups, lr=lr, **kwargs)


def warmup_steps(config: TrainingConfig, total_steps: int) -> int:
    """An integer step count, or a fraction (< 1) of the total steps (sd-scripts' rule)."""
    value = config.lr_warmup_steps
    if isinstance(value, float) and value < 1:
        return int(math.ceil(value * total_steps))
    return int(value)


def build_scheduler(
    config: TrainingConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> Any:
    if config.lr_scheduler == "adafactor":
        from transformers.optimization import AdafactorSchedule

        return AdafactorSchedule(optimizer)
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=warmup_steps(config, total_steps),
        num_training_steps=total_steps,
        num_cycles=config.lr_scheduler_num_cycles,
        power=config.lr_scheduler_power,
    )


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
