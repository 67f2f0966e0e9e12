"""Assemble a Recommendation: answers and facts in, the rules applied, config and plan out.

This module holds no guide knowledge: it builds the starting context (answers, the category
table's facts, the dataset's counts), pins what the user fixed, runs the rules, and sorts the
result into the JSON contract of DESIGN §3.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tuilora.advisor.answers import CATEGORIES, Answers
from tuilora.advisor.dataset_facts import DatasetFacts
from tuilora.advisor.rules import (
    Reason,
    Warning,
    apply_rules,
    categories,
    load_rules,
)
from tuilora.advisor.steps import count
from tuilora.config import TrainingConfig, check_one_field, config_field_names
from tuilora.errors import UserError

#: The config keys the advisor decides, in the order they are shown and exported (DESIGN §3).
CONFIG_KEYS: Final = (
    "network_module",
    "network_dim",
    "network_alpha",
    "network_args",
    "optimizer_type",
    "optimizer_args",
    "learning_rate",
    "unet_lr",
    "text_encoder_lr",
    "lr_scheduler",
    "lr_warmup_steps",
    "train_batch_size",
    "max_train_epochs",
    "max_train_steps",
    "resolution",
    "enable_bucket",
    "min_bucket_reso",
    "max_bucket_reso",
    "min_snr_gamma",
    "noise_offset",
    "flip_aug",
    "color_aug",
    "random_crop",
    "max_token_length",
    "clip_skip",
    "save_every_n_epochs",
    "save_every_n_steps",
    "seed",
    "scale_weight_norms",
    "cache_latents",
    "gradient_checkpointing",
    "network_train_unet_only",
    "cache_text_encoder_outputs",
    "mixed_precision",
    "save_precision",
    "prior_loss_weight",
    "shuffle_caption",
    "keep_tokens",
    "caption_extension",
    "save_model_as",
)

#: Plan entry -> the context name that holds it.
PLAN_SOURCES: Final = {
    "network_type": "network_type",
    "regularization": "regularization",
    "repeats": "repeats",
    "images": "images",
    "batch_size": "train_batch_size",
    "steps_per_epoch": "steps_per_epoch",
    "epochs": "planned_epochs",
    "total_steps": "total_steps",
    "file_size_mb": "file_size_mb",
    "vram_gb": "vram_estimate",
}

#: Names a user may pass to --explain besides the config keys.
EXPLAIN_ALIASES: Final = {
    **PLAN_SOURCES,
    "epochs": "max_train_epochs",
    "rank": "network_dim",
    "dim": "network_dim",
    "alpha": "network_alpha",
    "optimizer": "optimizer_type",
    "scheduler": "lr_scheduler",
    "batch": "train_batch_size",
}


@dataclass(frozen=True)
class Recommendation:
    answers: Answers
    config: dict[str, Any]
    plan: dict[str, Any]
    reasons: dict[str, list[Reason]]
    warnings: list[Warning]
    applied: tuple[str, ...]
    context: Mapping[str, Any] = field(repr=False)

    @property
    def errors(self) -> list[Warning]:
        return [w for w in self.warnings if w.severity == "error"]

    def to_json(self) -> dict[str, Any]:
        """The JSON contract of DESIGN §3."""
        return {
            "config": dict(self.config),
            "plan": dict(self.plan),
            "reasons": {k: [r.to_json() for r in v] for k, v in self.reasons.items()},
            "warnings": [w.to_json() for w in self.warnings],
        }

    def reasons_for(self, name: str) -> list[Reason]:
        """Reasons for a config key or plan entry; UserError with a suggestion otherwise."""
        key = EXPLAIN_ALIASES.get(name, name)
        if key in self.reasons:
            return self.reasons[key]
        known = sorted(set(self.config) | set(self.plan) | set(EXPLAIN_ALIASES))
        if name in known:
            return []
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"--explain {name!r}: no such field{hint}; e.g. network_dim, rank, epochs")

    def training_config(self, **extra: Any) -> TrainingConfig:
        """The recommendation as a validated TrainingConfig (plus paths or other fields)."""
        values = dict(self.config)
        values["base_type"] = self.answers.base
        values["network_type"] = self.plan["network_type"]
        values.update(extra)
        return TrainingConfig.from_dict(values, source="recommendation")


def recommend(
    answers: Answers,
    *,
    overrides: Mapping[str, Any] | None = None,
    dataset: DatasetFacts | None = None,
    processes: int = 1,
    notes: Sequence[Warning] = (),
) -> Recommendation:
    """The advice for ``answers``; ``overrides`` are config fields the user fixed; ``notes``
    are findings made before the rules (e.g. what ``--model`` is), shown with the warnings."""
    if dataset is not None:
        answers = answers.replace(images=dataset.images)
    answers.validate()
    context = _starting_context(answers, dataset, processes)
    pins = _pins(answers, overrides or {}, dataset)
    context.update({key: value for key, (value, _) in pins.items()})
    context["pinned"] = sorted(pins)
    evaluation = apply_rules(
        load_rules(), context, {key: reason for key, (_, reason) in pins.items()}
    )
    config = _config(context, pins)
    plan = {name: context.get(source) for name, source in PLAN_SOURCES.items()}
    plan["processes"] = processes
    if dataset is not None:
        plan["folders"] = [
            {"name": f.name, "repeats": f.repeats, "images": f.images} for f in dataset.folders
        ]
    shown = set(config) | {source for source in PLAN_SOURCES.values()}
    reasons = {key: value for key, value in evaluation.reasons.items() if key in shown}
    reasons = {**{k: reasons[k] for k in config if k in reasons}, **reasons}
    warnings = list(evaluation.warnings)
    if dataset is not None:
        warnings.extend(_dataset_warnings(dataset))
    warnings.extend(notes)
    return Recommendation(
        answers=answers,
        config=config,
        plan=plan,
        reasons=reasons,
        warnings=_sorted_warnings(warnings),
        applied=tuple(evaluation.applied),
        context=dict(context),
    )


def _starting_context(
    answers: Answers, dataset: DatasetFacts | None, processes: int
) -> dict[str, Any]:
    context: dict[str, Any] = {
        name: value
        for name, value in answers.to_dict().items()
        if name not in ("rank", "alpha", "batch_size")  # these become pins
    }
    context["processes"] = processes
    context["dataset"] = dataset is not None
    context["dataset_images"] = dataset.images_seen if dataset is not None else None
    # Options the step arithmetic reads, at sd-scripts' defaults unless the user sets them.
    defaults = TrainingConfig()
    for key in _ARITHMETIC_DEFAULTS:
        context[key] = getattr(defaults, key)
    for key in _UNDECIDED:
        context[key] = None
    context.update(_category_facts(answers.category))
    return context


#: Config fields only some rules set (SDXL on a small card); unset, they are left out.
_UNDECIDED: Final = ("network_train_unet_only", "cache_text_encoder_outputs")
#: Config fields no rule decides but the step arithmetic reads (``--set`` may change them).
_ARITHMETIC_DEFAULTS: Final = (
    "gradient_accumulation_steps",
    "bucket_reso_steps",
    "bucket_no_upscale",
    "reg_data_dir",
)


def _category_facts(category: str | None) -> dict[str, Any]:
    if category is None:
        return {
            "category_index": None,
            "category_rank_low": None,
            "category_rank_high": None,
            "next_category": None,
            "next_category_rank_low": None,
            "next_category_rank_high": None,
            "category_types": [],
        }
    table = categories()
    index = CATEGORIES.index(category)
    following = CATEGORIES[min(index + 1, len(CATEGORIES) - 1)]
    low, high = table[category]["rank"]
    next_low, next_high = table[following]["rank"]
    return {
        "category_index": index,
        "category_rank_low": low,
        "category_rank_high": high,
        "next_category": following,
        "next_category_rank_low": next_low,
        "next_category_rank_high": next_high,
        "category_types": list(table[category]["types"]),
    }


def _pins(
    answers: Answers, overrides: Mapping[str, Any], dataset: DatasetFacts | None
) -> dict[str, tuple[Any, Reason]]:
    pins: dict[str, tuple[Any, Reason]] = {}

    def pin(key: str, value: Any, rule: str, text: str, guide: Sequence[str] = ()) -> None:
        pins[key] = (value, Reason(rule=rule, guide=tuple(guide), text=text))

    if answers.rank is not None:
        pin("network_dim", answers.rank, "user-rank", f"You set the rank to {answers.rank}.")
    if answers.alpha is not None:
        pin(
            "network_alpha",
            float(answers.alpha),
            "user-alpha",
            f"You set the alpha to {answers.alpha}.",
        )
    if answers.batch_size is not None:
        pin(
            "train_batch_size",
            answers.batch_size,
            "user-batch-size",
            f"You set the batch size to {answers.batch_size}.",
        )
    if dataset is not None:
        repeats = {folder.repeats for folder in dataset.folders}
        names = ", ".join(
            f"{f.repeats}_{f.name} ({count(f.images, 'image')})" for f in dataset.folders
        )
        pin(
            "image_repeats",
            max(1, dataset.image_repeats),
            "dataset-counts",
            f"From the dataset: {names}.",
            ("G-START-EPOCHS",),
        )
        pin(
            "repeats",
            repeats.pop() if len(repeats) == 1 else None,
            "dataset-repeats",
            "The folders' own repeats are used (the <repeats>_ prefix of each folder): each"
            " image counts that many times per epoch, so fewer epochs reach the target steps"
            " (G-START-EPOCHS prefers 1 repeat and more epochs unless balancing folders).",
            ("G-START-EPOCHS",),
        )
    for key, value in overrides.items():
        checked = checked_override(key, value)
        pin(key, checked, "user-set", f"You set {key} = {format_override(checked)}.")
    return pins


def checked_override(key: str, value: Any) -> Any:
    """A user's value for a config field, checked as TrainingConfig checks it (type, range,
    choices) and in its normal form (``resolution = "512"`` is 512): a UserError naming
    the field otherwise, before any rule could trip over it."""
    known = set(config_field_names())
    if key not in known:
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"{key}: not a config field{hint}")
    return check_one_field(key, value)


def format_override(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _config(context: Mapping[str, Any], pins: Mapping[str, Any]) -> dict[str, Any]:
    config = {key: context[key] for key in CONFIG_KEYS if context.get(key) is not None}
    for key in pins:  # user-pinned fields outside the advisor's own set are kept too
        if key not in config and key in set(config_field_names()) and context.get(key) is not None:
            config[key] = context[key]
    return config


def _dataset_warnings(dataset: DatasetFacts) -> list[Warning]:
    """Dataset problems as advisor warnings. The advice itself is still valid, so a dataset
    error is a warning here (it says so); `tuilora train` is what refuses to start on it."""
    return [
        Warning(
            id=f"dataset-{problem.id}",
            severity="warning",
            guide=problem.guide or ("G-START-NOPERFECT",),
            message=("Dataset error: " if problem.severity == "error" else "") + problem.message,
        )
        for problem in dataset.problems
        if problem.severity in ("error", "warning")
    ]


_SEVERITY_ORDER: Final = {"error": 0, "warning": 1, "info": 2}


def _sorted_warnings(warnings: list[Warning]) -> list[Warning]:
    return sorted(warnings, key=lambda w: _SEVERITY_ORDER[w.severity])
