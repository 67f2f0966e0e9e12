"""``tuilora demo``: the whole product on a tiny model, on any machine, in about a minute.

Builds a tiny SD1.5-shaped pipeline and a synthetic captioned dataset, asks the advisor for a
config (the same code path as ``tuilora advise``), trains it with ``tuilora train``'s engine,
then proves the LoRA: diffusers loads it with every module injected and no warnings, and the
output changes between strength 0 and 1.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tuilora.advisor.answers import Answers
from tuilora.advisor.export import render_text
from tuilora.advisor.recommend import recommend
from tuilora.errors import UserError
from tuilora.fileio import write_atomic

DEMO_IMAGES = 8
DEMO_PROMPT = "tuidemo, red circle"
#: The tiny model's scale: 64-pixel training images, small buckets, a few dozen steps.
DEMO_PINS = {
    "resolution": 64,
    "min_bucket_reso": 32,
    "max_bucket_reso": 128,
    "bucket_reso_steps": 32,
    "max_train_epochs": 8,
    "save_every_n_epochs": 4,
}


def demo_config_text(folder: Path) -> str:
    """The advisor's config for the demo dataset, with the tiny model's paths and scale."""
    answers = Answers(subject="concept", simple=True, images=DEMO_IMAGES, vram=24.0)
    pins = {
        **DEMO_PINS,
        "pretrained_model_name_or_path": str(folder / "model"),
        "train_data_dir": str(folder / "dataset"),
        "output_dir": str(folder / "runs" / "demo"),
        "output_name": "demo",
    }
    rec = recommend(answers, overrides=pins)
    return render_text(rec, "toml", "tuilora demo: the advisor's config for a tiny model")


def run_demo(
    out: str | None,
    *,
    force: bool = False,
    progress: bool = True,
    trainer: Callable[[Path, Path], int] | None = None,
) -> int:
    """Make, advise, train, verify. ``trainer(config, run_dir)`` trains instead of the
    in-process engine (the CLI passes the live monitor's child-process trainer)."""
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="tuilora-demo-"))
    if out and (folder / "runs" / "demo" / "events.jsonl").exists() and not force:
        raise UserError(f"{folder} already holds a demo run; pass --force or another --out")
    folder.mkdir(parents=True, exist_ok=True)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    say(f"tuilora demo in {folder}")
    say("1/4 building a tiny SD1.5-shaped model and a synthetic dataset ...")
    from tuilora.engine.tiny import build_shapes_dataset, build_tiny_pipeline

    build_tiny_pipeline(folder / "model")
    build_shapes_dataset(folder / "dataset", images=DEMO_IMAGES)
    say("2/4 asking the advisor for a config ...")
    config_path = folder / "demo.toml"
    write_atomic(config_path, demo_config_text(folder), overwrite=True)
    say("3/4 training ...")
    if trainer is not None:
        code = trainer(config_path, folder / "runs" / "demo")
    else:
        from tuilora.engine.train import run_training

        code = run_training(str(config_path), force=True, progress=progress)
    if code != 0:
        return code
    say("4/4 loading the LoRA back into diffusers ...")
    from tuilora.engine.verify import verify_lora

    lora = folder / "runs" / "demo" / "demo.safetensors"
    report = verify_lora(folder / "model", lora, prompt=DEMO_PROMPT)
    say(
        f"  {report.file_modules} LoRA modules in the file, {report.injected_total} injected"
        f" (unet {report.injected['unet']}, text encoder {report.injected['text_encoder']}),"
        f" {len(report.warnings)} loading warnings"
    )
    say(f"  output change between strength 0 and 1: {report.output_change:.4f} (mean abs pixel)")
    for warning in report.warnings:
        say(f"  warning: {warning}")
    if not report.ok:
        say("demo failed: the LoRA did not load cleanly")
        return 1
    say(f"done: {lora}")
    say(f"config: {config_path}   events: {folder / 'runs' / 'demo' / 'events.jsonl'}")
    return 0
