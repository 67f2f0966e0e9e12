"""Data parallelism across processes (``accelerate launch`` / ``tuilora train --processes``).

The LoRA modules are hooked into the UNet and text encoders rather than called as one module,
so DDP's wrapper would never see a forward pass; instead each process takes its share of the
epoch's batches and the LoRA gradients are averaged with one all-reduce after backward.
Everything that decides control flow (the loss's finiteness, a stop request) is agreed on by
all processes, so none waits forever in a collective the others skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def shard(batches: Sequence[T], rank: int, world: int) -> list[T]:
    """This process's batches: every ``world``-th, padded by wrapping so all shards are equal."""
    if world <= 1:
        return list(batches)
    count = -(-len(batches) // world) * world
    padded = [batches[i % len(batches)] for i in range(count)]
    return padded[rank::world]


def average_gradients(accelerator: Any, parameters: Sequence[torch.nn.Parameter]) -> None:
    """Mean of the LoRA gradients over all processes, as one flat all-reduce."""
    if accelerator.num_processes <= 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat = accelerator.reduce(flat, reduction="mean")
    offset = 0
    for grad in grads:
        count = grad.numel()
        grad.copy_(flat[offset : offset + count].view_as(grad))
        offset += count


def mean_across(accelerator: Any, value: torch.Tensor) -> torch.Tensor:
    if accelerator.num_processes <= 1:
        return value
    return accelerator.reduce(value.detach().float().reshape(1), reduction="mean")[0]


def any_across(accelerator: Any, flag: bool) -> bool:
    if accelerator.num_processes <= 1:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(tensor, reduction="sum")[0] > 0)
