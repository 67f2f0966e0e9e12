"""Dataset audit for sd-scripts-style folders: header-only scan, captions, tags, buckets.

Importing the package costs nothing: the public names load on first use (PEP 562), so
``tuilora advise`` does not pay for Pillow or rich unless it scans a dataset. Nothing here
imports torch, numpy or textual (DESIGN §2; tests/dataset/test_dataset_imports.py checks).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuilora.dataset.buckets import (
        BucketChoice,
        BucketPlan,
        assign_bucket,
        default_bucket_range,
        make_buckets,
        select_bucket,
        select_bucket_no_upscale,
    )
    from tuilora.dataset.check import run_check
    from tuilora.dataset.model import (
        BucketCount,
        DatasetReport,
        FolderReport,
        ImageRecord,
        LeadingTags,
        ScanSettings,
        TagCount,
        TagReport,
    )
    from tuilora.dataset.problems import Problem
    from tuilora.dataset.report import report_to_dict, report_to_json
    from tuilora.dataset.scan import scan_dataset

_EXPORTS: dict[str, str] = {
    "BucketChoice": "buckets",
    "BucketPlan": "buckets",
    "assign_bucket": "buckets",
    "default_bucket_range": "buckets",
    "make_buckets": "buckets",
    "select_bucket": "buckets",
    "select_bucket_no_upscale": "buckets",
    "run_check": "check",
    "BucketCount": "model",
    "DatasetReport": "model",
    "FolderReport": "model",
    "ImageRecord": "model",
    "LeadingTags": "model",
    "ScanSettings": "model",
    "TagCount": "model",
    "TagReport": "model",
    "Problem": "problems",
    "report_to_dict": "report",
    "report_to_json": "report",
    "scan_dataset": "scan",
}

__all__ = [
    "BucketChoice",
    "BucketCount",
    "BucketPlan",
    "DatasetReport",
    "FolderReport",
    "ImageRecord",
    "LeadingTags",
    "Problem",
    "ScanSettings",
    "TagCount",
    "TagReport",
    "assign_bucket",
    "default_bucket_range",
    "make_buckets",
    "report_to_dict",
    "report_to_json",
    "run_check",
    "scan_dataset",
    "select_bucket",
    "select_bucket_no_upscale",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tuilora.dataset' has no attribute '{name}'")
    value = getattr(import_module(f"tuilora.dataset.{module}"), name)
    globals()[name] = value
    return value
