"""tuilora's training step against a plain diffusers + peft loop, same model, same process.

Issue 19 item 1. An SD1.5-shaped model with random weights (real sizes, written as an
original-layout single file by ``benchmarks/load_model.py``; nothing is downloaded), latents
cached (512 px: 64x64x4), LoRA rank 32 on the UNet, for each batch size, precision and
optimizer asked:

- ``tuilora``: ``Trainer.run()`` on a folder of random 512 px images with ``cache_latents``,
  ``network_train_unet_only`` (the baseline trains no text encoder either); seconds per step
  from the step events (the loop reports steps in groups, so the time between the ends of
  groups), after a warm-up.
- ``baseline``: the loop of diffusers' ``examples/text_to_image/train_text_to_image_lora.py``:
  ``unet.add_adapter(LoraConfig(r, lora_alpha=r, init_lora_weights="gaussian",
  target_modules=["to_k", "to_q", "to_v", "to_out.0"]))``, frozen weights in the training
  dtype and LoRA weights in fp32, the text encoder under ``no_grad``, noise, uniform
  timesteps, ``add_noise``, the UNet under autocast, MSE in fp32, backward, optimizer step,
  constant scheduler, ``zero_grad``; the same cached random latents shape.

Printed per configuration: samples/s of both and the ratio (goal >= 1.2x at batch 8), peak
VRAM of both (``torch.cuda.max_memory_allocated``, reset before each), and MFU.

MFU counting: 1.77 TFLOP per sample, the issue's figure for one SD1.5 sample at 512 px. How it
adds up: the UNet forward at 64x64 latents is ~0.40 TFLOP (2 x ~200 GMAC: convolutions
~130 GMAC, attention and projections ~70 GMAC); the backward with frozen weights computes the
input gradients (one forward's worth, ~0.40 TFLOP) and the LoRA weight gradients (negligible),
so ~0.80 TFLOP; with gradient checkpointing the forward runs again (~0.40). The text encoder
forward (77 tokens, 123 M parameters) is ~0.02 TFLOP. Forward + backward + recompute + text
encoder is ~1.6-1.8 TFLOP; the issue fixes 1.77 so that figures compare across changes.
MFU = samples/s x 1.77 TFLOP / the card's dense bf16/fp16 peak (``--peak-tflops``, else a
table by card name: H100 SXM 989, H100 PCIe 756, H200 989, A100 312, L40S 362, RTX 4090 165).

    python benchmarks/gpu_bench.py                      # the full matrix on the GPU
    python benchmarks/gpu_bench.py --device cpu --tiny  # the tiny model on the CPU: proof it runs
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TFLOP_PER_SAMPLE = 1.77
PEAK_TFLOPS = {
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "RTX 4090": 165.0,
}
RANK = 32


@dataclass
class Result:
    seconds_per_step: float
    peak_gb: float | None


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def make_model(tiny: bool, work: Path) -> tuple[str, int]:
    """The model path and the image side: a tiny diffusers folder (64 px) or a full-size
    SD1.5 single file with random weights (512 px)."""
    if tiny:
        from tuilora.engine.tiny import build_tiny_pipeline

        return str(build_tiny_pipeline(work / "tiny")), 64
    sys.path.insert(0, str(Path(__file__).parent))
    from load_model import write_random_checkpoint  # type: ignore[import-not-found]

    file = work / "sd15-random.safetensors"
    write_random_checkpoint("sd1", file)
    return str(file), 512


def make_dataset(folder: Path, side: int, count: int) -> Path:
    images = folder / "1_bench"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{index}.png")
        (images / f"{index}.txt").write_text("bench, a photo of a random thing", encoding="utf-8")
    return folder


def tuilora_step(
    model: str,
    data: Path,
    work: Path,
    side: int,
    batch: int,
    precision: str,
    optimizer: str,
    steps: int,
    warmup: int,
    device: torch.device,
    checkpointing: bool,
) -> Result:
    from tuilora.config import TrainingConfig
    from tuilora.engine.loop import Trainer
    from tuilora.runs.events import EventWriter, read_events
    from tuilora.runs.rundir import RunDir

    run = RunDir(work / f"run-{batch}-{precision}-{optimizer}", "bench")
    run.root.mkdir(parents=True)
    config = TrainingConfig.from_dict(
        {
            "pretrained_model_name_or_path": model,
            "train_data_dir": str(data),
            "output_dir": str(run.root),
            "output_name": "bench",
            "resolution": side,
            "enable_bucket": False,
            "network_dim": RANK,
            "network_alpha": float(RANK),
            "network_train_unet_only": True,
            "optimizer_type": optimizer,
            "learning_rate": 1.0 if optimizer.startswith(("Prodigy", "DAdapt")) else 1e-4,
            "train_batch_size": batch,
            "max_train_steps": warmup + steps,
            "mixed_precision": precision if device.type == "cuda" else "no",
            "gradient_checkpointing": checkpointing,
            "cache_latents": True,
            "seed": 1,
            "caption_extension": ".txt",
            "save_model_as": "safetensors",
            "save_every_n_epochs": None,
        }
    )
    reset_peak(device)
    with EventWriter(run.events) as events:
        status = Trainer(config, run, events, progress=False).run()
    if status != "finished":
        raise SystemExit(f"tuilora run ended {status}: see {run.events}")
    points = [(e["step"], e["t"]) for e in read_events(run.events) if e["type"] == "step"]
    # Steps are reported in groups when the losses are read: time between group ends.
    ends = [
        (step, t)
        for (step, t), (_, after) in zip(points, [*points[1:], (0, float("inf"))], strict=True)
        if step > warmup and after - t > 1e-3
    ]
    (first_step, first_t), (last_step, last_t) = ends[0], ends[-1]
    if last_step == first_step:
        raise SystemExit("too few steps to time: raise --steps")
    return Result((last_t - first_t) / (last_step - first_step), peak_gb(device))


def baseline_step(
    model: str,
    side: int,
    batch: int,
    precision: str,
    optimizer: str,
    steps: int,
    warmup: int,
    device: torch.device,
    checkpointing: bool,
) -> Result:
    """diffusers' LoRA example loop, reduced to what a step does."""
    from peft import LoraConfig

    from tuilora.engine.models import load_base_model

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if device.type != "cuda":
        dtype = torch.float32
    base = load_base_model(model, dtype=dtype)
    unet, text_encoder, tokenizer = base.unet, base.text_encoders[0], base.tokenizers[0]
    scheduler = base.noise_scheduler
    for part in (unet, text_encoder, base.vae):
        part.requires_grad_(False)
    unet.to(device, dtype)
    text_encoder.to(device, dtype)
    unet.add_adapter(
        LoraConfig(
            r=RANK,
            lora_alpha=RANK,
            init_lora_weights="gaussian",
            target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        )
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    for param in params:
        param.data = param.data.float()  # the example's cast_training_params
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    opt = make_optimizer(optimizer, params)
    ids = tokenizer(
        ["bench, a photo of a random thing"] * batch,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)
    latent_side = side // 8
    latents = torch.randn(batch, 4, latent_side, latent_side, device=device)
    alphas = scheduler.alphas_cumprod.to(device)
    autocast = (
        torch.autocast("cuda", dtype=dtype) if device.type == "cuda" else contextlib.nullcontext()
    )
    reset_peak(device)
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        with torch.no_grad():
            states = text_encoder(ids, return_dict=False)[0]
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, len(alphas), (batch,), device=device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        with autocast:
            prediction = unet(noisy, timesteps, states, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    peak = peak_gb(device)
    del base, unet, text_encoder, opt, params
    return Result(seconds, peak)


def make_optimizer(name: str, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if name == "AdamW8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=1e-4)
    if name == "Prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params, lr=1.0)
    if name == "DAdaptAdam":
        from dadaptation import DAdaptAdam

        return DAdaptAdam(params, lr=1.0)
    return torch.optim.AdamW(params, lr=1e-4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny model at 64 px")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--precisions", default="bf16,fp16")
    parser.add_argument("--optimizers", default="AdamW8bit,Prodigy")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--work", default=None, help="folder for the model and data (temp)")
    args = parser.parse_args()

    from tuilora.engine.train import quiet_libraries

    quiet_libraries()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("no CUDA device: run with --device cpu --tiny for the CPU path")
            return 2
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        print(f"device: {torch.cuda.get_device_name(device)}")
    else:
        print(f"device: CPU ({torch.get_num_threads()} threads)")
    peak = peak_tflops(device, args.peak_tflops)
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        model, side = make_model(args.tiny, work)
        # One epoch covers every step: no epoch end falls inside the timed steps.
        data = make_dataset(work / "data", side, max(batches) * (args.warmup + args.steps))
        print(f"model: {'tiny' if args.tiny else 'SD1.5 full size, random weights'}, {side} px")
        for precision in args.precisions.split(","):
            for optimizer in args.optimizers.split(","):
                for batch in batches:
                    common = (args.steps, args.warmup, device, args.gradient_checkpointing)
                    ours = tuilora_step(
                        model, data, work, side, batch, precision, optimizer, *common
                    )
                    theirs = baseline_step(model, side, batch, precision, optimizer, *common)
                    report(batch, precision, optimizer, ours, theirs, peak)
    return 0


def report(
    batch: int, precision: str, optimizer: str, ours: Result, theirs: Result, peak: float | None
) -> None:
    ours_sps, theirs_sps = batch / ours.seconds_per_step, batch / theirs.seconds_per_step
    mfu = (
        f" MFU tuilora {ours_sps * TFLOP_PER_SAMPLE / peak:.1%} baseline"
        f" {theirs_sps * TFLOP_PER_SAMPLE / peak:.1%}"
        if peak
        else " MFU n/a"
    )
    vram = (
        f" peak VRAM tuilora {ours.peak_gb:.2f} GB baseline {theirs.peak_gb:.2f} GB"
        if ours.peak_gb is not None and theirs.peak_gb is not None
        else ""
    )
    print(
        f"batch {batch} {precision} {optimizer}: tuilora {ours_sps:.2f} samples/s, baseline"
        f" {theirs_sps:.2f} samples/s, ratio {ours_sps / theirs_sps:.2f}x;{vram}{mfu}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
