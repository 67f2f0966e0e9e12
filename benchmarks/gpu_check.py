"""Run the engine on CUDA in one go: fp16 mixed precision with AdamW8bit and with Prodigy.

For a machine with an NVIDIA GPU (`python benchmarks/gpu_check.py`). Trains the tiny
SD1.5-shaped model for each optimizer, checks the run finished, the LoRA loads into diffusers
with every module injected, and prints seconds per step and peak VRAM, one line each.
Exits 1 if any check fails; prints a notice and exits 0 when no GPU is present.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from tuilora.config import TrainingConfig
from tuilora.engine.loop import Trainer
from tuilora.engine.tiny import build_shapes_dataset, build_tiny_pipeline
from tuilora.engine.train import quiet_libraries
from tuilora.engine.verify import verify_lora
from tuilora.runs.events import EventWriter, read_events
from tuilora.runs.rundir import RunDir

CASES = {
    "AdamW8bit": {
        "optimizer_type": "AdamW8bit",
        "learning_rate": 1e-3,
        "unet_lr": 1e-3,
        "text_encoder_lr": 5e-4,
    },
    "Prodigy": {
        "optimizer_type": "Prodigy",
        "learning_rate": 1.0,
        "unet_lr": 1.0,
        "text_encoder_lr": 1.0,
        "optimizer_args": [
            "decouple=True",
            "weight_decay=0.01",
            "d_coef=2",
            "use_bias_correction=True",
            "safeguard_warmup=False",
        ],
    },
}


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check")
        return 0
    quiet_libraries()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_pipeline(root / "model")
        data = build_shapes_dataset(root / "data", images=8)
        for name, changes in CASES.items():
            config = TrainingConfig.from_dict(
                {
                    "pretrained_model_name_or_path": str(model),
                    "train_data_dir": str(data),
                    "output_name": name,
                    "resolution": 64,
                    "enable_bucket": True,
                    "min_bucket_reso": 32,
                    "max_bucket_reso": 128,
                    "bucket_reso_steps": 32,
                    "network_dim": 8,
                    "network_alpha": 1.0,
                    "train_batch_size": 2,
                    "max_train_epochs": 10,
                    "mixed_precision": "fp16",
                    "save_precision": "fp16",
                    "cache_latents": True,
                    "gradient_checkpointing": True,
                    "seed": 1,
                    "caption_extension": ".txt",
                    "max_token_length": 225,
                    "min_snr_gamma": 5.0,
                    **changes,
                }
            )
            run = RunDir(root / name, name)
            run.root.mkdir()
            torch.cuda.reset_peak_memory_stats()
            with EventWriter(run.events) as events:
                status = Trainer(config, run, events, progress=False).run()
            steps = [e for e in read_events(run.events) if e["type"] == "step"]
            per_step = (steps[-1]["t"] - steps[2]["t"]) / max(1, len(steps) - 3)
            report = (
                verify_lora(model, run.final, prompt="tuidemo, red circle")
                if run.final.exists()
                else None
            )
            ok = status == "finished" and report is not None and report.ok
            failures += not ok
            print(
                f"{name}: {status}, {len(steps)} steps, {per_step * 1000:.1f} ms/step, peak VRAM"
                f" {torch.cuda.max_memory_allocated() / 2**30:.2f} GB, last loss"
                f" {steps[-1]['loss']:.4f}, lora loads: {report.ok if report else False}"
                f" ({report.injected_total if report else 0}/{report.file_modules if report else 0}"
                f" modules) on {torch.cuda.get_device_name(0)}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
