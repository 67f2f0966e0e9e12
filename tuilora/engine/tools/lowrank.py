"""Low-rank factors by SVD, as sd-scripts' extract / resize / svd_merge scripts make them.

A weight change M (out × in·kh·kw) becomes ``up = U_r·diag(S_r)`` and ``down = Vh_r``
(sd-scripts puts the singular values in ``up``), so ``up @ down`` is the best rank-r
approximation. ``energy`` is the part of ‖M‖² the rank keeps: Σ_{i≤r} S_i² / Σ S_i².

The quantile clamp is sd-scripts' (``extract_lora_from_models.py``, ``svd_merge_lora.py``):
the ``clamp_quantile`` quantile of all values of up and down together, hi, and both clamped
to [-hi, hi]. It trims outliers at some cost in accuracy; 1.0 turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: torch.quantile refuses inputs above 2**24 elements.
_TORCH_QUANTILE_LIMIT = 1 << 24


@dataclass
class Factors:
    up: torch.Tensor  # (out, r)
    down: torch.Tensor  # (r, in)
    #: Σ S² over the kept singular values, and over all of them.
    kept: float
    total: float

    @property
    def energy(self) -> float:
        return self.kept / self.total if self.total > 0 else 1.0

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])


def svd_factors(
    matrix: torch.Tensor, rank: int, *, clamp_quantile: float = 1.0, device: str = "cpu"
) -> Factors:
    """Rank-``rank`` factors of a 2-D ``matrix`` (computed in float32 on ``device``)."""
    work = matrix.to(device=device, dtype=torch.float32)
    u, s, vh = torch.linalg.svd(work, full_matrices=False)
    return _truncate(u, s, vh, rank, clamp_quantile)


def product_factors(
    up: torch.Tensor,
    down: torch.Tensor,
    rank: int,
    *,
    clamp_quantile: float = 1.0,
    device: str = "cpu",
) -> Factors:
    """Rank-``rank`` factors of ``up @ down`` without forming it: QR of both factors, then
    the SVD of the small core Ru·Rdᵀ (exact, and cheap for a LoRA of any width)."""
    up = up.to(device=device, dtype=torch.float32)
    down = down.to(device=device, dtype=torch.float32)
    q_up, r_up = torch.linalg.qr(up)
    q_down, r_down = torch.linalg.qr(down.T)
    u, s, vh = torch.linalg.svd(r_up @ r_down.T, full_matrices=False)
    return _truncate(q_up @ u, s, vh @ q_down.T, rank, clamp_quantile)


def _truncate(
    u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int, clamp_quantile: float
) -> Factors:
    rank = max(1, min(rank, s.shape[0]))
    squares = s.double() ** 2
    up = u[:, :rank] * s[:rank]
    down = vh[:rank]
    if clamp_quantile < 1.0:
        values = torch.cat([up.flatten(), down.flatten()])
        high = _quantile(values, clamp_quantile)
        up = up.clamp(-high, high)
        down = down.clamp(-high, high)
    return Factors(
        up=up.cpu().contiguous(),
        down=down.cpu().contiguous(),
        kept=float(squares[:rank].sum()),
        total=float(squares.sum()),
    )


def _quantile(values: torch.Tensor, q: float) -> float:
    if values.numel() <= _TORCH_QUANTILE_LIMIT:
        return float(torch.quantile(values, q))
    import numpy as np

    return float(np.quantile(values.cpu().numpy(), q))


def as_lora_shapes(
    factors: Factors, weight_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(up, down) shaped for the weight: 2-D for a linear; for a conv ``down`` carries the
    kernel (r, in, kh, kw) and ``up`` is 1x1 (out, r, 1, 1), as sd-scripts saves them."""
    if len(weight_shape) == 2:
        return factors.up, factors.down
    rank = factors.rank
    up = factors.up.reshape(weight_shape[0], rank, 1, 1)
    down = factors.down.reshape(rank, *weight_shape[1:])
    return up, down


def flat(weight: torch.Tensor) -> torch.Tensor:
    """A weight as (out, in·kh·kw)."""
    return weight.reshape(weight.shape[0], -1)
