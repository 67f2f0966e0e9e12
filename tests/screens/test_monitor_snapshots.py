"""The monitor at 80×24 and 120×40 on recorded runs, as SVG snapshots (``--snapshot-update``).

Deterministic by construction: the events are recorded fixtures, the run folder is the
relative ``runs/aria`` in a temporary working directory, a live run's pid is a fixed number
that counts as alive, and the clock is fixed (the "no event for ..." hint uses it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tuilora.runs.trainer import Trainer
from tuilora.screens.monitor import MonitorScreen
from tuilora.screens.monitor_app import MonitorApp

SnapCompare = Callable[..., bool]
FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
LIVE_PID = 4242
CLOCK = 1760000190.0  # 10 s after the torn fixture's last complete event


def lines_of(name: str) -> list[str]:
    return (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


def settle_then(*keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()

    return run


async def grow(pilot: Pilot[Any]) -> None:
    """A live run: half the file at start, the rest of epoch 6 arrives (mid-line at the end)."""
    await settle_then()(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, MonitorScreen)
    lines = lines_of("prodigy-healthy")
    with (screen.run_dir / "events.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(lines[200:366])
        handle.write(lines[366][:30])
    screen.refresh_from_disk()
    await pilot.pause()


LOADING = [
    json.dumps({"t": CLOCK - 40 + i, "elapsed_s": float(i), "type": "phase", **phase}) + "\n"
    for i, phase in enumerate(
        [
            {"name": "starting", "done": 0, "total": None, "eta_s": None},
            {"name": "loading the model", "done": 0, "total": None, "eta_s": None},
            {"name": "caching latents", "done": 12, "total": 40, "eta_s": 35.0},
        ]
    )
]

CASES: dict[str, tuple[str | None, int, bool, Callable[[Pilot[Any]], Awaitable[None]]]] = {
    # name: (fixture, lines to write (0: all), live pid, what to do before the snapshot)
    "finished": ("healthy", 0, False, settle_then()),
    "diverged": ("nan", 0, False, settle_then()),
    "torn_live": ("torn", 0, True, settle_then()),
    "growing_live": ("prodigy-healthy", 200, True, grow),
    "waiting": (None, 0, False, settle_then()),
    "loading": ("loading", 0, True, settle_then()),
    "log_scale": ("rising", 0, False, settle_then("l")),
    "stop_dialog": ("torn", 0, True, settle_then("s")),
    "help": ("torn", 0, True, settle_then("f1")),
}
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_monitor(
    name: str,
    size: str,
    snap_compare: SnapCompare,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _monitor_app(name, tmp_path, monkeypatch)
    assert snap_compare(app, run_before=CASES[name][3], terminal_size=SIZES[size])


def test_monitor_no_color(
    snap_compare: SnapCompare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live run without colour: the focused button of the stop dialog reads as such."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = _monitor_app("stop_dialog", tmp_path, monkeypatch)
    assert snap_compare(app, run_before=CASES["stop_dialog"][3], terminal_size=(80, 24))


def _monitor_app(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MonitorApp:
    fixture, count, live, _ = CASES[name]
    monkeypatch.chdir(tmp_path)
    run = Path("runs") / "aria"
    run.mkdir(parents=True)
    if fixture == "loading":  # before step 1: the phases, the latents half cached
        (run / "events.jsonl").write_text("".join(LOADING), encoding="utf-8")
    elif fixture is not None:
        chosen = lines_of(fixture)[: count or None]
        (run / "events.jsonl").write_text("".join(chosen), encoding="utf-8")
    if live:
        (run / "pid").write_text(str(LIVE_PID), encoding="utf-8")
        monkeypatch.setattr("tuilora.runs.status.find_trainer", lambda root: Trainer(LIVE_PID, ""))
    return MonitorApp(run, clock=lambda: CLOCK)
