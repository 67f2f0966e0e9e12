"""Noise, targets and loss weights for one training step (DESIGN §6 "Training").

All randomness comes from the ``torch.Generator`` the loop passes in, seeded from the run's
seed and the global step, so a resumed run draws exactly the numbers a straight run would.
"""

from __future__ import annotations

from typing import Any

import torch


def sample_noise(
    latents: torch.Tensor, generator: torch.Generator, noise_offset: float | None
) -> torch.Tensor:
    """Gaussian noise; with ``noise_offset`` a per-channel constant shift on top."""
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32)
    if noise_offset:
        shift = torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=generator)
        noise = noise + noise_offset * shift
    return noise.to(latents.device, latents.dtype)


def sample_timesteps(
    batch: int, scheduler: Any, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    total = int(scheduler.config.num_train_timesteps)
    return torch.randint(0, total, (batch,), generator=generator).to(device)


def target_for(
    scheduler: Any,
    latents: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    v_prediction: bool,
) -> torch.Tensor:
    """What the UNet should predict: the noise (eps) or the velocity (v)."""
    if v_prediction:
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def snr(scheduler: Any, timesteps: torch.Tensor) -> torch.Tensor:
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alphas / (1.0 - alphas)


def min_snr_weights(
    scheduler: Any, timesteps: torch.Tensor, gamma: float, v_prediction: bool
) -> torch.Tensor:
    """Min-SNR-gamma weights: eps min(SNR, g) / SNR; v min(SNR, g) / (SNR + 1)."""
    value = snr(scheduler, timesteps)
    clipped = torch.clamp(value, max=gamma)
    return clipped / (value + 1.0) if v_prediction else clipped / value


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss = torch.nn.functional.mse_loss(prediction.float(), target.float(), reduction="none")
    return loss.mean(dim=list(range(1, loss.dim())))
