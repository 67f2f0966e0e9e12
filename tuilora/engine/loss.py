"""Noise, timesteps, targets and loss weights for one training step, as sd-scripts computes
them (``library/train_util.py`` ``get_noise_noisy_latents_and_timesteps``,
``conditional_loss``, ``get_huber_threshold_if_needed``; ``library/custom_train_functions.py``).

All randomness comes from the ``torch.Generator`` the loop passes in, seeded from the run's
seed and the global step, so a resumed run draws exactly the numbers a straight run would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tuilora.config import TrainingConfig


@dataclass(frozen=True)
class TrainingSchedule:
    """The DDPM schedule the loss uses, and the SNR table sd-scripts weights with.

    sd-scripts computes ``all_snr`` before ``zero_terminal_snr`` rescales the betas, so the
    SNR weights stay finite at the last timestep; tuilora keeps that order.
    """

    scheduler: Any
    snr: torch.Tensor


def training_schedule(scheduler: Any, zero_terminal_snr: bool) -> TrainingSchedule:
    """A copy of the model's noise scheduler for training (sampling keeps the original)."""
    copy = type(scheduler).from_config(scheduler.config)
    alphas = copy.alphas_cumprod.float()
    snr = alphas / (1.0 - alphas)
    if zero_terminal_snr:
        rescale_zero_terminal_snr(copy)
    return TrainingSchedule(copy, snr)


def rescale_zero_terminal_snr(scheduler: Any) -> None:
    """Shift and scale sqrt(alphas_cumprod) so the last timestep is pure noise (SNR 0) and
    the first keeps its value (arXiv 2305.08891, sd-scripts'
    ``fix_noise_scheduler_betas_for_zero_terminal_snr``)."""
    alphas_bar_sqrt = (1 - scheduler.betas).cumprod(0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last))
    alphas_bar = alphas_bar_sqrt**2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    scheduler.betas = 1 - alphas
    scheduler.alphas = alphas
    scheduler.alphas_cumprod = torch.cumprod(alphas, dim=0)


def sample_noise(
    latents: torch.Tensor, generator: torch.Generator, config: TrainingConfig
) -> torch.Tensor:
    """Gaussian noise with sd-scripts' noise offset (random strength, adaptive scale) and
    multi-resolution (pyramid) noise."""
    shape = latents.shape
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    if config.noise_offset:
        offset: float | torch.Tensor = config.noise_offset
        if config.noise_offset_random_strength:
            offset = torch.rand(1, generator=generator) * config.noise_offset
        if config.adaptive_noise_scale is not None:
            mean = latents.detach().float().cpu().mean(dim=(2, 3), keepdim=True).abs()
            offset = torch.clamp(offset + config.adaptive_noise_scale * mean, min=0.0)
        shift = torch.randn((shape[0], shape[1], 1, 1), generator=generator)
        noise = noise + offset * shift
    if config.multires_noise_iterations:
        noise = pyramid_noise(
            noise, generator, config.multires_noise_iterations, config.multires_noise_discount
        )
    return noise.to(latents.device, latents.dtype)


def pyramid_noise(
    noise: torch.Tensor, generator: torch.Generator, iterations: int, discount: float
) -> torch.Tensor:
    """sd-scripts' ``pyramid_noise_like``: noise at ever smaller random scales (each level
    2-4x smaller), upsampled and added with weight ``discount ** i``, back to unit std."""
    batch, channels, height, width = noise.shape
    upsample = torch.nn.Upsample(size=(height, width), mode="bilinear")
    out = noise.clone()
    for i in range(iterations):
        ratio = float(torch.rand(1, generator=generator)) * 2 + 2
        h, w = max(1, int(height / ratio**i)), max(1, int(width / ratio**i))
        out += upsample(torch.randn(batch, channels, h, w, generator=generator)) * discount**i
        if h == 1 or w == 1:
            break
    return out / out.std()


