"""The closed set of questions about the subject, declared once.

The wizard's widgets and ``tuilora advise``'s flags are both generated from ``QUESTIONS``, so
the two views cannot disagree (DESIGN §3, STYLE "Declare once, render many ways").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from tuilora.config import BASE_TYPES
from tuilora.dataset.model import SUBJECTS
from tuilora.errors import UserError

Kind = Literal["choice", "bool", "int", "float"]

CATEGORIES: Final = ("A", "B", "C", "D", "E", "F", "G", "H", "I")
PRIORS: Final = ("none", "some", "strong")
QUALITIES: Final = ("good", "bad")
GOALS: Final = ("likeness", "accuracy")
#: The base families are the config's (``base_type``); the subjects are the dataset
#: package's (it words its image-count advice per subject): each list is declared once.
BASES: Final = BASE_TYPES
OPTIMIZERS: Final = ("auto", "prodigy", "dadaptadam", "adamw8bit", "adamw", "adafactor", "lion")
NETWORKS: Final = ("auto", "lora", "locon", "loha", "lokr", "ia3")
VRAM_SOURCES: Final = ("flag", "nvidia-smi", "assumed")

MAX_RANK: Final = 768


@dataclass(frozen=True)
class Question:
    """One answer: its name on ``Answers``, its flag, its values and the words around it."""

    name: str
    flag: str
    kind: Kind
    prompt: str
    help: str
    choices: tuple[str, ...] = ()
    #: Which subjects the question is asked for (empty: all).
    subjects: tuple[str, ...] = ()
    #: Lower bound for numbers; exclusive for floats (VRAM must be > 0).
    minimum: float | None = None
    maximum: float | None = None


QUESTIONS: Final[tuple[Question, ...]] = (
    Question(
        "subject",
        "--subject",
        "choice",
        "What is the LoRA of?",
        "kind of subject",
        SUBJECTS,
    ),
    Question(
        "category",
        "--category",
        "choice",
        "Which difficulty category is the character?",
        "character difficulty category A-I (see `tuilora categories`)",
        CATEGORIES,
        subjects=("character",),
    ),
    Question(
        "male",
        "--male",
        "bool",
        "Is the character male?",
        "male character: half a category harder on most checkpoints (G-CAT-MALE)",
        subjects=("character",),
    ),
    Question(
        "prior",
        "--prior",
        "choice",
        "How well does the base model already know it?",
        "prior knowledge of the base model (G-CAT-PRIOR)",
        PRIORS,
        subjects=("character", "style", "concept", "vehicle"),
    ),
    Question(
        "quality",
        "--quality",
        "choice",
        "How good are the input images?",
        "input quality; bad turns regularization on (G-START)",
        QUALITIES,
    ),
    Question(
        "goal",
        "--goal",
        "choice",
        "What must be right?",
        "likeness (face only) or accuracy (outfit, body, poses) (G-CAT-INTENT)",
        GOALS,
        subjects=("character",),
    ),
    Question(
        "asymmetric",
        "--asymmetric",
        "bool",
        "Is the design asymmetric?",
        "asymmetric design: no flip augmentation (G-AUG)",
        subjects=("character", "vehicle"),
    ),
    Question(
        "realistic",
        "--realistic",
        "bool",
        "Should the vehicle look realistic?",
        "realistic vehicle: rank 128 (G-CAT-VEHICLE)",
        subjects=("vehicle",),
    ),
    Question(
        "simple",
        "--simple",
        "bool",
        "Is the concept simple (clothing, pose, background)?",
        "simple concept: rank 8 (G-RANK)",
        subjects=("concept",),
    ),
    Question(
        "images",
        "--images",
        "int",
        "How many training images?",
        "number of training images",
        minimum=1,
    ),
    Question(
        "vram",
        "--vram",
        "float",
        "How much GPU memory (GB)?",
        "GPU memory in GB (default: from nvidia-smi, else 24)",
        minimum=0,
    ),
    Question(
        "base",
        "--base",
        "choice",
        "Which base model family?",
        "base model: sd15, nai (anime), sd2, sdxl (G-BASE)",
        BASES,
    ),
    Question(
        "optimizer",
        "--optimizer",
        "choice",
        "Which optimizer?",
        "optimizer; auto picks Prodigy when the card allows it (G-EASY-PRODIGY)",
        OPTIMIZERS,
    ),
    Question(
        "network",
        "--network",
        "choice",
        "Which network type?",
        "lora (LierLa), locon (C3Lier), loha, lokr, ia3; auto = lora",
        NETWORKS,
    ),
    Question(
        "batch_size",
        "--batch-size",
        "int",
        "Batch size?",
        "images per step (default 1, or 2 with >= 16 GB on SD1.x/SD2)",
        minimum=1,
        maximum=1024,
    ),
    Question(
        "rank",
        "--rank",
        "int",
        "Rank (network_dim)?",
        "override the recommended rank (1-768)",
        minimum=1,
        maximum=MAX_RANK,
    ),
    Question(
        "alpha",
        "--alpha",
        "int",
        "Alpha (network_alpha)?",
        "override the recommended alpha (<= rank)",
        minimum=1,
        maximum=MAX_RANK,
    ),
)

QUESTIONS_BY_NAME: Final = {question.name: question for question in QUESTIONS}


@dataclass(frozen=True)
class Answers:
    """What the user told us about the subject and the machine."""

    subject: str = "character"
    category: str | None = None
    male: bool = False
    prior: str = "none"
    quality: str = "good"
    goal: str = "accuracy"
    asymmetric: bool = False
    realistic: bool = False
    simple: bool = False
    images: int | None = None
    vram: float | None = None
    #: Where ``vram`` came from; "assumed" makes the advisor say it guessed 24 GB.
    vram_source: str = "flag"
    base: str = "sd15"
    optimizer: str = "auto"
    network: str = "auto"
    batch_size: int | None = None
    rank: int | None = None
    alpha: int | None = None

    def validate(self, *, images_required: bool = True) -> Answers:
        """Raise UserError naming the flag of the first bad answer; return self."""
        for question in QUESTIONS:
            _check_answer(question, getattr(self, question.name))
        self._check_subject_answers()
        if self.subject == "character" and self.category is None:
            raise UserError(
                "--category is required for a character: choose one of A B C D E F G H I"
                " (see `tuilora categories`)"
            )
        if images_required and self.images is None:
            raise UserError("--images is required: give the number of images, or --dataset DIR")
        if self.alpha is not None and self.rank is not None and self.alpha > self.rank:
            raise UserError(
                f"--alpha {self.alpha} is above --rank {self.rank}: alpha must be <= rank"
                " (alpha above rank overfits strongly, G-ALPHA)"
            )
        if self.vram_source not in VRAM_SOURCES:
            raise UserError(f"vram_source {self.vram_source!r}: one of {', '.join(VRAM_SOURCES)}")
        return self

    def _check_subject_answers(self) -> None:
        """An answer the subject is not asked (--category for a style) contradicts it."""
        defaults = Answers()
        for question in QUESTIONS:
            value = getattr(self, question.name)
            if not question.subjects or self.subject in question.subjects:
                continue
            if value != getattr(defaults, question.name):
                asked_for = " or ".join(f"--subject {s}" for s in question.subjects)
                raise UserError(
                    f"{question.flag} applies to {asked_for} only, not --subject {self.subject}:"
                    f" drop {question.flag}"
                )

    def replace(self, **changes: Any) -> Answers:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Answers:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown answer {unknown[0]!r}: one of {', '.join(sorted(known))}")
        return cls(**dict(values))

    def asked(self) -> tuple[Question, ...]:
        """The questions that apply to this subject, in order."""
        return tuple(q for q in QUESTIONS if not q.subjects or self.subject in q.subjects)


def _check_answer(question: Question, value: Any) -> None:
    flag = question.flag
    if value is None:
        return
    if question.kind == "choice":
        if value not in question.choices:
            raise UserError(f"{flag} {value!r} is not one of: {', '.join(question.choices)}")
    elif question.kind == "bool":
        if not isinstance(value, bool):
            raise UserError(f"{flag} must be true or false, got {value!r}")
    elif question.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{flag} must be a whole number, got {value!r}")
        _check_range(question, value)
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{flag} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise UserError(f"{flag} must be a finite number, got {value!r}")
        if question.minimum is not None and value <= question.minimum:
            raise UserError(f"{flag} must be above {question.minimum:g}, got {value:g}")


def _check_range(question: Question, value: int) -> None:
    low, high = question.minimum, question.maximum
    if low is not None and value < low:
        raise UserError(f"{question.flag} must be at least {low:g}, got {value}")
    if high is not None and value > high:
        raise UserError(f"{question.flag} must be at most {high:g}, got {value}")


def parse_number(question: Question, text: str) -> int | float:
    """Parse typed text for a numeric question ("1e3" or "40"), naming the flag on failure."""
    try:
        number = float(text)
    except ValueError:
        raise UserError(f"{question.flag} must be a number, got {text!r}") from None
    if question.kind == "int":
        if not number.is_integer():
            raise UserError(f"{question.flag} must be a whole number, got {text!r}")
        return int(number)
    return number
