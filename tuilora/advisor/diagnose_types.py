"""The values diagnose works with: what the user saw, findings, changes, the result.

Plain frozen dataclasses with their JSON forms (the contract of ``--format json``), kept apart
from the logic in ``diagnose.py`` so the screen and the history can import them cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tuilora.advisor.rules import Notice
from tuilora.config import TrainingConfig
from tuilora.errors import UserError

STRENGTHS: Final = ("ok", "lower", "higher", "invisible")


@dataclass(frozen=True)
class Observations:
    """What the user saw when testing the LoRA (flags or the checklist screen)."""

    strength: str | None = None
    unet: float | None = None
    te: float | None = None
    noise: bool = False
    object: str | None = None
    overfit_from_start: bool = False
    one_checkpoint: bool = False
    epoch: int | None = None

    def validate(self) -> None:
        if self.strength is not None and self.strength not in STRENGTHS:
            raise UserError(f"--strength {self.strength!r}: choose one of {', '.join(STRENGTHS)}")
        for flag, value in (("--unet", self.unet), ("--te", self.te)):
            if value is not None and not (0 < value <= 4 and math.isfinite(value)):
                raise UserError(f"{flag} {value:g}: give the strength that looked right, 0 to 4")
        if self.epoch is not None and self.epoch < 1:
            raise UserError(f"--epoch {self.epoch}: epochs count from 1")
        if self.object is not None and not self.object.strip():
            raise UserError("--object: name the unwanted element, e.g. --object bag")

    @property
    def any(self) -> bool:
        return self != Observations()

    def facts(self) -> dict[str, Any]:
        split = self.unet is not None or self.te is not None
        return {
            "observed": self.any,
            "strength": self.strength or "",
            "split": split,
            "unet_strength": self.unet if self.unet is not None else 1.0,
            "te_strength": self.te if self.te is not None else 1.0,
            "noise": self.noise,
            "has_object": bool(self.object),
            "object": (self.object or "").strip(),
            "overfit_from_start": self.overfit_from_start,
            "one_checkpoint": self.one_checkpoint,
            "has_best_epoch": self.epoch is not None,
            "best_epoch": self.epoch if self.epoch is not None else 0,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "unet": self.unet,
            "te": self.te,
            "noise": self.noise,
            "object": self.object,
            "overfit_from_start": self.overfit_from_start,
            "one_checkpoint": self.one_checkpoint,
            "epoch": self.epoch,
        }


@dataclass(frozen=True)
class ObjectCounts:
    """How many captions of the run's dataset mention the persistent object."""

    word: str
    mentioned: int
    total: int


#: A checklist finding is the evaluator's Notice (shown as "text" in diagnose's JSON).
Finding = Notice


@dataclass(frozen=True)
class Change:
    old: Any
    new: Any
    reason: str
    guide: tuple[str, ...]
    check: str

    def to_json(self) -> dict[str, Any]:
        return {"from": self.old, "to": self.new, "reason": self.reason, "guide": list(self.guide)}


@dataclass(frozen=True)
class SnapshotChoice:
    epoch: int | None
    file: str
    exists: bool
    reason: str
    check: str

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "file": self.file,
            "exists": self.exists,
            "reason": self.reason,
            "check": self.check,
        }


@dataclass(frozen=True)
class Diagnosis:
    findings: tuple[Finding, ...]
    snapshot: SnapshotChoice | None
    changes: Mapping[str, Change]
    config: TrainingConfig
    original: TrainingConfig
    applied: tuple[str, ...]
    context: Mapping[str, Any] = field(repr=False)
    #: Why there is no snapshot to prefer (empty when there is one).
    snapshot_note: str = ""

    def to_json(self) -> dict[str, Any]:
        """``{"findings": [...], "snapshot": ..., "changes": {...}, "config": {...}}``."""
        return {
            "findings": [f.to_json("text") for f in self.findings],
            "snapshot": self.snapshot.to_json() if self.snapshot else None,
            "changes": {name: change.to_json() for name, change in self.changes.items()},
            "config": config_values(self.config),
        }


def config_values(config: TrainingConfig) -> dict[str, Any]:
    """The config's set fields, flat (TOML has no null, so neither does this)."""
    return {key: value for key, value in config.to_dict().items() if value is not None}
