"""The monitor in a real terminal: ``tmux_monitor.sh`` at 80×24 with NO_COLOR (slow).

Skipped where tmux is not installed. The script follows a live stand-in trainer, toggles
the log scale, stops the run (s, y), leaves (q), and shows a finished run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("tmux_monitor.sh")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_monitor_in_tmux_at_80x24(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, env=env, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    live = (tmp_path / "live.txt").read_text(encoding="utf-8").splitlines()
    assert len(live) == 24 and "RUNNING" in live[0]
    assert "no event for" not in live[0]
    assert "s Stop" in live[-1] and "q Leave" in live[-1] and "f1 Help" in live[-1]
    assert any("training keeps running" in line for line in live)
    help_keys = (tmp_path / "help.txt").read_text(encoding="utf-8")
    assert all(f" {key} " in help_keys for key in "sclqi")  # the monitor's own keys on F1
    assert "Stop training aria?" in (tmp_path / "stop_dialog.txt").read_text(encoding="utf-8")
    stopped = (tmp_path / "stopped.txt").read_text(encoding="utf-8")
    assert "STOPPED" in stopped and "aria-step" in stopped
    assert "tuilora train --resume runs/aria" in stopped  # the command, whole
    assert "s Stop" not in stopped.splitlines()[-1]  # the footer follows the state
    finished = (tmp_path / "finished.txt").read_text("utf-8")
    assert "final healthy.safetensors" in finished and "s Stop" not in finished
