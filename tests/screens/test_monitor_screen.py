"""The monitor screen driven with Pilot: live tailing, stop (asks first), keys, leaving."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tuilora.runs.trainer import Trainer, read_pid
from tuilora.screens import monitor_app
from tuilora.screens.checklist import ChecklistScreen
from tuilora.screens.monitor import ConfirmStop, MonitorScreen, RunChart
from tuilora.screens.monitor_app import MonitorApp

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
FAKE_PID = 424242
StartTrainer = Callable[..., Any]  # the stand_in_trainer fixture (tests/conftest.py)


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


def make_run(root: Path, fixture: str | None, pid: int | None = None, lines: int = 0) -> Path:
    run = root / "runs" / "aria"
    run.mkdir(parents=True)
    if fixture is not None:
        chosen = fixture_lines(fixture)
        (run / "events.jsonl").write_text("".join(chosen[: lines or None]), encoding="utf-8")
    if pid is not None:
        (run / "pid").write_text(str(pid), encoding="utf-8")
    return run


async def settle(pilot: Pilot[Any]) -> MonitorScreen:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, MonitorScreen)
    assert screen.loaded
    return screen


def text_of(screen: MonitorScreen, selector: str) -> str:
    return str(screen.query_one(selector).render())


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """os.kill recorded, never sent; FAKE_PID passes for the run's verified trainer."""
    calls: list[tuple[int, int]] = []

    def fake_kill(pid: int, sig: int) -> None:
        calls.append((pid, sig))
        if pid != FAKE_PID:
            raise ProcessLookupError(pid)

    def fake_trainer(root: Path) -> Trainer:
        live = read_pid(root) == FAKE_PID
        return Trainer(FAKE_PID if live else None, "" if live else "gone")

    monkeypatch.setattr(os, "kill", fake_kill)
    monkeypatch.setattr("tuilora.runs.status.find_trainer", fake_trainer)
    monkeypatch.setattr("tuilora.runs.watch.find_trainer", fake_trainer)
    return calls