def sample_timesteps(
    batch: int,
    scheduler: Any,
    generator: torch.Generator,
    device: torch.device,
    min_timestep: int | None = None,
    max_timestep: int | None = None,
) -> torch.Tensor:
    """Uniform in [min_timestep, max_timestep) (sd-scripts' ``get_timesteps``; equal bounds
    give that one timestep)."""
    low = 0 if min_timestep is None else min_timestep
    high = int(scheduler.config.num_train_timesteps) if max_timestep is None else max_timestep
    if low < high:
        steps = torch.randint(low, high, (batch,), generator=generator)
    else:
        steps = torch.full((batch,), high, dtype=torch.long)
    return steps.to(device)


def add_noise(
    scheduler: Any,
    latents: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    generator: torch.Generator,
    config: TrainingConfig,
) -> torch.Tensor:
    """The noisy latents; with ``ip_noise_gamma`` the input noise gets an extra perturbation
    that the target does not (input perturbation, arXiv 2301.11706)."""
    if not config.ip_noise_gamma:
        return scheduler.add_noise(latents, noise, timesteps)
    strength: float | torch.Tensor = config.ip_noise_gamma
    if config.ip_noise_gamma_random_strength:
        strength = torch.rand(1, generator=generator) * config.ip_noise_gamma
    extra = torch.randn(latents.shape, generator=generator).to(noise)
    return scheduler.add_noise(latents, noise + strength * extra, timesteps)


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
    return min_snr_from(snr(scheduler, timesteps), gamma, v_prediction)


def min_snr_from(value: torch.Tensor, gamma: float, v_prediction: bool) -> torch.Tensor:
    clipped = torch.clamp(value, max=gamma)
    return clipped / (value + 1.0) if v_prediction else clipped / value


def huber_c(config: TrainingConfig, timesteps: torch.Tensor, scheduler: Any) -> torch.Tensor | None:
    """The Huber threshold per sample for huber / smooth_l1 (sd-scripts' schedules)."""
    if config.loss_type not in ("huber", "smooth_l1"):
        return None
    c, scale = config.huber_c, config.huber_scale
    if config.huber_schedule == "exponential":
        alpha = -math.log(c) / int(scheduler.config.num_train_timesteps)
        return torch.exp(-alpha * timesteps.float()) * scale
    if config.huber_schedule == "snr":
        alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
        sigmas = ((1.0 - alphas) / alphas) ** 0.5
        return (1 - c) / (1 + sigmas) ** 2 + c
    return torch.full(timesteps.shape, c * scale, device=timesteps.device)


def per_sample_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    loss_type: str = "l2",
    threshold: torch.Tensor | None = None,
) -> torch.Tensor:
    """sd-scripts' ``conditional_loss`` (element-wise), averaged over all but the batch."""
    prediction, target = prediction.float(), target.float()
    if loss_type == "l2":
        loss = torch.nn.functional.mse_loss(prediction, target, reduction="none")
    elif loss_type == "l1":
        loss = torch.nn.functional.l1_loss(prediction, target, reduction="none")
    else:
        assert threshold is not None, "huber and smooth_l1 need the Huber threshold"
        c = threshold.to(prediction.device).view(-1, *([1] * (prediction.dim() - 1)))
        root = torch.sqrt((prediction - target) ** 2 + c**2) - c
        loss = 2 * c * root if loss_type == "huber" else 2 * root
    return loss.mean(dim=list(range(1, loss.dim())))


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return per_sample_loss(prediction, target, "l2")


def weigh(
    loss: torch.Tensor,
    config: TrainingConfig,
    table: torch.Tensor,
    timesteps: torch.Tensor,
    v_prediction: bool,
) -> torch.Tensor:
    """sd-scripts' ``post_process_loss`` on per-sample losses, in its order."""
    value = table.to(loss.device)[timesteps.to(loss.device)]
    if config.min_snr_gamma:
        loss = loss * min_snr_from(value, config.min_snr_gamma, v_prediction)
    capped = torch.clamp(value, max=1000.0)  # SNR at t=0 is huge; sd-scripts caps it at 1000
    if config.scale_v_pred_loss_like_noise_pred:
        loss = loss * (capped / (capped + 1))
    if config.v_pred_like_loss:
        loss = loss + loss / (capped / (capped + 1)) * config.v_pred_like_loss
    if config.debiased_estimation_loss:
        loss = loss * (1 / (capped + 1) if v_prediction else 1 / torch.sqrt(capped))
    return loss
