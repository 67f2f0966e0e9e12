"""The dataset as the advisor sees it: real folders, counts and problems (``advise --dataset``,
the wizard's dataset step and ``tuilora train``'s pre-flight check)."""

from __future__ import annotations

from tuilora.advisor.recommend import DatasetFacts, DatasetFolder, DatasetProblem
from tuilora.dataset.model import DatasetReport
from tuilora.dataset.scan import scan_dataset


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
    report = scan_dataset(
        path,
        resolution=resolution,
        subject=subject,
        caption_extension=caption_extension,
        near_duplicates=False,
    )
    return facts_from_report(report)
