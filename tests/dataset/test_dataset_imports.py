"""The dataset package stays light: no torch, numpy or textual, and rich only for output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODULES = (
    "audit",
    "buckets",
    "captions",
    "check",
    "duplicates",
    "headers",
    "images",
    "layout",
    "model",
    "problems",
    "render",
    "report",
    "scan",
    "tags",
)
NEVER = ("torch", "numpy", "textual", "diffusers", "tuilora.engine", "tuilora.screens")

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_import(module: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_nothing_heavy(module: str) -> None:
    loaded = _modules_after_import(f"tuilora.dataset.{module}")
    heavy = sorted(name for name in loaded if name.split(".")[0] in NEVER or name in NEVER)
    heavy += sorted(
        name for name in loaded if name.startswith(("tuilora.engine", "tuilora.screens"))
    )
    assert heavy == []


def test_scanning_does_not_need_rich() -> None:
    loaded = _modules_after_import("tuilora.dataset.scan")
    assert "rich" not in loaded


def test_package_import_is_lazy() -> None:
    loaded = _modules_after_import("tuilora.dataset")
    assert "PIL" not in loaded and "rich" not in loaded
