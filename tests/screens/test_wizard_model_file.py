"""The wizard's base-model step reads the model file's header: it shows what it found and the
advice follows the file's family (the headless logic is tuilora.modelfile's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from stub_models import header_only_model
from textual.widgets import Static

from tuilora.screens.app import WizardApp
from tuilora.screens.hardware import HardwareScreen
from tuilora.wizard.state import WizardState

pytestmark = pytest.mark.anyio


def sdxl_header(path: Path) -> Path:
    """An SDXL checkpoint's header over sparse data (only the header is read)."""
    return header_only_model(path, "sdxl")


def test_the_model_file_decides_the_base_of_the_advice(tmp_path: Path) -> None:
    state = WizardState(values={"subject": "concept", "images": 40, "base": "sd15"})
    state.model_path = str(sdxl_header(tmp_path / "pony_v6.safetensors"))
    rec = state.recommendation()
    assert rec.answers.base == "sdxl" and rec.config["resolution"] == 1024
    warnings = {w.id: w.message for w in rec.warnings}
    assert "--base sd15 but pony_v6.safetensors is SDXL (Pony)" in warnings["model-base-mismatch"]


async def test_hardware_step_shows_what_the_model_file_is(
    make_app: Callable[..., WizardApp], workdir: Path
) -> None:
    sdxl_header(workdir / "xl.safetensors")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("enter", "ctrl+n", "down", "down", "enter", "ctrl+n")
        await pilot.press("tab", *"40", "ctrl+n")
        assert isinstance(app.screen, HardwareScreen)
        app.screen.query_one("#path-model_path").focus()
        await pilot.press(*"xl.safetensors")
        await pilot.pause()
        line = str(app.screen.query_one("#model-info", Static).render())
        assert line.startswith("SDXL, ") and line.endswith("fp16")
        assert app.advice.rec is not None
        assert app.advice.rec.config["resolution"] == 1024
