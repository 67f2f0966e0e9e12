"""Time to the first step, first run against a second run on the same dataset (issue 19 item 6).

``tuilora train`` (a fresh process, offline) on a full-size SD1.5 single file with random
weights (``load_model.write_random_checkpoint``) and 100 random images at 256 px on the CPU
(``--tiny``: the tiny model at 64 px), with ``cache_latents_to_disk`` and a private
``XDG_CACHE_HOME``: seconds from the command to its first step event, twice. The first run
loads the model and encodes every image, as sd-scripts does each time it starts without its
``.npz`` files; the second finds every latent in the cache. Printed: both times and the
ratio. Goal: second <= 0.2x first. Needs ~2 GB of disk for the model file (deleted).

    python benchmarks/first_step.py [--tiny] [--images 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def first_step_seconds(config: Path, events: Path, env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("ab") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "tuilora", "train", str(config), "--no-progress"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        seen = None
        while process.poll() is None:
            if seen is None and events.is_file() and '"type": "step"' in events.read_text():
                seen = time.perf_counter() - started
            time.sleep(0.05)
    if process.returncode != 0 or seen is None:
        raise SystemExit(f"tuilora train failed ({process.returncode}): see {log}")
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    import tomli_w

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.tiny:
            from tuilora.engine.tiny import build_tiny_pipeline

            model, side = str(build_tiny_pipeline(work / "tiny")), 64
        else:
            sys.path.insert(0, str(Path(__file__).parent))
            from load_model import write_random_checkpoint  # type: ignore[import-not-found]

            model, side = str(work / "sd15.safetensors"), 256
            write_random_checkpoint("sd1", Path(model))
        images = work / "data" / "1_bench"
        images.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for index in range(args.images):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{index}.png")
            (images / f"{index}.txt").write_text("bench, a random thing", encoding="utf-8")
        home = work / "hf-home"
        home.mkdir()
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(home),
            "XDG_CACHE_HOME": str(work / "cache"),
        }
        times = []
        for name in ("first", "second"):
            config = {
                "pretrained_model_name_or_path": model,
                "train_data_dir": str(work / "data"),
                "output_dir": str(work / f"run-{name}"),
                "output_name": "bench",
                "resolution": side,
                "network_dim": 4,
                "network_alpha": 1.0,
                "optimizer_type": "AdamW",
                "learning_rate": 1e-4,
                "train_batch_size": 1,
                "max_train_steps": 1,
                "cache_latents_to_disk": True,
                "seed": 1,
            }
            path = work / f"{name}.toml"
            path.write_text(tomli_w.dumps(config))
            events = work / f"run-{name}" / "events.jsonl"
            times.append(first_step_seconds(path, events, env, work / f"{name}.log"))
    first, second = times
    size = "tiny model, 64 px" if args.tiny else "SD1.5 full size (random weights), 256 px"
    print(
        f"time to first step ({size}, {args.images} images, CPU): first run {first:.1f} s,"
        f" second run {second:.1f} s, ratio {second / first:.2f}x (goal <= 0.2x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
