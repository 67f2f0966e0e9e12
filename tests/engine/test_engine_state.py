"""Training states: no pickle in them, exact round trips, and no gap — a process killed
(SIGKILL, no cleanup) at any rename of a save always leaves a complete state to resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tuilora.engine.state import Counters, decode, encode, load_state, save_state
from tuilora.runs import statedir


def optimizer_and_scheduler(kind: str) -> tuple[torch.optim.Optimizer, object]:
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    if kind == "prodigy":
        from prodigyopt import Prodigy

        optimizer: torch.optim.Optimizer = Prodigy(params, lr=1.0, betas=(0.9, 0.999))
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    for _ in range(3):
        loss = sum((p**2).sum() for p in params)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return optimizer, scheduler


def same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))  # type: ignore[arg-type]
    return a == b or (a != a and b != b)  # NaN == NaN here


@pytest.mark.parametrize("kind", ["adamw", "prodigy"])
def test_state_dicts_round_trip_without_pickle(kind: str) -> None:
    optimizer, scheduler = optimizer_and_scheduler(kind)
    for original in (optimizer.state_dict(), scheduler.state_dict()):  # type: ignore[attr-defined]
        tensors: dict[str, torch.Tensor] = {}
        text = json.dumps(encode(original, tensors))  # plain JSON, tensors apart
        assert same(decode(json.loads(text), tensors), original)
    assert same(decode(encode({"best": float("inf")}, {}), {}), {"best": float("inf")})


def test_a_saved_state_holds_no_pickle_and_loads_without_torch_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    optimizer, scheduler = optimizer_and_scheduler("adamw")
    folder = save_state(tmp_path / "state", {"w": torch.ones(2)}, optimizer, scheduler, Counters(7))
    assert sorted(p.name for p in folder.iterdir()) == sorted(statedir.STATE_FILES)
    for path in folder.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), path  # pickle's opening byte
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    loaded = load_state(tmp_path / "state")
    assert loaded.counters.step == 7 and same(loaded.optimizer, optimizer.state_dict())
    fresh, _ = optimizer_and_scheduler("adamw")
    fresh.load_state_dict(loaded.optimizer)  # what the loop does on resume


def test_only_the_last_two_states_are_kept(tmp_path: Path) -> None:
    optimizer, scheduler = optimizer_and_scheduler("adamw")
    for step in (5, 10, 15, 20):
        save_state(
            tmp_path, {"w": torch.full((2,), float(step))}, optimizer, scheduler, Counters(step)
        )
    assert [p.name for p in statedir.complete_states(tmp_path)] == ["00000015", "00000020"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000015", "00000020"]
    assert load_state(tmp_path).network["w"][0] == 20.0


SAVER = r"""
import os, pathlib, signal, sys, torch
from tuilora.engine.state import Counters, save_state
root, kill_at, when = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
calls = 0
real_rename = pathlib.Path.rename
def rename(self, target):
    global calls
    calls += 1
    if calls == kill_at and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real_rename(self, target)
    if calls == kill_at and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result
pathlib.Path.rename = rename
param = torch.nn.Parameter(torch.ones(2))
optimizer = torch.optim.AdamW([param], lr=0.1)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
for step in (1, 2, 3, 4):
    save_state(root, {"w": torch.full((2,), float(step))}, optimizer, scheduler, Counters(step))
    print(step, flush=True)
"""
#: Renames in four saves: one per save (staging -> NNNNNNNN), plus one per prune (the oldest
#: state -> its trash name) from the third save on.
RENAMES = 6


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_any_rename_leaves_a_complete_state(tmp_path: Path, when: str) -> None:
    script = tmp_path / "saver.py"
    script.write_text(SAVER, encoding="utf-8")
    for kill_at in range(1, RENAMES + 1):
        root = tmp_path / f"state-{kill_at}"
        result = subprocess.run(
            [sys.executable, str(script), str(root), str(kill_at), when],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == -9, result.stderr  # killed, no cleanup ran
        saved = [int(line) for line in result.stdout.split()]
        newest = statedir.newest_state(root)
        if not saved and when == "before" and kill_at == 1:
            assert newest is None  # killed before the very first state existed
            continue
        assert newest is not None, (kill_at, when, saved)
        last = saved[-1] if saved else 0
        assert newest.step in (last, last + 1)  # the newest complete save, never older
        assert load_state(root).network["w"][0] == float(newest.step)
        statedir.remove_leftovers(root)  # what the next start of the run does
        assert statedir.leftovers(root) == []
        assert statedir.newest_state(root) == newest


def test_a_full_disk_during_a_state_save_keeps_the_saved_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from tuilora.engine import state as state_module
    from tuilora.fileio import NoSpaceError

    optimizer, scheduler = optimizer_and_scheduler("adamw")
    save_state(tmp_path, {"w": torch.ones(2)}, optimizer, scheduler, Counters(5))
    real_write = state_module._write_bytes

    def full_disk(path: Path, payload: bytes) -> None:
        if path.name == "optimizer.safetensors":
            real_write(path, payload[: len(payload) // 2])  # what a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, payload)

    monkeypatch.setattr(state_module, "_write_bytes", full_disk)
    with pytest.raises(NoSpaceError) as error:
        save_state(tmp_path, {"w": torch.zeros(2)}, optimizer, scheduler, Counters(10))
    assert "no space" in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000005"]  # no staging left
    assert load_state(tmp_path).counters.step == 5


def test_the_state_interval_is_wall_clock_and_zero_turns_it_off() -> None:
    from tuilora.engine.state import StateInterval

    now = [100.0]
    interval = StateInterval(0.5, clock=lambda: now[0])
    now[0] += 29.9
    assert not interval.due()
    now[0] += 0.1
    assert interval.due()
    interval.saved()
    assert not interval.due()
    now[0] += 1e6
    for off in (0.0, float("inf"), float("nan")):
        assert not StateInterval(off, clock=lambda: now[0]).due()


def test_a_scheduler_state_holding_tensors_is_saved_whole(tmp_path: Path) -> None:
    # transformers' AdafactorSchedule (AdaFactor's default relative_step) keeps its last lrs
    # as tensors; they were once dropped, and --resume then failed to read the state.
    from transformers.optimization import Adafactor, AdafactorSchedule

    def made() -> tuple[torch.nn.Parameter, Adafactor, AdafactorSchedule]:
        torch.manual_seed(0)
        param = torch.nn.Parameter(torch.randn(4, 4))
        optimizer = Adafactor([param], lr=None, relative_step=True, warmup_init=True)
        return param, optimizer, AdafactorSchedule(optimizer)

    param, optimizer, scheduler = made()
    for _ in range(2):
        (param**2).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    assert any(isinstance(lr, torch.Tensor) for lr in scheduler.state_dict()["_last_lr"])
    save_state(tmp_path, {"w": param.detach()}, optimizer, scheduler, Counters(2))
    loaded = load_state(tmp_path)
    assert same(loaded.scheduler, scheduler.state_dict())
    _, fresh_optimizer, fresh_scheduler = made()
    fresh_optimizer.load_state_dict(loaded.optimizer)
    fresh_scheduler.load_state_dict(loaded.scheduler)
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
