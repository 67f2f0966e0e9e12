"""Optimizers and schedulers as sd-scripts' ``get_optimizer`` / ``get_scheduler_fix``
(library/train_util.py) build them, from tuilora's one table (tuilora/optimizers.py)."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from tuilora.config import TrainingConfig  # noqa: E402
from tuilora.engine import optim  # noqa: E402
from tuilora.errors import UserError  # noqa: E402
from tuilora.optimizers import LR_SCHEDULERS  # noqa: E402

CPU = torch.device("cpu")


def config(**options: Any) -> TrainingConfig:
    return TrainingConfig.from_dict({"learning_rate": 1e-3, **options})


def groups() -> list[dict[str, Any]]:
    return [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 1e-3, "name": "unet"}]


def test_dadaptation_means_dadapt_adam_preprint() -> None:
    # sd-scripts: "DAdaptation" (and "DAdaptAdamPreprint") is dadaptation.experimental's
    # DAdaptAdamPreprint, not DAdaptAdam; names compare case-insensitively.
    built = optim.build_optimizer(
        config(optimizer_type="dadaptation", learning_rate=1.0), groups(), CPU
    )
    assert type(built).__name__ == "DAdaptAdamPreprint"
    assert type(built).__module__.startswith("dadaptation.experimental")
    adam = optim.build_optimizer(
        config(optimizer_type="DAdaptAdam", learning_rate=1.0), groups(), CPU
    )
    assert type(adam).__name__ == "DAdaptAdam"
    assert TrainingConfig(optimizer_type="DAdaptation").is_adaptive()


def test_use_8bit_adam_and_use_lion_optimizer_choose_the_optimizer() -> None:
    # sd-scripts: use_8bit_adam means AdamW8bit, use_lion_optimizer Lion, an error beside
    # an optimizer_type; bare torch.optim names (RAdam) are torch.optim classes.
    assert TrainingConfig.from_dict({"use_8bit_adam": True}).optimizer_type == "AdamW8bit"
    assert TrainingConfig.from_dict({"use_lion_optimizer": True}).optimizer_type == "Lion"
    with pytest.raises(UserError, match="use_8bit_adam and optimizer_type"):
        TrainingConfig.from_dict({"use_8bit_adam": True, "optimizer_type": "Prodigy"})
    assert TrainingConfig.from_dict({"optimizer_type": ""}).optimizer_type == "AdamW"
    radam = optim.build_optimizer(config(optimizer_type="RAdam"), groups(), CPU)
    assert type(radam).__name__ == "RAdam"
    with pytest.raises(UserError, match="does not import modules"):
        TrainingConfig.from_dict({"optimizer_type": "mypkg.MyOptimizer"})
    with pytest.raises(UserError, match="CUDA"):
        optim.build_optimizer(config(optimizer_type="AdamW8bit"), groups(), CPU)


def _step_lrs(cfg: TrainingConfig, total: int = 20) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.learning_rate)
    scheduler = optim.build_scheduler(cfg, opt, total)
    lrs = []
    for _ in range(total):
        lrs.append(scheduler.get_last_lr()[0])
        opt.step()
        scheduler.step()
    return lrs


SCHEDULER_OPTIONS: dict[str, dict[str, Any]] = {
    "piecewise_constant": {"lr_scheduler_args": ["step_rules=1:5,0.1"]},
    "cosine_with_min_lr": {"lr_scheduler_min_lr_ratio": 0.1, "lr_warmup_steps": 2},
    "warmup_stable_decay": {"lr_warmup_steps": 2, "lr_decay_steps": 0.25},
    "adafactor": {"optimizer_type": "AdaFactor"},
    "constant": {},
}


@pytest.mark.parametrize("name", sorted(LR_SCHEDULERS))
def test_every_scheduler_name_builds_or_is_refused(name: str) -> None:
    # Every name sd-scripts' get_scheduler_fix accepts trains; the ones it cannot build
    # either (reduce_lr_on_plateau needs a metric; cosine_warmup_with_min_lr and greedy get
    # arguments they do not take there) are refused at validation, in one line.
    spec = LR_SCHEDULERS[name]
    options = {"lr_scheduler": name, **SCHEDULER_OPTIONS.get(name, {"lr_warmup_steps": 2})}
    if spec.refused:
        with pytest.raises(UserError) as error:
            config(**options)
        assert name in str(error.value) and "\n" not in str(error.value)
        return
    cfg = config(**options)
    if name == "adafactor":
        opt = optim.build_optimizer(cfg, groups(), CPU)
        assert type(optim.build_scheduler(cfg, opt, 10)).__name__ == "AdafactorSchedule"
        return
    lrs = _step_lrs(cfg)
    assert all(lr >= 0 for lr in lrs) and max(lrs) == pytest.approx(1e-3)
    if spec.warmup:
        assert lrs[0] == 0.0  # the warmup starts from 0
    if name == "piecewise_constant":
        assert lrs[:5] == [1e-3] * 5 and lrs[5] == pytest.approx(1e-4)
    if name == "cosine_with_min_lr":
        assert lrs[-1] >= 1e-4 * 0.999  # never below min_lr_ratio x lr
    if name == "polynomial":
        assert lrs[-1] < lrs[2]


def test_scheduler_mistakes_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="takes no warmup"):
        config(lr_scheduler="constant", lr_warmup_steps=10)  # sd-scripts raises there too
    with pytest.raises(UserError, match="step_rules"):
        config(lr_scheduler="piecewise_constant")
    with pytest.raises(UserError, match="min_lr"):
        config(lr_scheduler="cosine_with_min_lr")
    with pytest.raises(UserError, match="needs optimizer_type AdaFactor"):
        config(lr_scheduler="adafactor")
    with pytest.raises(UserError, match="did you mean cosine"):
        config(lr_scheduler="cosin")


def test_warmup_and_decay_fractions_round_down() -> None:
    # sd-scripts: int(lr_warmup_steps * steps) for a float, the integer as given otherwise.
    linear = {"lr_scheduler": "linear"}
    assert optim.warmup_steps(config(lr_warmup_steps=0.1, **linear), 15) == 1  # 1.5 -> 1
    assert optim.warmup_steps(config(lr_warmup_steps=0.19, **linear), 10) == 1  # 1.9 -> 1
    assert optim.warmup_steps(config(lr_warmup_steps=3, **linear), 10) == 3
    assert optim.decay_steps(config(lr_decay_steps=0.25), 10) == 2
    lrs = _step_lrs(config(lr_scheduler="linear", lr_warmup_steps=0.19), 10)
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(1e-3)  # one warmup step


def test_lr_scheduler_args_reach_the_scheduler() -> None:
    # sd-scripts passes lr_scheduler_args (values through ast.literal_eval) to the
    # scheduler function: cosine's num_cycles=1.0 goes down and back up.
    half = _step_lrs(config(lr_scheduler="cosine"), 20)
    full = _step_lrs(config(lr_scheduler="cosine", lr_scheduler_args=["num_cycles=1.0"]), 20)
    assert half[-1] < 1e-4 and full[-1] > 0.8e-3
    with pytest.raises(UserError, match="lr_scheduler_args"):
        _step_lrs(config(lr_scheduler="cosine", lr_scheduler_args=["bogus=1"]), 5)


def test_lr_scheduler_type_names_a_torch_scheduler() -> None:
    # sd-scripts' lr_scheduler_type: a torch.optim.lr_scheduler class with
    # lr_scheduler_args as its arguments (no warmup).
    cfg = config(lr_scheduler_type="StepLR", lr_scheduler_args=["step_size=5", "gamma=0.5"])
    lrs = _step_lrs(cfg, 12)
    assert lrs[4] == pytest.approx(1e-3) and lrs[5] == pytest.approx(5e-4)
    with pytest.raises(UserError, match="lr_scheduler_type"):
        config(lr_scheduler_type="mymodule.Scheduler")


def test_adafactor_relative_step_uses_its_schedule() -> None:
    # sd-scripts: AdaFactor (relative_step True by default) drops the group LRs, runs
    # AdafactorSchedule(learning_rate) whatever lr_scheduler says, and records
    # lr_scheduler "adafactor:<lr>".
    cfg = config(optimizer_type="AdaFactor", lr_scheduler="cosine")
    opt = optim.build_optimizer(cfg, groups(), CPU)
    assert "lr" not in opt.param_groups[0] or opt.param_groups[0]["lr"] is None
    assert type(optim.build_scheduler(cfg, opt, 10)).__name__ == "AdafactorSchedule"
    fixed = config(optimizer_type="AdaFactor", optimizer_args=["relative_step=False"])
    assert not optim.adafactor_relative(fixed)
    assert optim.build_optimizer(fixed, groups(), CPU).param_groups[0]["lr"] == 1e-3
