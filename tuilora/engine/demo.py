"""``tuilora demo``: the whole product on a tiny model, on any machine, in about a minute.

Builds a tiny SD1.5-shaped pipeline and a synthetic captioned dataset, asks the advisor for a
config (the same code path as ``tuilora advise``), trains it with ``tuilora train``'s engine,
then proves the LoRA: diffusers loads it with every module injected and no warnings, and the
output changes between strength 0 and 1.
"""

from __future__ import annotations

import logging
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


#: What a demo folder holds; ``--force`` reuses a folder holding nothing else.
DEMO_ENTRIES = frozenset({"model", "dataset", "demo.toml", "runs", "demo.log"})


def demo_folder(out: str | None, *, force: bool) -> Path:
    """A new temporary folder, or ``--out``: new or empty, or (``--force``) an old demo's."""
    if not out:
        return Path(tempfile.mkdtemp(prefix="tuilora-demo-"))
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {out}: is a file; give a new or empty folder")
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if entries and not force:
        raise UserError(
            f"--out {out} is not empty: give a new or empty folder (--force reuses the folder"
            " of an earlier demo)"
        )
    foreign = [name for name in entries if name not in DEMO_ENTRIES]
    if foreign:
        raise UserError(
            f"--out {out} holds {', '.join(foreign[:3])} that no demo made: give a new or"
            " empty folder (--force only reuses an earlier demo's folder)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_demo(
    out: str | None,
    *,
    force: bool = False,
    progress: bool = True,
    trainer: Callable[[Path, Path], int] | None = None,
) -> int:
    """Make, advise, train, verify. ``trainer(config, run_dir)`` trains instead of the
    in-process engine (the CLI passes the live monitor's child-process trainer)."""
    from tuilora.engine import console

    folder = demo_folder(out, force=force)
    say = console.say
    log = folder / "demo.log"  # the libraries' own output, not the terminal's
    say(f"tuilora demo in {folder}")
    say("1/4 building a tiny SD1.5-shaped model and a synthetic dataset ...")
    with console.output_to_log(log):
        from tuilora.engine.tiny import build_shapes_dataset, build_tiny_pipeline
        from tuilora.engine.train import quiet_libraries

        quiet_libraries(logging.WARNING)
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
    with console.output_to_log(log):
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
    say("see it again with: tuilora watch    list runs with: tuilora runs")
    return 0
