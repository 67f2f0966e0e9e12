"""Training with --force on a dataset holding a truncated PNG (issue 17, item 3b): the image
is skipped, said in a warning event, and the run finishes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tuilora.config import to_toml_dict
from tuilora.engine.train import run_training
from tuilora.errors import UserError
from tuilora.runs.events import read_events


def test_truncated_png_is_skipped_under_force(
    make_config: Any, shapes: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    folder = data / "1_shapes"
    good = sorted(folder.glob("*.png"))
    whole = good[0].read_bytes()
    (folder / "cut.png").write_bytes(whole[: len(whole) // 2])  # header fine, pixels cut
    (folder / "cut.txt").write_text("tuidemo, cut", encoding="utf-8")
    config = make_config(tmp_path / "run", max_train_epochs=1, train_data_dir=str(data))
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    with pytest.raises(UserError, match="cut.png is cut short"):
        run_training(str(path), progress=False)
    assert run_training(str(path), force=True, progress=False) == 0
    events = read_events(tmp_path / "run" / "events.jsonl")
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert any("cut.png" in message and "skips it" in message for message in warnings)
    start = next(e for e in events if e["type"] == "start")
    assert start["images"] == len(good)  # the cut image is not trained
    assert events[-1]["type"] == "end" and events[-1]["status"] == "finished"
