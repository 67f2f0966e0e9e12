"""Resumable training state in ``RUN/state/NNNNNNNN/`` (layout: ``runs.statedir``).

Everything random in a step is drawn from generators seeded by (seed, step) and the batch
order is a function of (seed, epoch), so the weights, the optimizer's moments, the
scheduler and the step counter are all a resume needs to continue exactly.

No pickle: the optimizer's and the scheduler's state dicts are split into their tensors
(one safetensors file) and everything else (JSON, with the dict key types and tuples kept),
so loading a state never runs code from a file, with or without ``--allow-pickle``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from tuilora.errors import UserError
from tuilora.fileio import write_failure
from tuilora.runs import statedir


class StateInterval:
    """``save_state_every_n_minutes``: a state is due once that much wall-clock time passed
    since the last one (or since training began); 0 (or a value that is not finite) is off."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        on = minutes > 0 and math.isfinite(minutes)
        self.seconds: float | None = minutes * 60 if on else None
        self.clock = clock
        self.last = clock()

    def due(self) -> bool:
        return self.seconds is not None and self.clock() - self.last >= self.seconds

    def saved(self) -> None:
        self.last = self.clock()


@dataclass
class Counters:
    step: int = 0
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches done in the current epoch
    loss_ema: float | None = None
    session_id: int = 0
    started_at: float = 0.0
    #: The run's training time at the save (stopped intervals excluded).
    elapsed_s: float = 0.0


# -- state dicts without pickle ---------------------------------------------------------
def encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON, its tensors moved into ``tensors`` (referenced by key)."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, tensors), encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [encode(v, tensors) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot save {type(value).__name__} in a training state")


def decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__dict__" in value:
            return {decode(k, tensors): decode(v, tensors) for k, v in value["__dict__"]}
        if "__tuple__" in value:
            return tuple(decode(v, tensors) for v in value["__tuple__"])
        if "__float__" in value:
            return float(value["__float__"])
        raise ValueError(f"unknown entry {sorted(value)}")
    return value


def _write_json(path: Path, data: Any) -> None:
    _write_bytes(path, json.dumps(data).encode("utf-8"))


def _write_bytes(path: Path, payload: bytes) -> None:
    """Python's own writes (not safetensors' writer), so a full disk is an OSError with its
    errno, which ``fileio.write_failure`` turns into one line."""
    with open(path, "wb") as handle:
        handle.write(payload)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_state(
    state_root: Path,
    network_state: dict[str, torch.Tensor],
    optimizer: Any,
    scheduler: Any,
    counters: Counters,
) -> Path:
    """Write a complete state for ``counters.step`` and make it the newest (see
    ``runs.statedir``); the states beyond the last two are removed afterwards. A write that
    fails (a full disk) removes the staging folder and raises UserError (``NoSpaceError``
    for lack of space): the states saved before are untouched."""
    target = statedir.folder_for(state_root, counters.step)
    if target.is_dir():  # the same step saved twice (same run, same weights): keep it
        return target
    staging = statedir.staging_for(state_root, counters.step)
    try:
        statedir.remove_tree(staging)
        staging.mkdir(parents=True)
        _write_staging(staging, network_state, optimizer, scheduler, counters)
        _fsync_tree(staging)
    except OSError as exc:
        statedir.remove_tree(staging)
        raise write_failure(staging, exc) from None
    except BaseException:
        statedir.remove_tree(staging)
        raise
    staging.rename(target)
    _fsync_dir(state_root)
    statedir.prune(state_root)
    return target


def _write_staging(
    staging: Path,
    network_state: dict[str, torch.Tensor],
    optimizer: Any,
    scheduler: Any,
    counters: Counters,
) -> None:
    network = {k: v.detach().float().cpu().contiguous() for k, v in network_state.items()}
    _write_bytes(staging / "network.safetensors", save(network))
    # One tensor file for both: a scheduler's state can hold tensors too (AdafactorSchedule
    # keeps its last lrs as tensors), and they must not be lost.
    tensors: dict[str, torch.Tensor] = {}
    optimizer_json = encode(optimizer.state_dict(), tensors)
    scheduler_json = encode(scheduler.state_dict(), tensors)
    _write_bytes(staging / "optimizer.safetensors", save(tensors))
    _write_json(staging / "optimizer.json", optimizer_json)
    _write_json(staging / "scheduler.json", scheduler_json)
    # counters.json last: statedir only counts a folder holding every file as complete.
    _write_json(staging / "counters.json", asdict(counters))


@dataclass
class LoadedState:
    network: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    counters: Counters


def load_state(state_root: Path) -> LoadedState:
    """The newest complete state; UserError when there is none or it cannot be read."""
    saved = statedir.newest_state(state_root)
    if saved is None:
        raise UserError(
            f"{state_root}: no saved training state to resume from (state is saved when a run"
            " is stopped with Ctrl+C / tuilora stop, every save_state_every_n_minutes and"
            " every epoch with save_state)"
        )
    folder = saved.path
    known = {spec.name for spec in fields(Counters)}
    try:
        counters = Counters(**{k: v for k, v in saved.counters.items() if k in known})
        tensors = load_file(str(folder / "optimizer.safetensors"))
        optimizer = decode(
            json.loads((folder / "optimizer.json").read_text(encoding="utf-8")), tensors
        )
        scheduler = decode(
            json.loads((folder / "scheduler.json").read_text(encoding="utf-8")), tensors
        )
        network = load_file(str(folder / "network.safetensors"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder}: the saved state cannot be read ({exc})") from None
    return LoadedState(network=network, optimizer=optimizer, scheduler=scheduler, counters=counters)
