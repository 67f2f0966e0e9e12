"""The part of a dataset report the advisor needs (``tuilora advise --dataset DIR``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuilora.dataset.model import DatasetReport
from tuilora.dataset.problems import Severity


@dataclass(frozen=True, slots=True)
class FolderSummary:
    name: str
    repeats: int
    images: int
    captioned: int

    @property
    def images_x_repeats(self) -> int:
        return self.images * self.repeats


@dataclass(frozen=True, slots=True)
class ProblemSummary:
    id: str
    severity: Severity
    message: str
    path: str


@dataclass(frozen=True, slots=True)
class AdvisorSummary:
    """Training folders (regularization folders are left out of the step arithmetic, as
    sd-scripts counts an epoch by training images), their totals, and the dataset's
    errors and warnings (infos are left out: they change no number)."""

    folders: tuple[FolderSummary, ...]
    total_images: int
    total_images_x_repeats: int
    reg_images: int
    problems: tuple[ProblemSummary, ...]

    def steps_per_epoch(self, batch_size: int) -> int:
        """ceil(Σ images × repeats / batch size), sd-scripts' arithmetic (G-START-EPOCHS)."""
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        return math.ceil(self.total_images_x_repeats / batch_size)

    @property
    def has_errors(self) -> bool:
        return any(item.severity == "error" for item in self.problems)

    def to_dict(self) -> dict[str, object]:
        return {
            "folders": [
                {
                    "name": folder.name,
                    "repeats": folder.repeats,
                    "images": folder.images,
                    "images_x_repeats": folder.images_x_repeats,
                    "captioned": folder.captioned,
                }
                for folder in self.folders
            ],
            "total_images": self.total_images,
            "total_images_x_repeats": self.total_images_x_repeats,
            "reg_images": self.reg_images,
            "problems": [
                {"id": p.id, "severity": p.severity, "message": p.message, "path": p.path}
                for p in self.problems
            ],
        }


def advisor_summary(report: DatasetReport) -> AdvisorSummary:
    folders = tuple(
        FolderSummary(folder.name, folder.repeats, folder.images, folder.captioned)
        for folder in report.train_folders
    )
    problems = tuple(
        ProblemSummary(item.id, item.severity, item.message, item.path)
        for item in report.problems
        if item.severity != "info"
    )
    return AdvisorSummary(
        folders,
        report.total_images,
        report.total_images_x_repeats,
        report.reg_images,
        problems,
    )