def test_a_live_run_is_followed_as_its_file_grows(
    tmp_path: Path, stand_in_trainer: StartTrainer
) -> None:
    run = make_run(tmp_path, "healthy", lines=100)
    stand_in_trainer(run, "--no-end")
    lines = fixture_lines("healthy")

    async def scenario() -> None:
        app = MonitorApp(run, clock=lambda: 1760000050.0)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            assert screen.state == "running" and screen.view.step == 98
            assert "step 98/600" in text_of(screen, "#status")
            version = screen.view.version
            screen.refresh_from_disk()  # nothing new: nothing redrawn
            assert screen.view.version == version
            with (run / "events.jsonl").open("a", encoding="utf-8") as handle:
                handle.writelines(lines[100:300])
                handle.write(lines[300][:40])  # the writer is mid-line
            screen.refresh_from_disk()
            await pilot.pause()
            assert screen.view.step == 295  # 300 lines: start, 4 epoch ends
            assert "step 295/600" in text_of(screen, "#status")
            with (run / "events.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(lines[300][40:])
                handle.writelines(lines[301:])
            await pilot.pause(0.8)  # the timer's poll, not a direct call
            assert screen.view.step == 600 and screen.state == "finished"
            assert "FINISHED" in text_of(screen, "#status")

    asyncio.run(scenario())


def test_a_run_without_events_yet_waits_then_shows_them(
    tmp_path: Path, stand_in_trainer: StartTrainer
) -> None:
    run = make_run(tmp_path, None)
    stand_in_trainer(run)

    async def scenario() -> None:
        async with MonitorApp(run).run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            assert screen.state == "loading" and screen.view.events == 0
            assert "waiting for the first step" in str(screen.query_one("#loss", RunChart).render())
            (run / "events.jsonl").write_text("".join(fixture_lines("healthy")[:5]), "utf-8")
            screen.refresh_from_disk()
            await pilot.pause()
            assert screen.view.step == 4

    asyncio.run(scenario())


def test_stop_asks_first_and_sends_sigint_on_yes(
    tmp_path: Path, kills: list[tuple[int, int]]
) -> None:
    run = make_run(tmp_path, "torn", pid=FAKE_PID)

    async def scenario() -> None:
        async with MonitorApp(run).run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            assert screen.state == "running"
            await pilot.press("s")
            await pilot.pause()
            assert isinstance(pilot.app.screen, ConfirmStop)
            await pilot.press("n")  # changed their mind: nothing is sent
            await pilot.pause()
            assert pilot.app.screen is screen
            assert (FAKE_PID, signal.SIGINT) not in kills
            await pilot.press("s")
            await pilot.pause()
            await pilot.press("y")
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            assert (FAKE_PID, signal.SIGINT) in kills
            assert screen.stopping and "STOPPING" in text_of(screen, "#status")
            assert "saves its state" in text_of(screen, "#notice")

    asyncio.run(scenario())


def test_stop_on_a_finished_run_says_so_without_asking(
    tmp_path: Path, kills: list[tuple[int, int]]
) -> None:
    run = make_run(tmp_path, "healthy", pid=FAKE_PID)

    async def scenario() -> None:
        async with MonitorApp(run).run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            await pilot.press("s")
            await pilot.pause()
            assert pilot.app.screen is screen
            assert not any(sig == signal.SIGINT for _, sig in kills)

    asyncio.run(scenario())


def test_log_scale_toggles_and_leaving_never_signals(
    tmp_path: Path, kills: list[tuple[int, int]]
) -> None:
    run = make_run(tmp_path, "torn", pid=FAKE_PID)

    async def scenario() -> None:
        app = MonitorApp(run)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            assert "training keeps running" in text_of(screen, "#notice")
            await pilot.press("l")
            assert screen.log_scale and "log scale" in str(screen.query_one("#loss").render())
            await pilot.press("l")
            assert not screen.log_scale
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0
        assert not any(sig == signal.SIGINT for _, sig in kills)

    asyncio.run(scenario())


def test_c_opens_the_checklist_and_escape_comes_back(tmp_path: Path) -> None:
    run = make_run(tmp_path, "healthy")
    next_run = tmp_path / "runs" / "aria-2"
    next_run.mkdir()
    shutil.copy(FIXTURES / "torn.jsonl", next_run / "events.jsonl")

    async def scenario() -> None:
        async with MonitorApp(run).run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            await pilot.press("c")
            await pilot.pause()
            assert isinstance(pilot.app.screen, ChecklistScreen)
            await pilot.app.workers.wait_for_complete()
            await pilot.press("escape")
            await pilot.pause()
            assert pilot.app.screen is screen
            # The checklist started the next run: the monitor follows that one.
            await pilot.press("c")
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
            await pilot.app.screen.dismiss(next_run)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            assert pilot.app.screen is screen and screen.run_dir == next_run
            assert screen.loaded and screen.view.step == 360

    asyncio.run(scenario())


def test_run_monitor_returns_0_and_says_how_to_come_back(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stand_in_trainer: StartTrainer,
) -> None:
    run = make_run(tmp_path, "torn")
    stand_in_trainer(run)

    def run_headless(self: MonitorApp) -> None:
        async def drive() -> None:
            async with self.run_test(size=(80, 24)) as pilot:
                await settle(pilot)
                await pilot.press("q")

        asyncio.run(drive())

    monkeypatch.setattr(MonitorApp, "run", run_headless)
    assert monitor_app.run_monitor(run) == 0
    assert f"tuilora watch {run}" in capsys.readouterr().out


def test_i_shows_the_latest_sample_image(tmp_path: Path) -> None:
    from PIL import Image

    from tuilora.screens.monitor import SampleView

    run = make_run(tmp_path, "healthy")
    picture = run / "samples" / "aria_e000001_00.png"
    picture.parent.mkdir()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(picture)
    with (run / "events.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(
            json.dumps(
                {"t": 1e9, "type": "sample", "epoch": 1, "step": 10, "images": [str(picture)]}
            )
            + "\n"
        )

    async def scenario() -> None:
        async with MonitorApp(run).run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            await pilot.press("i")
            await pilot.pause()
            assert isinstance(pilot.app.screen, SampleView)
            assert pilot.app.screen.path == picture
            await pilot.press("escape")
            await pilot.pause()
            assert pilot.app.screen is screen

    asyncio.run(scenario())


def test_i_without_samples_says_so(tmp_path: Path) -> None:
    run = make_run(tmp_path, "healthy")

    async def scenario() -> None:
        async with MonitorApp(run).run_test(size=(80, 24)) as pilot:
            screen = await settle(pilot)
            await pilot.press("i")
            await pilot.pause()
            assert pilot.app.screen is screen

    asyncio.run(scenario())
