"""Resumable training state in ``RUN/state/``: LoRA weights, optimizer, scheduler, counters.

Everything random in a step is drawn from generators seeded by (seed, step) and the batch
order is a function of (seed, epoch), so the weights, the optimizer's moments, the
scheduler and the step counter are all a resume needs to continue exactly.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tuilora.errors import UserError


@dataclass
class Counters:
    step: int = 0
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches done in the current epoch
    loss_ema: float | None = None
    session_id: int = 0
    started_at: float = 0.0


def save_state(
    folder: Path,
    network_state: dict[str, torch.Tensor],
    optimizer: Any,
    scheduler: Any,
    counters: Counters,
) -> None:
    """Write a complete state next to the old one, then swap it in (never half a state)."""
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in network_state.items()},
        str(staging / "network.safetensors"),
    )
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(scheduler.state_dict(), staging / "scheduler.pt")
    (staging / "counters.json").write_text(json.dumps(asdict(counters)), encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class LoadedState:
    network: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    counters: Counters


def load_state(folder: Path) -> LoadedState:
    if not (folder / "counters.json").is_file():
        raise UserError(
            f"{folder}: no saved training state to resume from (state is saved when a run is"
            " stopped with Ctrl+C / tuilora stop, and every epoch with save_state)"
        )
    counters = Counters(**json.loads((folder / "counters.json").read_text(encoding="utf-8")))
    return LoadedState(
        network=load_file(str(folder / "network.safetensors")),
        # Our own files, but never unpickle arbitrary objects: tensors and numbers only.
        optimizer=torch.load(folder / "optimizer.pt", weights_only=True),
        scheduler=torch.load(folder / "scheduler.pt", weights_only=True),
        counters=counters,
    )
