"""One source of truth: the whole wizard, driven with keys, saves the same sd-scripts TOML
as ``tuilora advise --format kohya-toml`` for the same answers (DESIGN §3, issue 7)."""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tuilora.cli import main
from tuilora.screens.app import WizardApp
from tuilora.screens.finish import FinishScreen
from tuilora.screens.review import ReviewScreen

pytestmark = pytest.mark.anyio


async def test_wizard_saves_what_advise_prints(
    make_app: Callable[..., WizardApp], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("enter")  # welcome: new LoRA
        await pilot.press("enter")  # subject: character (the default), and on
        await pilot.press(*["down"] * 4, "enter")  # category E, and on
        await pilot.press("space")  # male
        await pilot.press("tab", "down", "enter")  # prior: some; Enter goes to the next field
        await pilot.press("down", "enter")  # quality: bad
        await pilot.press("up", "enter")  # goal: likeness
        await pilot.press("ctrl+n")
        await pilot.press("tab", *"60", "ctrl+n")  # dataset: just the image count
        await pilot.press(*"16", "tab", "down", "down", "down", "enter")  # 16 GB, sdxl, on
        await pilot.press("tab", "tab", *"models/base.safetensors", "tab", *"hero")
        await pilot.press("ctrl+n", "ctrl+n")  # hardware, the suggested sample prompts
        assert isinstance(app.screen, ReviewScreen), app.screen.query_one("#step-error").render()
        assert app.advice.rec is not None
        row = list(app.advice.rec.config).index("train_batch_size") + 3
        await pilot.press(*["down"] * row, "enter", "ctrl+u", "2", "enter")
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, FinishScreen)
        await pilot.press("ctrl+s")
        await pilot.pause()
    saved = (workdir / "hero.sdscripts.toml").read_text(encoding="utf-8")
    first = saved.splitlines()[0]
    assert first.startswith("# Made by: tuilora advise --subject character --category E --male")
    argv = shlex.split(first.removeprefix("# Made by: tuilora "))

    with pytest.raises(SystemExit) as exited:
        main([*argv, "--format", "kohya-toml"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert tomllib.loads(saved) == tomllib.loads(printed)  # comments (the header) aside
    data = tomllib.loads(saved)
    assert data["resolution"] == "1024,1024" and data["train_batch_size"] == 2
    assert data["pretrained_model_name_or_path"] == str(workdir / "models/base.safetensors")
    assert data["output_dir"] == str(workdir / "runs" / "hero")  # the wizard's run folder
    prompts = workdir / "hero.prompts.txt"
    assert data["sample_prompts"] == str(prompts) and data["sample_every_n_epochs"] >= 1
    assert "--d 420" in prompts.read_text(encoding="utf-8")
