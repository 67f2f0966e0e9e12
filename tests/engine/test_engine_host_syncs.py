"""Host synchronisations in a steady-state training step (issue 19, item 3).

On a GPU every read of a tensor's value on the host (``.item()``, ``float(t)``, ``bool(t)``,
``.tolist()``) and every ``torch.cuda.synchronize`` stalls the CPU until the GPU has caught
up, so the next step's kernels cannot be queued behind the current ones. The loop may read
values now and then (the loss every N steps), never once per step. Counted on the CPU by
patching those entry points during steps N..N+k of a tiny run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tuilora.engine.loop import Trainer
from tuilora.runs.events import EventWriter
from tuilora.runs.rundir import RunDir

FIRST, STEADY = 3, 6  # count during steps 3..8 (0-based), after warm-up


def _optimizer_step_counter() -> bool:
    """torch.optim's ``_get_value`` reads each parameter's ``step`` counter, a tensor that
    stays on the CPU unless ``capturable``: no device sync on a GPU, so not counted."""
    caller = sys._getframe(2).f_code
    return caller.co_name == "_get_value" and caller.co_filename.endswith("optimizer.py")


def test_no_host_sync_in_every_steady_state_step(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = {"on": False, "syncs": 0}
    real_update = Trainer._update

    def update(self: Trainer, built: Any, group: Any, step: int, epoch: int) -> float:
        if step == FIRST:
            counting["on"] = True
        if step == FIRST + STEADY:
            counting["on"] = False
        return real_update(self, built, group, step, epoch)

    def counted(name: str) -> Any:
        real = getattr(torch.Tensor, name)

        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if counting["on"] and not _optimizer_step_counter():
                counting["syncs"] += 1
            return real(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(Trainer, "_update", update)
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    real_sync = torch.cuda.synchronize

    def synchronize(*args: Any, **kwargs: Any) -> None:
        if counting["on"]:
            counting["syncs"] += 1
        if torch.cuda.is_available():
            real_sync(*args, **kwargs)

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    run = RunDir(tmp_path / "run", "t")
    run.root.mkdir()
    config = make_config(
        tmp_path / "run",
        max_train_epochs=None,
        max_train_steps=FIRST + STEADY + 1,
        save_every_n_epochs=None,
        train_batch_size=1,
        shuffle_caption=False,
    )
    with EventWriter(run.events) as events:
        assert Trainer(config, run, events, progress=False).run() == "finished"
    assert counting["syncs"] < STEADY, f"{counting['syncs']} host syncs in {STEADY} steps"
