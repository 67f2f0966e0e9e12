"""The JSON form of a dataset report: a stable shape that scripts and tests read.

The shape is documented, with an example, in ``docs/dataset.md``. Keys are only ever added,
never renamed or removed, without bumping ``SCHEMA``. Per-image records are not part of it
(they would dwarf the rest for large datasets); ``DatasetReport.images`` has them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Final

from tuilora.dataset.model import DatasetReport

SCHEMA: Final = "tuilora.dataset-report/1"


def exit_code(report: DatasetReport) -> int:
    """0 when the dataset has no errors, 1 when it has (DESIGN §1: failure during work)."""
    return 1 if report.has_errors else 0


def report_to_dict(report: DatasetReport) -> dict[str, object]:
    tags = report.tags
    return {
        "schema": SCHEMA,
        "path": report.path,
        "reg_dir": report.reg_dir,
        "settings": asdict(report.settings),
        "summary": {
            "folders": len(report.train_folders),
            "images": report.total_images,
            "images_x_repeats": report.total_images_x_repeats,
            "captioned": report.captioned,
            "unreadable_images": report.unreadable_images,
            "skipped_images": report.skipped_images,
            "reg_images": report.reg_images,
            "errors": report.count("error"),
            "warnings": report.count("warning"),
            "infos": report.count("info"),
            "exit_code": exit_code(report),
        },
        "folders": [
            {
                "name": folder.name,
                "path": folder.path,
                "is_reg": folder.is_reg,
                "repeats": folder.repeats,
                "class_tokens": folder.class_tokens,
                "images": folder.images,
                "images_x_repeats": folder.images_x_repeats,
                "captioned": folder.captioned,
                "unreadable": folder.unreadable,
            }
            for folder in report.folders
        ],
        "skipped_folders": [
            {
                "name": folder.name,
                "path": folder.path,
                "is_reg": folder.is_reg,
                "images": folder.images,
                "unreadable": folder.unreadable,
            }
            for folder in report.skipped_folders
        ],
        "buckets": [asdict(bucket) for bucket in report.buckets],
        "tags": {
            "captions": tags.captions,
            "trigger": list(tags.trigger),
            "keep_tokens": tags.keep_tokens,
            "leading": [{"tags": list(lead.tags), "images": lead.images} for lead in tags.leading],
            "frequency": [asdict(tag) for tag in tags.tags],
            "single_image": list(tags.single_image),
            "ss_tag_frequency": {
                folder: dict(counts) for folder, counts in tags.ss_tag_frequency.items()
            },
        },
        "problems": [item.to_dict() for item in report.problems],
    }


def report_to_json(report: DatasetReport) -> str:
    # ensure_ascii=False keeps tags and file names readable; display_path() has already
    # replaced anything that UTF-8 cannot encode.
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False)
