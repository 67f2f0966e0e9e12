"""tuilora's training loop against a bare PyTorch loop doing the same work, in one run.

Both train the same tiny SD1.5-shaped model (CPU) with the same LoRA, optimizer, batch size
and cached latents; the bare loop skips everything that is not the math (events, TensorBoard,
bucketing, caption processing, per-step seeded generators). Printed: seconds per step of each
and the ratio. Goal (issue 5): <= 1.10x.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from tuilora.config import TrainingConfig
from tuilora.engine.loop import Trainer
from tuilora.engine.models import load_base_model
from tuilora.engine.naming import SD1_NAMING
from tuilora.engine.network_lora import LoRANetwork, RankPlan
from tuilora.engine.text import encode, tokenize
from tuilora.engine.tiny import build_shapes_dataset, build_tiny_pipeline
from tuilora.engine.train import quiet_libraries
from tuilora.runs.events import EventWriter, read_events
from tuilora.runs.rundir import RunDir

STEPS = 60
ROUNDS = 3
BATCH = 2


def engine_seconds_per_step(config: TrainingConfig, root: Path) -> float:
    run = RunDir(root / "run", "bench")
    run.root.mkdir(parents=True)  # a fresh folder per round
    with EventWriter(run.events) as events:
        Trainer(config, run, events, progress=False).run()
    steps = [(e["step"], e["t"]) for e in read_events(run.events) if e["type"] == "step"]
    # The loop reports its steps in groups (the losses are read every few steps), so only
    # the last step of a group is written when that step ends: time between those. Skip the
    # first steps (warm-up) as the bare loop does.
    ends = [
        (step, t)
        for (step, t), (_, following) in zip(steps, [*steps[1:], (0, float("inf"))], strict=True)
        if step > 10 and following - t > 1e-3
    ]
    (first_step, first_t), (last_step, last_t) = ends[0], ends[-1]
    return (last_t - first_t) / (last_step - first_step)


def bare_seconds_per_step(model_dir: Path) -> float:
    torch.manual_seed(0)
    model = load_base_model(str(model_dir))
    for part in (model.unet, model.vae, *model.text_encoders):
        part.requires_grad_(False).eval()
    network = LoRANetwork(model.unet, model.text_encoders, SD1_NAMING, RankPlan(8, 4.0))
    network.apply_to()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    latents = torch.randn(BATCH, 4, 32, 32)
    captions = ["tuidemo, red circle, simple background, shape"] * BATCH
    scheduler = model.noise_scheduler
    durations = []
    for _ in range(STEPS):
        started = time.perf_counter()
        ids = tokenize(model.tokenizers[0], captions, 225)
        states = encode(model.text_encoders[0], ids, None)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, 1000, (BATCH,))
        noisy = scheduler.add_noise(latents, noise, timesteps)
        prediction = model.unet(noisy, timesteps, states).sample
        loss = torch.nn.functional.mse_loss(prediction, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        durations.append(time.perf_counter() - started)
    return statistics.mean(durations[10:])


def main() -> None:
    quiet_libraries()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_pipeline(root / "model")
        # 64x64 images only, so every batch has the bare loop's shape
        data = build_shapes_dataset(root / "data", images=BATCH * 3)
        for path in data.rglob("*.png"):
            from PIL import Image

            Image.open(path).convert("RGB").resize((64, 64)).save(path)
        config = TrainingConfig.from_dict(
            {
                "pretrained_model_name_or_path": str(model_dir),
                "train_data_dir": str(data),
                "output_name": "bench",
                "resolution": 64,
                "enable_bucket": False,
                "network_dim": 8,
                "network_alpha": 4.0,
                "optimizer_type": "AdamW",
                "learning_rate": 1e-4,
                "train_batch_size": BATCH,
                "max_train_steps": STEPS,
                "cache_latents": True,
                "max_token_length": 225,
                "seed": 1,
                "caption_extension": ".txt",
            }
        )
        # Alternate the two (the machine is noisy) and compare the best of each.
        bare_runs, engine_runs = [], []
        for round_ in range(ROUNDS):
            bare_runs.append(bare_seconds_per_step(model_dir))
            engine_runs.append(engine_seconds_per_step(config, root / f"r{round_}"))
    bare, engine = min(bare_runs), min(engine_runs)
    print(
        f"engine {engine * 1000:.1f} ms/step, bare torch loop {bare * 1000:.1f} ms/step,"
        f" ratio {engine / bare:.2f}x (goal <= 1.10x; CPU, {torch.get_num_threads()} threads)",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
