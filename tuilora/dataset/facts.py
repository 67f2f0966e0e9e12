"""The dataset as the advisor sees it: real folders, counts and problems (``advise --dataset``
and ``tuilora train``'s pre-flight check)."""

from __future__ import annotations

from tuilora.advisor.recommend import DatasetFacts, DatasetFolder, DatasetProblem
from tuilora.dataset.scan import scan_dataset


def dataset_facts(
    path: str, *, caption_extension: str = ".txt", resolution: int = 512, subject: str = "character"
) -> DatasetFacts:
    report = scan_dataset(
        path, resolution=resolution, subject=subject, caption_extension=caption_extension
    )
    folders = tuple(
        DatasetFolder(
            name=folder.class_tokens or folder.name, repeats=folder.repeats, images=folder.images
        )
        for folder in report.folders
        if not folder.is_reg
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
    return DatasetFacts(path=path, folders=folders, problems=problems)
