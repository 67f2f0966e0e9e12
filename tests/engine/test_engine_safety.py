"""A real training run in a user's LoRA folder: it writes and deletes only its own files —
on a first run, on ``--force`` over itself, and when ``save_last_n_epochs`` prunes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tuilora.config import to_toml_dict
from tuilora.engine.train import run_training
from tuilora.errors import UserError
from tuilora.runs.events import read_events


def test_training_in_a_users_folder_touches_only_its_own_files(
    make_config: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "loras"
    folder.mkdir()
    foreign = {
        "other.safetensors": b"another LoRA",
        "t-000007.safetensors": b"the user's, named like a snapshot of this run",
        "notes.txt": b"notes",
        ".hidden.tmp": b"someone's temp file",
    }
    for name, data in foreign.items():
        (folder / name).write_bytes(data)
    config = make_config(folder, max_train_epochs=3, save_last_n_epochs=1, save_every_n_epochs=1)
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    with pytest.raises(UserError, match="t-000007.safetensors that this run did not write"):
        run_training(str(path), progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(foreign)  # nothing written
    assert run_training(str(path), force=True, progress=False) == 0
    assert run_training(str(path), force=True, progress=False) == 0  # over itself
    for name, data in foreign.items():
        assert (folder / name).read_bytes() == data, name
    events = read_events(folder / "events.jsonl")
    assert [e["type"] for e in events].count("start") == 1  # the first run's are gone
    names = {p.name for p in folder.iterdir()}
    assert {"t.safetensors", "t-000002.safetensors"} <= names  # save_last_n_epochs=1 ...
    assert "t-000001.safetensors" not in names  # ... pruned the run's own older snapshot
