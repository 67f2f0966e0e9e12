"""Noise, timesteps and losses as sd-scripts computes them (library/train_util.py
``get_noise_noisy_latents_and_timesteps``, ``conditional_loss``,
``get_huber_threshold_if_needed``; library/custom_train_functions.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from diffusers import DDPMScheduler  # noqa: E402

from tuilora.config import TrainingConfig  # noqa: E402
from tuilora.engine import loss as losses  # noqa: E402


def config(**options: Any) -> TrainingConfig:
    return TrainingConfig.from_dict(options)


def scheduler() -> Any:
    # sd-scripts' own training scheduler
    return DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False
    )


def test_timesteps_stay_within_min_and_max_timestep() -> None:
    # sd-scripts: randint(min_timestep, max_timestep) (max exclusive); equal bounds give
    # exactly that timestep.
    gen = torch.Generator().manual_seed(0)
    steps = losses.sample_timesteps(4000, scheduler(), gen, torch.device("cpu"), 200, 300)
    assert int(steps.min()) == 200 and int(steps.max()) == 299
    fixed = losses.sample_timesteps(3, scheduler(), gen, torch.device("cpu"), 500, 500)
    assert fixed.tolist() == [500, 500, 500]
    full = losses.sample_timesteps(4000, scheduler(), gen, torch.device("cpu"))
    assert int(full.min()) == 0 and int(full.max()) == 999


def test_zero_terminal_snr_rescales_betas_as_sd_scripts() -> None:
    # sd-scripts' fix_noise_scheduler_betas_for_zero_terminal_snr: sqrt(alphas_cumprod) is
    # shifted so the last is 0 and scaled so the first is unchanged; the SNR table used for
    # the loss weights is taken before the fix (prepare_scheduler_for_custom_training runs
    # first), so it stays finite.
    original = scheduler()
    schedule = losses.training_schedule(original, zero_terminal_snr=True)
    fixed = schedule.scheduler.alphas_cumprod
    assert float(fixed[-1]) == pytest.approx(0.0, abs=1e-12)
    assert float(fixed[0]) == pytest.approx(float(original.alphas_cumprod[0]), rel=1e-6)
    before = original.alphas_cumprod.sqrt()
    expected = (before - before[-1]) * (before[0] / (before[0] - before[-1]))
    assert torch.allclose(fixed.sqrt(), expected, atol=1e-6)
    assert torch.isfinite(schedule.snr).all()
    assert original.alphas_cumprod[-1] > 0  # the model's own scheduler is left alone


def test_noise_offset_random_strength_and_adaptive_scale() -> None:
    # sd-scripts' apply_noise_offset: noise + offset * N(0,1) per (sample, channel); with
    # noise_offset_random_strength the offset is U(0, noise_offset); with
    # adaptive_noise_scale it grows by scale * |mean of the latent channel| (clamped >= 0).
    latents = torch.full((2, 4, 8, 8), 3.0)
    plain = losses.sample_noise(latents, torch.Generator().manual_seed(1), config())
    offset = losses.sample_noise(
        latents, torch.Generator().manual_seed(1), config(noise_offset=0.1)
    )
    shift = (offset - plain)[:, :, 0, 0]
    assert torch.allclose(offset - plain, shift[:, :, None, None].expand_as(plain), atol=1e-6)
    gen = torch.Generator().manual_seed(1)
    _ = torch.randn(latents.shape, generator=gen)
    expected = 0.1 * torch.randn((2, 4, 1, 1), generator=gen)
    assert torch.allclose(shift, expected[:, :, 0, 0], atol=1e-6)
    adaptive = losses.sample_noise(
        latents,
        torch.Generator().manual_seed(1),
        config(noise_offset=0.1, adaptive_noise_scale=0.5),
    )
    # offset 0.1 + 0.5 * |3.0| = 1.6
    assert torch.allclose(adaptive - plain, expected / 0.1 * 1.6, atol=1e-5)
    weaker = losses.sample_noise(
        latents,
        torch.Generator().manual_seed(1),
        config(noise_offset=0.1, noise_offset_random_strength=True),
    )
    gen = torch.Generator().manual_seed(1)
    _ = torch.randn(latents.shape, generator=gen)
    strength = torch.rand(1, generator=gen) * 0.1  # U(0, noise_offset)
    shifted = strength * torch.randn((2, 4, 1, 1), generator=gen)
    assert torch.allclose(weaker - plain, shifted.expand_as(plain), atol=1e-6)
    assert 0 < float(strength) < 0.1


def test_multires_noise_is_pyramid_noise_of_unit_std() -> None:
    # sd-scripts' pyramid_noise_like: levels at random 2-4x smaller scales, upsampled and
    # added with discount**i, then divided by the std.
    latents = torch.zeros((2, 4, 32, 32))
    noise = losses.sample_noise(
        latents,
        torch.Generator().manual_seed(0),
        config(multires_noise_iterations=6, multires_noise_discount=0.3),
    )
    plain = losses.sample_noise(latents, torch.Generator().manual_seed(0), config())
    assert float(noise.std()) == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(noise, plain / plain.std())
    # low frequencies gain weight: the mean over each channel moves away from 0
    assert float(noise.mean(dim=(2, 3)).abs().mean()) > float(plain.mean(dim=(2, 3)).abs().mean())


def test_ip_noise_gamma_perturbs_only_the_noisy_input() -> None:
    # sd-scripts: noisy = add_noise(latents, noise + gamma * N(0,1), t); the target stays the
    # unperturbed noise. With ip_noise_gamma_random_strength gamma is U(0, gamma).
    sched = scheduler()
    latents = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(5))
    noise = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(6))
    t = torch.tensor([10, 900])
    plain = losses.add_noise(sched, latents, noise, t, torch.Generator().manual_seed(7), config())
    assert torch.allclose(plain, sched.add_noise(latents, noise, t))
    gen = torch.Generator().manual_seed(7)
    perturbed = losses.add_noise(sched, latents, noise, t, gen, config(ip_noise_gamma=0.1))
    extra = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(perturbed, sched.add_noise(latents, noise + 0.1 * extra, t), atol=1e-6)
    random_strength = losses.add_noise(
        sched,
        latents,
        noise,
        t,
        torch.Generator().manual_seed(7),
        config(ip_noise_gamma=0.1, ip_noise_gamma_random_strength=True),
    )
    assert not torch.allclose(random_strength, perturbed)


def test_loss_types_follow_sd_scripts_formulas() -> None:
    # conditional_loss: l2 = (p-t)^2, l1 = |p-t|, huber = 2c(sqrt((p-t)^2 + c^2) - c),
    # smooth_l1 = 2(sqrt((p-t)^2 + c^2) - c); the Huber c per sample: constant c * scale,
    # exponential exp(-ln(c)/T * t)... * scale, snr (1 - c) / (1 + sigma)^2 + c.
    sched = scheduler()
    pred = torch.tensor([[[[1.0, -2.0]]], [[[0.5, 0.0]]]])
    target = torch.zeros_like(pred)
    t = torch.tensor([100, 800])
    d2 = pred.pow(2).mean(dim=(1, 2, 3))
    assert torch.allclose(losses.per_sample_loss(pred, target, "l2"), d2)
    assert torch.allclose(
        losses.per_sample_loss(pred, target, "l1"), pred.abs().mean(dim=(1, 2, 3))
    )
    c = losses.huber_c(
        config(loss_type="huber", huber_schedule="constant", huber_c=0.2, huber_scale=2.0), t, sched
    )
    assert c is not None and torch.allclose(c, torch.tensor([0.4, 0.4]))
    cv = c.view(-1, 1, 1, 1)
    huber = (2 * cv * (torch.sqrt(pred**2 + cv**2) - cv)).mean(dim=(1, 2, 3))
    assert torch.allclose(losses.per_sample_loss(pred, target, "huber", c), huber)
    smooth = (2 * (torch.sqrt(pred**2 + cv**2) - cv)).mean(dim=(1, 2, 3))
    assert torch.allclose(losses.per_sample_loss(pred, target, "smooth_l1", c), smooth)
    exp = losses.huber_c(
        config(loss_type="huber", huber_schedule="exponential", huber_c=0.1), t, sched
    )
    alpha = -math.log(0.1) / 1000
    assert exp is not None and torch.allclose(exp, torch.exp(-alpha * t.float()))
    snr = losses.huber_c(config(loss_type="smooth_l1", huber_c=0.1), t, sched)
    a = sched.alphas_cumprod[t]
    sigma = ((1 - a) / a) ** 0.5
    assert snr is not None and torch.allclose(snr, (1 - 0.1) / (1 + sigma) ** 2 + 0.1)
    assert losses.huber_c(config(), t, sched) is None  # l2 needs none


def test_snr_weightings_follow_sd_scripts() -> None:
    # post_process_loss, in order: min-SNR; scale_v_pred_loss_like_noise_pred x snr/(snr+1);
    # v_pred_like_loss adds loss / (snr/(snr+1)) * k; debiased estimation x 1/sqrt(snr)
    # (v: 1/(snr+1)); snr is capped at 1000 for the last three.
    schedule = losses.training_schedule(scheduler(), zero_terminal_snr=False)
    t = torch.tensor([0, 500, 999])
    snr = schedule.snr[t]
    capped = torch.clamp(snr, max=1000)
    loss = torch.ones(3)
    gamma = losses.weigh(loss, config(min_snr_gamma=5.0), schedule.snr, t, False)
    assert torch.allclose(gamma, torch.clamp(snr, max=5.0) / snr)
    scaled = losses.weigh(loss, config(), schedule.snr, t, True)
    assert torch.allclose(scaled, loss)  # nothing asked, nothing changed
    v_scaled = losses.weigh(
        loss,
        config(v_parameterization=True, scale_v_pred_loss_like_noise_pred=True),
        schedule.snr,
        t,
        True,
    )
    assert torch.allclose(v_scaled, capped / (capped + 1))
    like = losses.weigh(loss, config(v_pred_like_loss=0.5), schedule.snr, t, False)
    assert torch.allclose(like, 1 + 1 / (capped / (capped + 1)) * 0.5)
    debiased = losses.weigh(loss, config(debiased_estimation_loss=True), schedule.snr, t, False)
    assert torch.allclose(debiased, 1 / torch.sqrt(capped))
    debiased_v = losses.weigh(loss, config(debiased_estimation_loss=True), schedule.snr, t, True)
    assert torch.allclose(debiased_v, 1 / (capped + 1))
