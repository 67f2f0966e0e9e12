"""The checklist screen, mounted in a tiny app: Pilot interaction and 80x24 snapshots."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import Input, RadioSet

from tuilora.screens.checklist import ChecklistScreen
from tuilora.screens.dialogs import Confirm, show_help
from tuilora.screens.marks import FOCUS_CSS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"

CONFIG = """\
[tuilora]
base_type = "sd15"

[network]
network_dim = 32
network_alpha = 16.0

[optimizer]
optimizer_type = "AdamW8bit"
learning_rate = 0.0004
unet_lr = 0.0004
text_encoder_lr = 5e-05
lr_scheduler = "cosine_with_restarts"

[dataset]
train_data_dir = "data"
caption_extension = ".txt"

[training]
max_train_epochs = 12

[saving]
output_dir = "runs/aria"
output_name = "aria"
save_every_n_epochs = 1
"""


def make_run(root: Path) -> Path:
    """runs/aria with the rising-loss events, two snapshots and a tiny captioned dataset."""
    run = root / "runs" / "aria"
    run.mkdir(parents=True)
    shutil.copy(FIXTURES / "rising.jsonl", run / "events.jsonl")
    (run / "config.toml").write_text(CONFIG, encoding="utf-8")
    for name in ("aria-000004.safetensors", "aria.safetensors"):
        (run / name).write_bytes(b"")
    data = root / "data" / "1_aria"
    data.mkdir(parents=True)
    for number, caption in enumerate(("aria, shoulder bag", "aria, wings", "aria")):
        (data / f"{number}.png").write_bytes(b"")
        (data / f"{number}.txt").write_text(caption, encoding="utf-8")
    return Path("runs/aria")


class ChecklistApp(App[None]):
    """Pushes the checklist on start, as the monitor would; records what it returns. Its
    stylesheet and F1 are the monitor app's (``tuilora watch``), where the checklist runs."""

    CSS = FOCUS_CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f1", "help", "Help", priority=True)]

    def action_help(self) -> None:
        show_help(self)

    def __init__(self, run_dir: Path, launched: list[Sequence[str]]) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.launched = launched
        self.result: Any = "not dismissed"
        self.messages: list[ChecklistScreen.NextRunStarted] = []

    def on_mount(self) -> None:
        screen = ChecklistScreen(self.run_dir, launcher=self.launched.append)
        self.push_screen(screen, self._done)

    def _done(self, result: Path | None) -> None:
        self.result = result

    def on_checklist_screen_next_run_started(self, message: ChecklistScreen.NextRunStarted) -> None:
        self.messages.append(message)


async def _settle(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.screen.workers.wait_for_complete()
    await pilot.pause()


def _findings(app: App[Any]) -> str:
    screen = app.screen
    assert isinstance(screen, ChecklistScreen)
    return screen.summary


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_run(tmp_path)


def test_ticking_what_was_seen_updates_findings_and_diff(run_dir: Path) -> None:
    asyncio.run(_test_ticking_what_was_seen_updates_findings_and_diff(run_dir))


async def _test_ticking_what_was_seen_updates_findings_and_diff(run_dir: Path) -> None:
    launched: list[Sequence[str]] = []
    app = ChecklistApp(run_dir, launched)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChecklistScreen)
        assert "rising" in _findings(app).lower() or "rose" in _findings(app)
        assert "Nothing tested yet" in _findings(app)
        # strength: "needs a lower strength" is the second radio button
        radio = screen.query_one("#strength", RadioSet)
        radio.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert screen.observations.strength == "lower"
        assert screen.diagnosis is not None
        assert screen.diagnosis.changes["max_train_epochs"].new == 4
        assert "max_train_epochs: 12 -> 4" in _findings(app)
        # Unet 0.5 / TE 1.0 typed in
        screen.query_one("#unet", Input).focus()
        await pilot.press("0", ".", "5")
        screen.query_one("#te", Input).focus()
        await pilot.press("1")
        await pilot.pause()
        assert screen.diagnosis.changes["unet_lr"].new == pytest.approx(2e-4)
        screen.query_one("#object", Input).focus()
        await pilot.press("b", "a", "g")
        await pilot.pause()
        assert "1 of 3 captions" in _findings(app)


def test_start_next_run_writes_the_folder_and_launches_training(run_dir: Path) -> None:
    asyncio.run(_test_start_next_run_writes_the_folder_and_launches_training(run_dir))


async def _test_start_next_run_writes_the_folder_and_launches_training(run_dir: Path) -> None:
    launched: list[Sequence[str]] = []
    app = ChecklistApp(run_dir, launched)
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        screen = app.screen
        radio = screen.query_one("#strength", RadioSet)
        radio.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        await pilot.press("ctrl+s")  # asks first
        await pilot.pause()
        assert isinstance(app.screen, Confirm) and not launched
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, ChecklistScreen) and not Path("runs/aria-r2").exists()
        await pilot.press("ctrl+s", "y")
        await pilot.pause()
    next_dir = Path("runs/aria-r2")
    config = next_dir / "from-diagnose.toml"
    assert config.is_file()
    assert "max_train_epochs = 4" in config.read_text(encoding="utf-8")
    lineage = json.loads((next_dir / "lineage.json").read_text(encoding="utf-8"))
    assert lineage["parent"] == "../aria"
    assert lineage["observations"]["strength"] == "lower"
    assert launched == [[sys.executable, "-m", "tuilora", "train", str(config), "--detach"]]
    assert app.result == next_dir
    assert [m.run_dir for m in app.messages] == [next_dir]


def test_a_missing_run_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    asyncio.run(_missing_run())


async def _missing_run() -> None:
    app = ChecklistApp(Path("runs/nothing"), [])
    async with app.run_test(size=(80, 24)) as pilot:
        await _settle(pilot)
        assert "no such run directory" in _findings(app)
        await pilot.press("escape")
        await pilot.pause()
    assert app.result is None


async def _fresh(pilot: Any) -> None:
    await _settle(pilot)


async def _answered(pilot: Any) -> None:
    await _settle(pilot)
    pilot.app.screen.query_one("#strength", RadioSet).focus()
    await pilot.press("down", "enter")
    pilot.app.screen.query_one("#object", Input).focus()
    await pilot.press("b", "a", "g")
    await pilot.pause()


async def _confirm_start(pilot: Any) -> None:
    await _answered(pilot)
    await pilot.press("ctrl+s")
    await pilot.pause()


async def _help(pilot: Any) -> None:
    await _settle(pilot)
    await pilot.press("f1")
    await pilot.pause()


SNAPSHOTS = {"fresh": _fresh, "answered": _answered, "confirm_start": _confirm_start, "help": _help}
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
def test_snapshot(name: str, size: str, run_dir: Path, snap_compare: Any) -> None:
    app = ChecklistApp(run_dir, [])
    assert snap_compare(app, terminal_size=SIZES[size], run_before=SNAPSHOTS[name])


def test_snapshot_no_color(
    run_dir: Path, snap_compare: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = ChecklistApp(run_dir, [])
    assert snap_compare(app, terminal_size=(80, 24), run_before=_answered)
