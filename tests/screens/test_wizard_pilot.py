"""Each wizard step driven with the keyboard through Pilot, including the validation errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, RadioSet, Static

from tuilora.screens.app import WizardApp
from tuilora.screens.command_view import CommandView
from tuilora.screens.dataset_step import DatasetScreen
from tuilora.screens.details import DetailsScreen
from tuilora.screens.dialogs import ConfirmQuit, HelpScreen
from tuilora.screens.finish import FinishScreen
from tuilora.screens.hardware import HardwareScreen
from tuilora.screens.review import ReviewScreen
from tuilora.screens.run_summary import RunScreen
from tuilora.screens.subject import CategoryScreen, SubjectScreen
from tuilora.screens.welcome import WelcomeScreen
from tuilora.wizard.memory import load_last

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
MakeApp = Callable[..., WizardApp]


def text_of(app: WizardApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def to_dataset(pilot: Pilot[int], category_downs: int = 2) -> None:
    """Welcome -> new -> character -> category (A + downs) -> details -> dataset."""
    await pilot.app.workers.wait_for_complete()
    await pilot.press("enter", "ctrl+n", *["down"] * category_downs, "enter", "ctrl+n")
    await pilot.pause()


async def to_review(pilot: Pilot[int], images: str = "40") -> None:
    await to_dataset(pilot)
    await pilot.press("tab", *images, "ctrl+n")  # the image count, no dataset
    await pilot.press(*["tab"] * 5, *"aria", "ctrl+n")  # the LoRA name only
    await pilot.press("ctrl+n")  # the suggested sample prompts
    await pilot.pause()


async def edit_row(pilot: Pilot[int], key: str, text: str) -> None:
    """Put the review cursor on ``key``'s row (moving it row by row is covered by the
    end-to-end and tmux tests, and costs seconds here), then type ``text`` into it."""
    table = pilot.app.screen.query_one("DataTable")
    table.move_cursor(row=table.get_row_index(key))  # type: ignore[attr-defined]
    await pilot.press("enter", "ctrl+u", *text, "enter")


async def test_welcome_subject_and_escape_keeps_answers(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("enter")
        assert isinstance(app.screen, SubjectScreen)
        assert app.advice.rec is None  # a character needs its category first
        await pilot.press("down", "space")  # style, and stay
        assert app.state.subject == "style"
        assert app.advice.rec is not None and app.advice.rec.config["resolution"] == 576
        assert app.screen.sub_title == "step 1/7: Subject"
        await pilot.press("up", "down", "enter")  # Enter on a single-choice step goes on
        assert isinstance(app.screen, DetailsScreen)
        names = [field.question.name for field in app.screen.query("QuestionField")]
        assert names == ["prior", "quality"]
        await pilot.press("escape")
        assert isinstance(app.screen, SubjectScreen)
        radio = app.screen.query_one("#q-subject", RadioSet)
        assert radio.pressed_index == 1 and app.state.subject == "style"


async def test_category_highlight_is_the_answer_with_its_description(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "ctrl+n")
        assert isinstance(app.screen, CategoryScreen)
        await pilot.press("down", "down", "down")
        await pilot.pause()
        assert app.state.get("category") == "D"
        assert "anthro wolf" in text_of(app, "#category-text")
        assert app.advice.rec is not None and app.advice.rec.config["network_dim"] == 64
        await pilot.press("enter")  # selecting goes on
        assert isinstance(app.screen, DetailsScreen)


async def test_details_answers_change_the_advice(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "ctrl+n", "down", "down", "enter")
        assert isinstance(app.screen, DetailsScreen)
        assert app.focused is not None and app.focused.id == "q-male"
        await pilot.press("space")  # male: C moves halfway toward D
        assert app.state.get("male") is True
        assert app.advice.rec is not None and app.advice.rec.config["network_dim"] == 48
        await pilot.press("tab", "down", "down", "enter")  # prior: strong
        assert app.state.get("prior") == "strong"
        assert app.advice.rec.plan["total_steps"] < 600


async def test_image_count_validation_is_inline(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        assert isinstance(app.screen, DatasetScreen)
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, DatasetScreen)
        assert "type the number of images" in text_of(app, "#step-error")
        await pilot.press("tab", *"4x")
        field = app.screen.query_one("#field-images")
        assert "images must be a number" in str(field.query_one(".error", Static).render())
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, DatasetScreen)
        await pilot.press("backspace", "backspace", "0")
        assert "at least 1" in str(field.query_one(".error", Static).render())
        await pilot.press("backspace", *"25", "ctrl+n")
        assert isinstance(app.screen, HardwareScreen)
        assert app.state.images() == 25


async def test_dataset_scan_runs_in_a_worker(make_app: MakeApp, dataset: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        await pilot.press(*str(dataset), "enter")
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        assert app.state.dataset is not None and app.state.dataset.images == 6
        report = text_of(app, "#scan-report")
        assert "10_aria: 6 × 10" in report
        assert "img00.png has no caption" in report
        assert "Buckets at 512 px" in report and "Top tags" in report
        rec = app.advice.rec
        assert rec is not None and rec.plan["images"] == 6 and rec.plan["repeats"] == 10
        assert app.screen.query_one("#q-images", Input).value == "6"
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, HardwareScreen)


async def test_dataset_scan_errors_are_shown(make_app: MakeApp, workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        await pilot.press(*"missing", "enter")
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        assert "missing" in text_of(app, "#scan-status")
        assert app.state.dataset is None


async def test_hardware_uses_detected_vram_and_an_override(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        await pilot.press("tab", *"40", "ctrl+n")
        assert isinstance(app.screen, HardwareScreen)
        assert "nvidia-smi reports 12 GB" in text_of(app, "#vram-note")
        assert app.state.vram() == (12.0, "nvidia-smi")
        await pilot.press(*"6")
        assert app.state.vram() == (6.0, "flag")
        assert "Using the 6 GB you typed" in text_of(app, "#vram-note")
        assert app.advice.rec is not None
        assert app.advice.rec.config["optimizer_type"] == "AdamW8bit"  # G-OPT-6GB
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, HardwareScreen)  # training needs a name
        assert "Give the LoRA a name" in text_of(app, "#step-error")
        assert app.focused is not None and app.focused.id == "path-output_name"
        await pilot.press(*"a/b")
        await pilot.press("ctrl+n")
        assert "file name, without /" in text_of(app, "#step-error")


async def test_review_edits_are_pins_marked_as_yours(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        assert app.advice.rec is not None
        assert app.advice.rec.plan["steps_per_epoch"] == 40
        await edit_row(pilot, "train_batch_size", "4")
        row = list(app.advice.rec.config).index("train_batch_size") + 3  # after 3 answer rows
        assert app.state.overrides == {"train_batch_size": 4}
        rec = app.advice.rec
        assert rec.plan["steps_per_epoch"] == 10 and rec.plan["total_steps"] == 1000
        cells = screen.query_one("DataTable").get_row_at(row)
        assert cells[0] == "›" and "*train_batch_size" in str(cells[1])  # › marks the cursor
        await pilot.press("delete")  # back to the advice
        assert app.state.overrides == {}
        assert app.advice.rec.plan["steps_per_epoch"] == 40


async def test_review_refuses_invalid_edits_with_the_reason(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        await edit_row(pilot, "network_alpha", "64")
        assert "alpha must be <= rank" in text_of(app, "#edit-error")
        assert app.state.overrides == {} and screen.editing == "network_alpha"
        await pilot.press("ctrl+u", *"1e-x", "enter")
        assert "network_alpha must be a number" in text_of(app, "#edit-error")
        await pilot.press("escape")  # cancels the edit, stays on the step
        assert isinstance(app.screen, ReviewScreen) and screen.editing is None
        await edit_row(pilot, "min_snr_gamma", "50")
        assert "min_snr_gamma 50" in text_of(app, "#edit-error")


async def test_review_lokr_for_category_d_warns(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot, category_downs=3)
        await pilot.press("tab", *"40", "ctrl+n", *["tab"] * 5, *"aria", "ctrl+n", "ctrl+n")
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("enter", "ctrl+u", *"lokr", "enter")  # the network answer row
        assert app.state.get("network") == "lokr"
        rec = app.advice.rec
        assert rec is not None and rec.config["network_module"] == "lycoris.kohya"
        assert "lokr-high-category" in [w.id for w in rec.warnings]
        assert "LoKr" in str(app.screen.query_one("#review-warnings", Static).render())
        await pilot.press("enter", "ctrl+u", *"lokk", "enter")
        assert "not one of" in text_of(app, "#edit-error")


async def test_advice_values_show_their_reasons_on_focus(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        why = app.screen.query_one("#advice-why", Static)
        # the image count has the focus: the panel explains the steps without leaving it
        assert app.focused is not None and app.focused.id == "dataset-path"
        assert why.display and str(why.render()).startswith("Why steps = ")
        app.screen.query_one("#advice-values").focus()
        await pilot.press("home")  # rank
        assert why.display and "G-CAT" in str(why.render())
        await pilot.press("down")  # alpha
        assert str(why.render()).startswith("Why alpha = 1")


async def test_quit_asks_mid_wizard_and_remembers_the_answers(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "ctrl+n", "down", "enter")
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("n")
        assert isinstance(app.screen, DetailsScreen)
        await pilot.press("ctrl+c", "y")
    assert app.return_code == 0
    remembered = load_last()
    assert remembered is not None and remembered.values["category"] == "B"


async def test_last_answers_are_offered_next_time(make_app: MakeApp) -> None:
    first = make_app()
    async with first.run_test(size=SIZE) as pilot:
        await to_review(pilot, images="33")
        await edit_row(pilot, "noise_offset", "0.06")  # review edits are remembered too
    second = make_app()
    async with second.run_test(size=SIZE) as pilot:
        menu = second.screen.query_one("#welcome-menu")
        assert "last answers (character, category C, 33 images, aria)" in str(
            menu.get_option("last").prompt  # type: ignore[attr-defined]
        )
        await pilot.press("down", "enter")
        assert second.state.get("category") == "C" and second.state.images() == 33
        assert second.state.overrides == {"noise_offset": 0.06}
        rec = second.advice.rec
        assert rec is not None and rec.config["noise_offset"] == 0.06
        # before the dataset step the count is assumed, never a dataset's arithmetic
        assert rec.plan["images"] == 40 and "Assuming 40 images" in second.advice.note
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")  # category, details, dataset
        assert isinstance(second.screen, DatasetScreen)
        assert second.advice.rec is not None and second.advice.rec.plan["images"] == 33


async def test_help_opens_with_f1_and_question_mark(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, WelcomeScreen)


async def test_each_screen_helps_with_its_own_keys(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        await pilot.press("f1")
        screen = app.screen
        assert isinstance(screen, HelpScreen) and screen.help.title == "Review and edit"
        keys = dict(screen.help.keys)
        assert "Delete" in keys and "Ctrl+N" in keys and "s" not in keys
        await pilot.press("escape", "ctrl+n", "f1")
        screen = app.screen
        assert isinstance(screen, HelpScreen) and "Ctrl+O" in dict(screen.help.keys)


async def test_footers_offer_only_what_works(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "enter")  # just advise
        await pilot.press("ctrl+n", "down", "enter", "ctrl+n", "tab", *"40", "ctrl+n")
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        screen = app.screen
        assert isinstance(screen, FinishScreen) and not screen.query("#train")
        shown = {b.binding.action for b in app.active_bindings.values() if b.binding.show}
        assert "train" not in shown and "next" not in shown and "save" in shown


async def test_finish_saves_and_trains(
    make_app: MakeApp, dataset: Path, fake_train: Any, workdir: Path, model_file: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        await pilot.press(*str(dataset), "enter")
        await app.screen.workers.wait_for_complete()
        await pilot.press("ctrl+n", *["tab"] * 4, *"model.safetensors", "tab", *"aria")
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        assert isinstance(app.screen, FinishScreen)
        await pilot.press("ctrl+s")
        saved = workdir / "aria.sdscripts.toml"
        assert saved.is_file() and (workdir / "aria.prompts.txt").is_file()
        assert f'sample_prompts = "{workdir / "aria.prompts.txt"}"' in saved.read_text()
        assert "Saved sd-scripts TOML" in text_of(app, "#finish-result")
        await pilot.press("ctrl+s")
        assert "press Save again" in text_of(app, "#finish-result")
        await pilot.press("down", "down", "enter")  # the command line format
        assert app.screen.query_one("#export-file", Input).value == "aria.sh"
        await pilot.press("ctrl+s")
        script = workdir / "aria.sh"
        assert script.read_text().startswith("#!/usr/bin/env bash\n")
        assert script.stat().st_mode & 0o111  # executable
        await pilot.press("ctrl+o")  # the command full-width, alone, for copying
        view = app.screen
        assert isinstance(view, CommandView)
        lines = str(view.query_one("#copy-text", Static).render()).splitlines()
        assert lines[0].startswith("accelerate launch") and lines[0].endswith(" \\")
        assert all(len(line) <= 80 for line in lines)
        await pilot.press("escape")
        assert isinstance(app.screen, FinishScreen)
        app.screen.query_one("#train").focus()
        await pilot.press("enter")
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        config = workdir / "runs" / "aria" / "wizard.toml"
        assert fake_train.calls, text_of(app, "#finish-result")
        assert fake_train.calls[0][-3:] == ["train", str(config), "--detach"]
        assert config.is_file() and (config.parent / "sample_prompts.txt").is_file()
        from tuilora.screens.monitor import MonitorScreen

        assert isinstance(app.screen, MonitorScreen)  # the run opens in the live monitor
        await pilot.press("q")  # leaving the monitor returns to the finish step
        await pilot.pause()
        result = text_of(app, "#finish-result")
        assert "Training started" in result and "tuilora watch" in result
        await pilot.press("ctrl+q")  # finished: no question
    assert app.return_code == 0


async def test_train_failure_shows_the_one_line_error(
    make_app: MakeApp, dataset: Path, workdir: Path, fake_train: Any, model_file: Path
) -> None:
    fake_train.returncode = 2
    fake_train.stderr = "tuilora: error: no model at model.safetensors\n"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_dataset(pilot)
        await pilot.press(*str(dataset), "enter")
        await app.screen.workers.wait_for_complete()
        await pilot.press("ctrl+n", *["tab"] * 4, *"model.safetensors", "tab", *"aria")
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        app.screen.query_one("#train").focus()
        await pilot.press("enter")
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        assert "no model at model.safetensors" in text_of(app, "#finish-result")


def trained_run(root: Path, *, with_state: bool) -> Path:
    """A run stopped at step 12 (with its saved state, or without one)."""
    import json

    from tuilora.runs import statedir

    root.mkdir(parents=True)
    events = [
        {"t": 1.0, "type": "start", "total_steps": 40},
        {"t": 2.0, "type": "step", "step": 12, "epoch": 1, "loss": 0.5},
        {"t": 3.0, "type": "end", "status": "stopped", "step": 12},
    ]
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    if with_state:
        folder = root / "state" / "00000012"
        folder.mkdir(parents=True)
        for name in statedir.STATE_FILES:
            (folder / name).write_text('{"step": 12}', encoding="utf-8")
    return root


async def to_finish_and_train(pilot: Pilot[int], dataset: Path) -> None:
    app = pilot.app
    await to_dataset(pilot)
    await pilot.press(*str(dataset), "enter")
    await app.screen.workers.wait_for_complete()
    await pilot.press("ctrl+n", *["tab"] * 4, *"model.safetensors", "tab", *"aria")
    await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")  # review, samples, finish
    assert isinstance(app.screen, FinishScreen)
    app.screen.query_one("#train").focus()
    await pilot.press("enter")
    await pilot.pause()


@pytest.mark.parametrize("choice", ["resume", "new-name", "cancel"])
async def test_a_name_that_holds_a_run_asks_what_to_do(
    make_app: MakeApp,
    dataset: Path,
    fake_train: Any,
    workdir: Path,
    model_file: Path,
    choice: str,
) -> None:
    from tuilora.screens.existing_run import ExistingRunDialog

    run = trained_run(workdir / "runs" / "aria", with_state=True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_finish_and_train(pilot, dataset)
        assert isinstance(app.screen, ExistingRunDialog)
        assert app.screen.query_one("#resume").has_focus  # a state is saved: offered first
        if choice == "resume":
            await pilot.press("enter")
        elif choice == "new-name":
            app.screen.query_one("#new-name").focus()
            await pilot.press(*"a/b", "enter")  # not a file name: said, and asked again
            assert "file name, without /" in str(app.screen.query_one("#name-problem").render())
            await pilot.press("ctrl+u", *"aria-2", "enter")
        else:
            await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        calls = [call[3:] for call in fake_train.calls]
    if choice == "resume":
        assert calls == [["train", "--resume", str(run), "--detach"]]
    elif choice == "new-name":
        config = workdir / "runs" / "aria-2" / "wizard.toml"
        assert calls == [["train", str(config), "--detach"]]
    else:
        assert calls == [] and not (run / "wizard.toml").exists()


async def test_without_a_saved_state_resume_is_not_offered(
    make_app: MakeApp, dataset: Path, fake_train: Any, workdir: Path, model_file: Path
) -> None:
    from tuilora.screens.existing_run import ExistingRunDialog

    trained_run(workdir / "runs" / "aria", with_state=False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_finish_and_train(pilot, dataset)
        assert isinstance(app.screen, ExistingRunDialog)
        assert not app.screen.query("#resume")
        app.screen.query_one("#over").focus()
        await pilot.press("enter")  # start over: --force replaces the old run's files
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert fake_train.calls[-1][-2:] == ["--detach", "--force"]


async def test_train_needs_a_dataset(make_app: MakeApp, workdir: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await to_review(pilot)
        await pilot.press("ctrl+n")
        app.screen.query_one("#train").focus()
        await pilot.press("enter")
        assert "scanned dataset folder" in text_of(app, "#finish-result")


async def test_open_a_run_shows_its_config_and_progress(make_app: MakeApp, workdir: Path) -> None:
    run = workdir / "runs" / "aria"
    run.mkdir(parents=True)
    (run / "config.toml").write_text(
        '[tuilora]\nbase_type = "sd15"\n[network]\nnetwork_dim = 16\n'
        '[saving]\noutput_name = "aria"\n'
    )
    (run / "events.jsonl").write_text(
        '{"t": 1, "type": "start", "total_steps": 100}\n'
        '{"t": 2, "type": "step", "step": 40, "epoch": 2, "loss": 0.1234}\n'
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "enter")
        assert isinstance(app.screen, RunScreen)
        await pilot.press(*"runs/aria", "enter")
        summary = text_of(app, "#run-summary")
        assert "rank 16" in summary and "Step 40/100" in summary and "loss 0.1234" in summary
        assert "tuilora watch runs/aria" in summary
        await pilot.press("ctrl+u", *"nowhere", "enter")
        assert "no such folder" in text_of(app, "#run-summary")
        await pilot.press("escape")
        assert isinstance(app.screen, WelcomeScreen)
