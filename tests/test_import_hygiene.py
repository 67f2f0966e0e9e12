"""The light commands import no heavy stack; the layers import only downward (DESIGN §2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers", "textual", "accelerate", "safetensors")

_PROBE = """
import json, sys
watched = set(json.loads(sys.argv[2]))
sys.argv = ["tuilora", *json.loads(sys.argv[1])]
from tuilora.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & watched)
sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
"""


def heavy_modules_after(args: list[str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    marker = [line for line in result.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marker, result.stderr
    return list(json.loads(marker[-1].removeprefix("HEAVY=")))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["advise", "--help"],
        ["advise", "--category", "C", "--images", "40", "--vram", "12", "--format", "json"],
        ["advise", "--category", "C", "--images", "40", "--vram", "12"],
        ["advise", "--subject", "style", "--images", "900", "--format", "kohya-cmd"],
        ["categories"],
        ["tools", "--help"],
        *([["tools", tool, "--help"] for tool in ("inspect", "extract", "merge", "resize")]),
    ],
)
def test_light_commands_import_no_heavy_stack(args: list[str]) -> None:
    assert heavy_modules_after(args) == []


LIGHT_PACKAGES = (
    "tuilora.config",
    "tuilora.advisor",
    "tuilora.dataset",
    "tuilora.runs",
    "tuilora.modelfile",
    "tuilora.lorafile",
)


@pytest.mark.parametrize("package", LIGHT_PACKAGES)
def test_core_packages_import_without_torch_or_textual(package: str) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "bad = {m.split('.')[0] for m in sys.modules} & {'torch', 'textual', 'diffusers'}\n"
        "bad |= {m for m in sys.modules if m.startswith(('tuilora.engine', 'tuilora.screens'))}\n"
        "print(sorted(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
