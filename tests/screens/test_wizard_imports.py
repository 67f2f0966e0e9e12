"""The wizard process never imports the training stack; its logic imports no Textual."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tuilora.wizard

HEAVY = ("torch", "diffusers", "transformers", "accelerate", "safetensors")

_RUN_TO_FIRST_PAINT = """
import json, sys
from tuilora.screens.app import WizardApp

class Painted(WizardApp):
    def on_ready(self) -> None:
        self.exit(0)

Painted(detect_vram=lambda: None).run(headless=True, size=(80, 24))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def modules_after(code: str, tmp_config: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"XDG_CONFIG_HOME": tmp_config, "PATH": "/nonexistent", "HOME": tmp_config},
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_app_paints_without_the_training_stack(tmp_path: object) -> None:
    loaded = modules_after(_RUN_TO_FIRST_PAINT, str(tmp_path))
    assert "textual" in loaded
    assert loaded.isdisjoint(HEAVY)


#: Every module of the headless wizard package, plus the screens' pure text renderers.
HEADLESS = sorted(
    f"tuilora.wizard.{path.stem}"
    for path in Path(tuilora.wizard.__file__).parent.glob("*.py")
    if path.stem != "__init__"
) + ["tuilora.screens.dataset_view", "tuilora.screens.monitor_text"]


def test_the_wizard_package_holds_the_headless_parts() -> None:
    names = {name.rsplit(".", 1)[1] for name in HEADLESS}
    assert {"state", "memory", "fields", "steps", "actions"} <= names


@pytest.mark.parametrize("module", HEADLESS)
def test_the_wizard_logic_imports_without_textual(module: str, tmp_path: object) -> None:
    code = (
        f"import json, sys, {module}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = modules_after(code, str(tmp_path))
    assert "textual" not in loaded
    assert loaded.isdisjoint(HEAVY)
