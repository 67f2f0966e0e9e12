"""What the wizard knows so far, and the advice for it (no Textual: testable on its own).

The screens write answers into one ``WizardState``; ``advise()`` turns it into the same
``Answers`` object the ``tuilora advise`` flags build and calls the same ``recommend()``, so
the wizard and the command line cannot disagree (DESIGN §3). Questions the chosen subject
does not ask are left out, exactly as an ``advise`` command line would leave their flags out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from tuilora.advisor.answers import QUESTIONS_BY_NAME, Answers
from tuilora.advisor.cli_advise import model_base
from tuilora.advisor.dataset_facts import DatasetFacts
from tuilora.advisor.recommend import Recommendation, recommend
from tuilora.errors import UserError

Mode = Literal["train", "advise"]

#: Image counts the live advice assumes before the dataset step (the middle of the guide's
#: ranges, G-NEEDS-IMAGES), so the side panel has numbers from the first answer on.
PROVISIONAL_IMAGES: Final = {"character": 40, "style": 1000, "concept": 200, "vehicle": 40}
#: DESIGN §3: without nvidia-smi the advisor assumes a 24 GB card (and says so).
ASSUMED_VRAM_GB: Final = 24.0


@dataclass(frozen=True)
class Advice:
    """A recommendation, or the reason there is none yet; ``note`` says what was assumed."""

    rec: Recommendation | None
    note: str = ""
    error: str = ""


@dataclass
class WizardState:
    """Answers by question name (``answers.QUESTIONS``), paths, the scanned dataset, edits."""

    values: dict[str, Any] = field(default_factory=dict)
    mode: Mode = "train"
    #: What nvidia-smi reported (None: no GPU found or not asked yet).
    detected_vram: float | None = None
    #: The user typed a VRAM figure (else the detected or assumed one is used).
    vram_typed: bool = False
    dataset_path: str = ""
    dataset: DatasetFacts | None = None
    model_path: str = ""
    output_name: str = ""
    output_dir: str = ""
    #: Config fields the user changed on the review step (sd-scripts names -> values).
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Data-parallel processes (GPUs training together), as ``advise --processes``.
    processes: int = 1
    #: Sample prompts (sd-scripts lines); empty: no samples during training; None: the
    #: samples step has not been seen (it then suggests prompts).
    sample_prompts: list[str] | None = None
    #: ``sample_every_n_epochs`` (None: as often as snapshots are saved).
    sample_every: int | None = None
    #: The dataset's trigger tags from the scan ("" before a scan), for the sample prompts.
    trigger: str = ""
    #: The dataset step was reached in this session; before it, image counts are assumed
    #: (even remembered ones), so the advice never shows a dataset's arithmetic too early.
    reached_dataset: bool = False

    # ------------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The current answer, or the question's default from ``Answers``."""
        if name in self.values:
            return self.values[name]
        return getattr(Answers(), name)

    def set(self, name: str, value: Any) -> None:
        if name not in QUESTIONS_BY_NAME:
            raise KeyError(name)
        self.values[name] = value

    @property
    def subject(self) -> str:
        return str(self.get("subject"))

    def images(self) -> int | None:
        if self.dataset is not None:
            return self.dataset.images
        value = self.values.get("images")
        return int(value) if value is not None else None

    def vram(self) -> tuple[float, str]:
        """(GB, source) as ``advise`` would record it: typed, detected, or assumed."""
        typed = self.values.get("vram")
        if self.vram_typed and typed is not None:
            return float(typed), "flag"
        if self.detected_vram is not None:
            return self.detected_vram, "nvidia-smi"
        return ASSUMED_VRAM_GB, "assumed"

    # ------------------------------------------------------------------------------------
    def answer_values(self) -> dict[str, Any]:
        """The answers the chosen subject asks, as ``Answers.from_dict`` takes them."""
        asked = Answers(subject=self.subject).asked()
        out: dict[str, Any] = {}
        for question in asked:
            if question.name in ("images", "vram"):
                continue
            value = self.values.get(question.name)
            if value is not None:
                out[question.name] = value
        images = self.images()
        if images is not None:
            out["images"] = images
        out["vram"], out["vram_source"] = self.vram()
        return out

    def answers(self) -> Answers:
        """The complete answers; UserError naming the flag when one is missing or bad."""
        return Answers.from_dict(self.answer_values()).validate()

    def path_overrides(self) -> dict[str, Any]:
        """Paths as config fields, exactly as ``advise --model --dataset --name --output-dir``."""
        pairs = {
            "pretrained_model_name_or_path": self.model_path,
            "train_data_dir": self.dataset_path if self.dataset is not None else "",
            "output_name": self.output_name,
            "output_dir": self.output_dir,
        }
        # "~/data" as typed at a shell: neither sd-scripts nor tuilora train would expand it
        return {key: os.path.expanduser(value) for key, value in pairs.items() if value}

    def all_overrides(self) -> dict[str, Any]:
        return {**self.path_overrides(), **self.overrides}

    @property
    def images_assumed(self) -> bool:
        """The advice's image count is the provisional one (before the dataset step)."""
        return not self.reached_dataset or self.images() is None

    def recommendation(self, overrides: dict[str, Any] | None = None) -> Recommendation:
        """The advice for the complete answers (``overrides`` replace the user's edits)."""
        edits = self.overrides if overrides is None else overrides
        return self._recommend(self.answers(), {**self.path_overrides(), **edits})

    def _recommend(self, answers: Answers, overrides: dict[str, Any]) -> Recommendation:
        """``recommend`` as ``advise`` calls it: the model file's family decides the base
        (``advise --model``), the processes count, and with prompts the samples come with
        every snapshot."""
        answers, notes = model_base(answers, self.model_path, self.values.get("base"))

        def advised(pins: dict[str, Any]) -> Recommendation:
            return recommend(
                answers, overrides=pins, dataset=self.dataset, processes=self.processes, notes=notes
            )

        rec = advised(overrides)
        if not self.sample_prompts or "sample_every_n_epochs" in overrides:
            return rec
        every = self.sample_every or rec.config.get("save_every_n_epochs") or 1
        return advised({**overrides, "sample_every_n_epochs": every})

    def advise(self) -> Advice:
        """Advice for the side panel: assumptions filled in until the user has answered."""
        values = self.answer_values()
        note = ""
        if self.subject == "character" and values.get("category") is None:
            return Advice(None, note="Choose a category to see the advice.")
        if self.dataset is not None and self.dataset.images == 0:
            return Advice(None, error="The dataset folder has no training images yet.")
        if values.get("images") is None or not self.reached_dataset:
            values["images"] = PROVISIONAL_IMAGES[self.subject]
            until = (
                "you scan a folder or type a count" if self.reached_dataset else "the dataset step"
            )
            note = f"Assuming {values['images']} images until {until}."
        if values["vram_source"] == "assumed":
            note = (note + " " if note else "") + "No GPU found: assuming 24 GB."
        try:
            answers = Answers.from_dict(values).validate()
            rec = self._recommend(answers, self.all_overrides())
        except UserError as exc:
            return Advice(None, note=note, error=str(exc))
        return Advice(rec, note=note)

    # ------------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line about the answers, for the welcome screen's "start from last answers"."""
        parts = [self.subject]
        if self.subject == "character" and self.values.get("category"):
            parts.append(f"category {self.values['category']}")
        images = self.images()
        if images is not None:
            parts.append(f"{images} images")
        if self.values.get("base"):
            parts.append(str(self.values["base"]))
        if self.vram_typed and self.values.get("vram") is not None:
            parts.append(f"{float(self.values['vram']):g} GB")
        if self.output_name:
            parts.append(self.output_name)
        return ", ".join(parts)
