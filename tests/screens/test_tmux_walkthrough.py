"""The wizard in a real terminal: tmux at 80x24, NO_COLOR, keys only (tmux_walkthrough.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("tmux_walkthrough.sh")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_user_walks_the_wizard_in_tmux(tmp_path: Path) -> None:
    out = tmp_path / "screens"
    env = {**os.environ, "PYTHON": sys.executable, "TRAIN": "0"}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(out)], capture_output=True, text=True, env=env, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    screens = sorted(out.glob("*.txt"))
    assert [p.stem for p in screens][:3] == ["01-welcome", "02-subject", "03-category"]
    for screen in screens:
        lines = screen.read_text(encoding="utf-8").splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), screen.name
    review = (out / "09-review-edited.txt").read_text(encoding="utf-8")
    assert "Review and edit" in review and "*train_batch_size" in review
    assert "Keys: Review and edit" in (out / "10-review-help.txt").read_text(encoding="utf-8")
    assert "Saved sd-scripts TOML" in (out / "11-saved.txt").read_text(encoding="utf-8")
    command = (out / "12-command.txt").read_text(encoding="utf-8").splitlines()
    assert command[3].startswith("accelerate launch") and command[3].endswith(" \\")
    assert not any("│" in line for line in command)  # nothing framed beside it
    samples = (out / "07-samples.txt").read_text(encoding="utf-8")
    assert "--d 420" in samples
