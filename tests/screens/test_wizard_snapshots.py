"""Every wizard screen at 80x24, as SVG snapshots (``pytest --snapshot-update`` to accept).

Machine-dependent inputs are frozen by the fixtures: VRAM detection returns 12 GB, the
remembered answers live in a temporary config dir, and the dataset is a relative path in a
temporary working directory.
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

    return run


TO_DATASET = ("enter", "ctrl+n", "down", "down", "enter", "ctrl+n")
TO_REVIEW = (*TO_DATASET, "tab", "4", "0", "ctrl+n", *["tab"] * 5, *"aria", "ctrl+n")

SCREENS: dict[str, Callable[[Pilot[Any]], Awaitable[None]]] = {
    "welcome": keys(),
    "subject": keys(("enter",)),
    "category": keys(("enter", "ctrl+n", "down", "down")),
    "details": keys(("enter", "ctrl+n", "down", "down", "enter", "space")),
    "dataset_count": keys(TO_DATASET, ("tab", "4", "x")),
    "hardware": keys(TO_DATASET, ("tab", "4", "0", "ctrl+n")),
    "review": keys(TO_REVIEW, ("down", "down", "down")),
    "review_error": keys(TO_REVIEW, (*["down"] * 4, "enter", "ctrl+u", "9", "9", "enter")),
    "finish": keys(TO_REVIEW, ("ctrl+n",)),
    "help": keys(("enter", "f1")),
    "quit": keys(("enter", "ctrl+q")),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SCREENS))
def test_screen(name: str, snap_compare: SnapCompare, make_app: MakeApp, workdir: Path) -> None:
    assert snap_compare(make_app(), run_before=SCREENS[name], terminal_size=(80, 24))


def test_dataset_scanned(
    snap_compare: SnapCompare, make_app: MakeApp, workdir: Path, dataset: Path
) -> None:
    run_before = keys(TO_DATASET, (*str(dataset), "enter"), scan=True)
    assert snap_compare(make_app(), run_before=run_before, terminal_size=(80, 24))


def test_open_run(snap_compare: SnapCompare, make_app: MakeApp, workdir: Path) -> None:
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
    assert snap_compare(make_app(), run_before=run_before, terminal_size=(80, 24))
