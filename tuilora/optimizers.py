"""The optimizers and LR schedulers sd-scripts accepts: one table, read by the config's
validator (torch-free) and by the engine, which builds exactly what the table names.

Optimizer names are sd-scripts' (``library/train_util.py`` ``get_optimizer``), compared
case-insensitively and stored in this spelling. sd-scripts also takes any ``torch.optim``
class by name (``RAdam``, ``torch.optim.RAdam``); so does tuilora. A dotted path into another
package is refused: a config never makes tuilora import a module it names.

Schedulers are sd-scripts' ``get_scheduler_fix``: transformers' ``SchedulerType`` values,
diffusers' ``piecewise_constant`` and sd-scripts' ``adafactor``. Where sd-scripts itself
cannot run a name (it ends in a TypeError there too), the validator refuses it in one line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Final

from tuilora.errors import UserError


@dataclass(frozen=True)
class OptimizerSpec:
    """Where the engine finds the class, and what sd-scripts adds to its arguments."""

    module: str
    cls: str
    #: pip package for the install hint ("" for torch itself).
    package: str = ""
    #: picks its own step size (G-LR-ADAPTIVE): lr around 1.0, lr x d is charted.
    adaptive: bool = False
    #: bitsandbytes' kernels need CUDA.
    cuda_only: bool = False
    #: SGD with Nesterov momentum; momentum 0.9 unless given (sd-scripts).
    nesterov: bool = False


_BNB = "bitsandbytes"
_DADAPT = "dadaptation"

OPTIMIZERS: Final[dict[str, OptimizerSpec]] = {
    "AdamW": OptimizerSpec("torch.optim", "AdamW"),
    "AdamW8bit": OptimizerSpec("bitsandbytes.optim", "AdamW8bit", _BNB, cuda_only=True),
    "PagedAdamW": OptimizerSpec("bitsandbytes.optim", "PagedAdamW", _BNB, cuda_only=True),
    "PagedAdamW8bit": OptimizerSpec("bitsandbytes.optim", "PagedAdamW8bit", _BNB, cuda_only=True),
    "PagedAdamW32bit": OptimizerSpec("bitsandbytes.optim", "PagedAdamW32bit", _BNB, cuda_only=True),
    "Lion": OptimizerSpec("lion_pytorch", "Lion", "lion-pytorch"),
    "Lion8bit": OptimizerSpec("bitsandbytes.optim", "Lion8bit", _BNB, cuda_only=True),
    "PagedLion8bit": OptimizerSpec("bitsandbytes.optim", "PagedLion8bit", _BNB, cuda_only=True),
    "SGDNesterov": OptimizerSpec("torch.optim", "SGD", nesterov=True),
    "SGDNesterov8bit": OptimizerSpec(
        "bitsandbytes.optim", "SGD8bit", _BNB, cuda_only=True, nesterov=True
    ),
    # sd-scripts: "DAdaptation" is DAdaptAdamPreprint, from dadaptation's experimental module.
    "DAdaptation": OptimizerSpec(
        "dadaptation.experimental", "DAdaptAdamPreprint", _DADAPT, adaptive=True
    ),
    "DAdaptAdamPreprint": OptimizerSpec(
        "dadaptation.experimental", "DAdaptAdamPreprint", _DADAPT, adaptive=True
    ),
    "DAdaptAdam": OptimizerSpec("dadaptation", "DAdaptAdam", _DADAPT, adaptive=True),
    "DAdaptAdaGrad": OptimizerSpec("dadaptation", "DAdaptAdaGrad", _DADAPT, adaptive=True),
    "DAdaptAdan": OptimizerSpec("dadaptation", "DAdaptAdan", _DADAPT, adaptive=True),
    "DAdaptAdanIP": OptimizerSpec(
        "dadaptation.experimental", "DAdaptAdanIP", _DADAPT, adaptive=True
    ),
    "DAdaptLion": OptimizerSpec("dadaptation", "DAdaptLion", _DADAPT, adaptive=True),
    "DAdaptSGD": OptimizerSpec("dadaptation", "DAdaptSGD", _DADAPT, adaptive=True),
    "Prodigy": OptimizerSpec("prodigyopt", "Prodigy", "prodigyopt", adaptive=True),
    "AdaFactor": OptimizerSpec("transformers.optimization", "Adafactor", "transformers"),
}

#: ``torch.optim`` classes sd-scripts reaches by bare name (LBFGS needs a closure and
#: SparseAdam sparse gradients: neither can train a LoRA, so they are not listed).
TORCH_OPTIMIZERS: Final = (
    "ASGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "Adamax",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGD",
)

#: sd-scripts names tuilora refuses, with what to use instead.
REFUSED_OPTIMIZERS: Final[dict[str, str]] = {
    # listed in sd-scripts' help, but its get_optimizer has no branch for them and fails
    "AdEMAMix8bit": "sd-scripts lists it but cannot build it: use AdamW8bit",
    "PagedAdEMAMix8bit": "sd-scripts lists it but cannot build it: use PagedAdamW8bit",
    "RAdamScheduleFree": "schedule-free optimizers are not supported: use AdamW or Prodigy",
    "AdamWScheduleFree": "schedule-free optimizers are not supported: use AdamW or Prodigy",
    "SGDScheduleFree": "schedule-free optimizers are not supported: use AdamW or Prodigy",
}


def canonical_optimizer(name: str) -> str:
    """sd-scripts' spelling of an optimizer name (compared case-insensitively), or the
    ``torch.optim`` class; a UserError with a did-you-mean for anything else. An empty name
    is AdamW, sd-scripts' default."""
    if not name:
        return "AdamW"
    for known in (*OPTIMIZERS, *REFUSED_OPTIMIZERS):
        if known.lower() == name.lower():
            if known in REFUSED_OPTIMIZERS:
                raise UserError(f"optimizer_type {known}: {REFUSED_OPTIMIZERS[known]}")
            return known
    bare = name.removeprefix("torch.optim.")
    if bare in TORCH_OPTIMIZERS:
        return f"torch.optim.{bare}"
    if "." in name:
        raise UserError(
            f"optimizer_type {name!r}: tuilora does not import modules named in a config; use"
            " an sd-scripts optimizer name or a torch.optim class (e.g. RAdam)"
        )
    close = difflib.get_close_matches(name, [*OPTIMIZERS, *TORCH_OPTIMIZERS], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(
        f"optimizer_type {name!r} is unknown{hint}: use an sd-scripts optimizer name such as"
        " AdamW8bit, Prodigy, DAdaptAdam, AdaFactor, Lion"
    )


def optimizer_spec(name: str) -> OptimizerSpec:
    """The table entry of a canonical name (``torch.optim.X`` included)."""
    canonical = canonical_optimizer(name)
    if canonical.startswith("torch.optim."):
        return OptimizerSpec("torch.optim", canonical.removeprefix("torch.optim."))
    return OPTIMIZERS[canonical]


@dataclass(frozen=True)
class SchedulerSpec:
    """How sd-scripts' ``get_scheduler_fix`` calls a scheduler (the engine does the same)."""

    #: transformers, diffusers (piecewise_constant) or adafactor (transformers' schedule).
    source: str
    #: takes lr_warmup_steps; otherwise a warmup other than 0 is an error (sd-scripts raises).
    warmup: bool = True
    #: why sd-scripts cannot run it (the validator refuses it with this).
    refused: str = ""


LR_SCHEDULERS: Final[dict[str, SchedulerSpec]] = {
    "linear": SchedulerSpec("transformers"),
    "cosine": SchedulerSpec("transformers"),
    "cosine_with_restarts": SchedulerSpec("transformers"),
    "polynomial": SchedulerSpec("transformers"),
    "constant": SchedulerSpec("transformers", warmup=False),
    "constant_with_warmup": SchedulerSpec("transformers"),
    "inverse_sqrt": SchedulerSpec("transformers"),
    "cosine_with_min_lr": SchedulerSpec("transformers"),
    "warmup_stable_decay": SchedulerSpec("transformers"),
    "piecewise_constant": SchedulerSpec("diffusers", warmup=False),
    "adafactor": SchedulerSpec("adafactor", warmup=False),
    "reduce_lr_on_plateau": SchedulerSpec(
        "transformers",
        refused="it steps on a validation metric, which LoRA training does not have"
        " (sd-scripts cannot run it either): use cosine or constant",
    ),
    "cosine_warmup_with_min_lr": SchedulerSpec(
        "transformers",
        refused="sd-scripts cannot build it (it passes arguments the schedule does not take):"
        " use cosine_with_min_lr",
    ),
    "greedy": SchedulerSpec(
        "transformers",
        refused="sd-scripts cannot build it (it passes arguments the schedule does not take):"
        " use cosine or constant",
    ),
}

#: ``torch.optim.lr_scheduler`` classes for ``lr_scheduler_type`` (sd-scripts' bare names);
#: the ones that need a callable, a metric or other schedulers cannot come from a TOML.
TORCH_LR_SCHEDULERS: Final = (
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "PolynomialLR",
    "StepLR",
)


def check_scheduler_type(name: str) -> str:
    """``lr_scheduler_type`` as the class name in ``torch.optim.lr_scheduler``."""
    bare = name.removeprefix("torch.optim.lr_scheduler.")
    if bare in TORCH_LR_SCHEDULERS:
        return bare
    close = difflib.get_close_matches(bare, TORCH_LR_SCHEDULERS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(
        f"lr_scheduler_type {name!r} is not supported{hint}: use a torch.optim.lr_scheduler"
        f" class ({', '.join(TORCH_LR_SCHEDULERS)}) or lr_scheduler"
    )
