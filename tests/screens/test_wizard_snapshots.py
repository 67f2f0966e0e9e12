"""Every wizard screen at 80x24 and 120x40, as SVG snapshots (``--snapshot-update`` accepts).

Machine-dependent inputs are frozen by the fixtures: VRAM detection returns 12 GB, the
remembered answers live in a temporary config dir, and the dataset is a relative path in a
temporary working directory (the screens show paths relative to it). Typed absolute paths
(/models/..., /srv/...) need not exist: exports do not check them. A few screens are also
taken with NO_COLOR=1, where focus and selection must still read (``test_snapshot_text``
checks the markers in those files).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tuilora.screens.app import WizardApp

SnapCompare = Callable[..., bool]
MakeApp = Callable[..., WizardApp]
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


def keys(*groups: Sequence[str], scan: bool = False) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Press each group of keys, letting the app settle (and the scan finish) in between."""

    async def run(pilot: Pilot[Any]) -> None:
        await pilot.app.workers.wait_for_complete()
        for group in groups:
            await pilot.press(*group)
            await pilot.pause()
            if scan:
                await pilot.app.screen.workers.wait_for_complete()
                await pilot.pause()
        await pilot.pause()

    return run


TO_DATASET = ("enter", "ctrl+n", "down", "down", "enter", "ctrl+n")
TO_HARDWARE = (*TO_DATASET, "tab", "4", "0", "ctrl+n")
TO_SAMPLES = (*TO_HARDWARE, *["tab"] * 4, *"/models/nai.safetensors", "tab", *"aria", "ctrl+n")
TO_REVIEW = (*TO_SAMPLES, "ctrl+n")
TO_FINISH = (*TO_REVIEW, "ctrl+n")
#: The finish step with an absolute output folder: the command shows no temporary path.
TO_FINISH_FIXED = (
    *TO_HARDWARE,
    *["tab"] * 4,
    *"/models/nai.safetensors",
    "tab",
    *"aria",
    "tab",
    *"/srv/loras/aria",
    "ctrl+n",
    "ctrl+n",
    "ctrl+n",
)
ADVISE_FINISH = ("down", "enter", "enter", "down", "down", "enter", "ctrl+n", "tab", "4", "0")

SCREENS: dict[str, Callable[[Pilot[Any]], Awaitable[None]]] = {
    "welcome": keys(),
    "subject": keys(("enter",)),
    "category": keys(("enter", "ctrl+n", "down", "down")),
    "details": keys(("enter", "ctrl+n", "down", "down", "enter", "space")),
    "dataset_count": keys(TO_DATASET, ("tab", "4", "x")),
    "hardware": keys(TO_HARDWARE, ("tab", "tab")),
    "samples": keys(TO_SAMPLES),
    "review": keys(TO_REVIEW, ("down", "down", "down", "down")),
    "review_edit": keys(TO_REVIEW, (*["down"] * 9, "enter")),
    "review_error": keys(TO_REVIEW, (*["down"] * 5, "enter", "ctrl+u", "9", "9", "enter")),
    "finish": keys(TO_FINISH),
    "finish_advise": keys(ADVISE_FINISH, ("ctrl+n", "ctrl+n", "ctrl+n", "ctrl+n")),
    "command": keys(TO_FINISH_FIXED, ("down", "down", "enter", "ctrl+o")),
    "help": keys(("enter", "f1")),
    "help_review": keys(TO_REVIEW, ("f1",)),
    "quit": keys(("enter", "ctrl+q")),
}  # fmt: skip

#: Screens also taken without colour: a checkbox and radios, the review table, the finish.
NO_COLOR_SCREENS = ("details", "review", "finish")


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("name", sorted(SCREENS))
def test_screen(
    name: str, size: str, snap_compare: SnapCompare, make_app: MakeApp, workdir: Path
) -> None:
    assert snap_compare(make_app(), run_before=SCREENS[name], terminal_size=SIZES[size])


@pytest.mark.parametrize("name", NO_COLOR_SCREENS)
def test_no_color(
    name: str,
    snap_compare: SnapCompare,
    make_app: MakeApp,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    assert app.no_color
    assert snap_compare(app, run_before=SCREENS[name], terminal_size=SIZES["80x24"])


@pytest.mark.parametrize("size", sorted(SIZES))
def test_dataset_scanned(
    size: str, snap_compare: SnapCompare, make_app: MakeApp, workdir: Path, dataset: Path
) -> None:
    run_before = keys(TO_DATASET, (*str(dataset), "enter"), scan=True)
    assert snap_compare(make_app(), run_before=run_before, terminal_size=SIZES[size])


@pytest.mark.parametrize("size", sorted(SIZES))
def test_open_run(size: str, snap_compare: SnapCompare, make_app: MakeApp, workdir: Path) -> None:
    run = workdir / "runs" / "aria"
    run.mkdir(parents=True)
    (run / "config.toml").write_text(
        '[tuilora]\nbase_type = "sd15"\n[network]\nnetwork_dim = 16\n'
        '[training]\nmax_train_epochs = 10\n[saving]\noutput_name = "aria"\n',
        encoding="utf-8",
    )
    (run / "events.jsonl").write_text(
        '{"t": 1, "type": "start", "total_steps": 400}\n'
        '{"t": 2, "type": "step", "step": 120, "epoch": 3, "loss": 0.0981}\n',
        encoding="utf-8",
    )
    run_before = keys(("down", "down", "enter"), (*"runs/aria", "enter"))
    assert snap_compare(make_app(), run_before=run_before, terminal_size=SIZES[size])
