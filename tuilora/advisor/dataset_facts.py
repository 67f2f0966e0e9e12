"""The dataset as the advisor sees it: real folders, counts and problems (``advise --dataset``,
the wizard's dataset step and ``tuilora train``'s pre-flight check).

The adapter from a scan (``tuilora.dataset``) to the advisor's facts lives here, in the
advisor, so the dataset package never imports the advisor (the core's arrows point down).
The scanner loads lazily: importing this module costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuilora.dataset.model import DatasetReport


@dataclass(frozen=True)
class DatasetFolder:
    name: str
    repeats: int
    images: int


@dataclass(frozen=True)
class DatasetProblem:
    id: str
    severity: str
    message: str
    guide: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetFacts:
    """What the advisor needs from a scanned dataset (real counts, repeats and problems)."""

    path: str
    folders: tuple[DatasetFolder, ...]
    problems: tuple[DatasetProblem, ...] = ()

    @property
    def images(self) -> int:
        return sum(folder.images for folder in self.folders)

    @property
    def image_repeats(self) -> int:
        return sum(folder.images * folder.repeats for folder in self.folders)


def facts_from_report(report: DatasetReport) -> DatasetFacts:
    """The advisor's view of a scan already made (the wizard keeps the full report)."""
    folders = tuple(
        DatasetFolder(
            name=folder.class_tokens or folder.name, repeats=folder.repeats, images=folder.images
        )
        for folder in report.train_folders
    )
    problems = tuple(
        DatasetProblem(
            id=problem.id,
            severity=problem.severity,
            message=problem.message,  # the scanner's messages already name the file
            guide=tuple(problem.guide),
        )
        for problem in report.problems
    )
    return DatasetFacts(path=report.path, folders=folders, problems=problems)


def dataset_facts(
    path: str, *, caption_extension: str = ".txt", resolution: int = 512, subject: str = "character"
) -> DatasetFacts:
    # Near-duplicates are only ever "info", which the advisor and the pre-flight drop; the
    # perceptual hash is the one step that decodes pixels, so it is skipped here.
    from tuilora.dataset.scan import scan_dataset

    report = scan_dataset(
        path,
        resolution=resolution,
        subject=subject,
        caption_extension=caption_extension,
        near_duplicates=False,
    )
    return facts_from_report(report)
