"""``tuilora sample RUN``: the XY grids of a finished (or stopped) run.

``run_sample`` takes the raw option values of the click command (strings, flags, None) and
returns the exit code; errors a user can fix are ``UserError`` naming the flag or file. The
grids go to ``RUN/samples/grids/`` and their paths are printed on stdout, one per line;
progress goes to stderr.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from tuilora.config import TrainingConfig, load_toml
from tuilora.errors import UserError
from tuilora.runs.prompts import SamplePrompt, load_prompts, parse_prompt_line
from tuilora.runs.rundir import RunDir

GRIDS: Final = ("epoch-strength", "unet-te", "both")
DEFAULT_STRENGTHS: Final = (0.5, 0.75, 1.0)
DEFAULT_PART_STRENGTHS: Final = (0.0, 0.5, 1.0, 1.5)
#: A fixed seed, so two invocations of the same grid give the same cells.
DEFAULT_SEED: Final = 0
MAX_STEPS: Final = 1000


def _say(text: str) -> None:
    from tuilora.engine import console

    console.say(text)


def find_run(raw: str) -> tuple[RunDir, TrainingConfig]:
    """The run folder (a path, or a name under ``runs/``) and its resolved config."""
    root = Path(raw)
    if not root.is_dir() and (Path("runs") / raw).is_dir():
        root = Path("runs") / raw
    if not root.is_dir():
        raise UserError(f"{raw}: no such run folder (give the folder `tuilora train` wrote)")
    if not (root / "config.toml").is_file():
        raise UserError(f"{root}: no config.toml there (is it a tuilora run folder?)")
    config = load_toml(root / "config.toml").config
    return RunDir(root, config.output_name or "lora"), config


def lora_files(run: RunDir) -> list[Path]:
    """The epoch snapshots, oldest first, then the final file (or a stopped run's last)."""
    files = list(run.snapshots())
    if run.final.is_file():
        files.append(run.final)
    else:
        stopped = sorted(run.root.glob(f"{run.name}-step[0-9]*.safetensors"))
        files.extend(stopped[-1:])
    if not files:
        raise UserError(
            f"{run.root}: no LoRA files yet ({run.name}-000001.safetensors …"
            f" {run.name}.safetensors); train first, or wait for the first snapshot"
        )
    return files


def pick_snapshot(run: RunDir, raw: str | None, files: Sequence[Path]) -> Path:
    """``--snapshot``: a path, or a file name / stem inside the run; default the last."""
    if not raw:
        return files[-1]
    for candidate in (Path(raw), run.root / raw, run.root / f"{raw}.safetensors"):
        if candidate.is_file():
            return candidate
    names = ", ".join(path.name for path in files)
    raise UserError(f"--snapshot {raw}: no such file in {run.root} (there are: {names})")


def check_loras(kind: str, files: Sequence[Path], snapshot: Path, *, given: str | None) -> None:
    """Every LoRA the grids will load, checked before the base model loads (a minute on a
    CPU): a cut, lying, pickled or non-LoRA file is one line naming it, not a traceback."""
    from tuilora.modelfile.lora import check_lora_file

    if kind in ("epoch-strength", "both"):
        for path in files:
            check_lora_file(path, allow_pickle=None)
    if kind in ("unet-te", "both"):
        header = check_lora_file(snapshot, "--snapshot" if given else "", allow_pickle=None)
        own = check_lora_file(files[-1], allow_pickle=None)
        if header is not None and own is not None and snapshot != files[-1]:
            _same_network(snapshot, header.tensors, own.tensors, files[-1].name)


def _same_network(
    path: Path, tensors: Mapping[str, Any], own: Mapping[str, Any], name: str
) -> None:
    """A snapshot from elsewhere must fit the run's network (built from the run's config):
    compared with the run's own LoRA by header alone, before the model loads."""
    shared = [key for key in tensors if key in own]
    if not shared:
        raise UserError(
            f"--snapshot {path}: none of its {len(tensors)} tensors is in the run's LoRA"
            f" ({name}); a LoRA of another model family or network type?"
        )
    for key in shared:
        if tensors[key].shape != own[key].shape:
            raise UserError(
                f"--snapshot {path}: {key} has shape {tensors[key].shape}, the run's LoRA"
                f" {own[key].shape} (another rank or network type?)"
            )


def parse_strengths(raw: Any, flag: str, default: Sequence[float]) -> list[float]:
    if raw is None or str(raw).strip() == "":
        return list(default)
    values = []
    for part in str(raw).split(","):
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"{flag} {raw!r}: give comma-separated numbers, e.g. 0.5,1") from None
        if not math.isfinite(value):
            raise UserError(f"{flag} {raw!r}: give finite numbers")
        values.append(value)
    return values


def _whole(raw: Any, flag: str, minimum: int, maximum: int | None = None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise UserError(f"{flag} {raw!r}: give a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise UserError(f"{flag} {value}: must be at least {minimum}{upper}")
    return value


def first_caption(config: TrainingConfig) -> str | None:
    """The first caption of the training set (sd-scripts' order), for a default prompt."""
    if not config.train_data_dir or not Path(config.train_data_dir).is_dir():
        return None
    from tuilora.dataset.captions import read_caption
    from tuilora.dataset.layout import discover

    layout = discover(
        config.train_data_dir, is_reg=False, caption_extension=config.caption_extension
    )
    for folder in layout.folders:
        for name in sorted(folder.images):
            stem = Path(folder.path) / Path(name).stem
            text = read_caption(f"{stem}{config.caption_extension}").text
            if text:
                return text
    return None


def choose_prompt(raw: str | None, config: TrainingConfig) -> SamplePrompt:
    """--prompt (sd-scripts syntax), else the run's first sample prompt, else a caption."""
    if raw:
        return parse_prompt_line(raw, origin="--prompt")
    if config.sample_prompts and Path(config.sample_prompts).is_file():
        return load_prompts(config.sample_prompts)[0]
    if config.sample_prompts:
        _say(f"sample_prompts {config.sample_prompts} is gone; using the first caption")
    caption = first_caption(config)
    if caption:
        return SamplePrompt(prompt=caption, origin="the first caption")
    raise UserError("no prompt: give --prompt TEXT (the run has no sample prompts or captions)")


def run_sample(options: Mapping[str, Any]) -> int:
    """``tuilora sample RUN [--grid …]``; prints each grid's path on stdout."""
    run, config = find_run(str(options["run"]))
    kind = str(options.get("grid") or "both")
    if kind not in GRIDS:
        raise UserError(f"--grid {kind!r}: choose one of {', '.join(GRIDS)}")
    strengths = parse_strengths(options.get("strengths"), "--strengths", DEFAULT_STRENGTHS)
    unet = parse_strengths(
        options.get("unet_strengths"), "--unet-strengths", DEFAULT_PART_STRENGTHS
    )
    te = parse_strengths(options.get("te_strengths"), "--te-strengths", DEFAULT_PART_STRENGTHS)
    seed = _whole(options.get("seed"), "--seed", 0)
    steps = _whole(options.get("steps"), "--steps", 1, MAX_STEPS)
    files = lora_files(run)
    snapshot = pick_snapshot(run, options.get("snapshot"), files)
    check_loras(kind, files, snapshot, given=options.get("snapshot"))
    prompt = choose_prompt(options.get("prompt"), config)

    from tuilora.engine.sample import check_sampler, resolve

    sampler = str(options.get("sampler") or prompt.sampler or config.sample_sampler)
    check_sampler(sampler, "--sampler")
    item = resolve(
        prompt,
        default_size=config.resolution_wh(),
        sampler=sampler,
        seed=seed if seed is not None else (prompt.seed or DEFAULT_SEED),
        steps=steps,
    )
    cells = 0
    if kind in ("epoch-strength", "both"):
        cells += len(files) * len(strengths)
    if kind in ("unet-te", "both"):
        cells += len(unet) * len(te)
    folder = run.samples / "grids"
    folder.mkdir(parents=True, exist_ok=True)
    from tuilora.engine import console

    # The libraries' warnings go to samples/grids/sample.log; tuilora's lines to the console.
    with console.output_to_log(folder / "sample.log"):
        job = grid_job(
            config,
            item,
            model_path=options.get("model"),
            allow_pickle=bool(options.get("allow_pickle")),
        )
        job, estimate = plan_time(job, files[-1], cells, steps_given=steps is not None)
        progress = (cells, estimate)
        written = make_grids(job, run, kind, files, snapshot, strengths, unet, te, progress)
    for path in written:
        print(path)
    if sys.stdout.isatty() and not options.get("no_show"):
        show_in_terminal(written)
    return 0


def plan_time(job: Any, lora: Path, cells: int, *, steps_given: bool) -> tuple[Any, float]:
    """Measure (with ``lora`` applied), pick the steps (fewer by default on a CPU), and say
    how long it will take; the job and the estimate in seconds."""
    import dataclasses

    from tuilora.engine.sample_time import CPU_BUDGET_S, cpu_steps, measure
    from tuilora.runs.phases import clock_text

    _say("timing one image ...")
    timing = measure(job, lora)
    steps = job.item.steps
    on_cpu = job.device.type == "cpu"
    if on_cpu and not steps_given:
        fewer = cpu_steps(timing, cells, steps)
        if fewer < steps:
            _say(
                f"on the CPU: {fewer} steps per image instead of {steps}, to keep this near"
                f" {clock_text(CPU_BUDGET_S)} (--steps {steps} for the full count)"
            )
            job = dataclasses.replace(job, item=dataclasses.replace(job.item, steps=fewer))
            steps = fewer
    total = cells * timing.cell_s(steps)
    _say(f"{cells} images × {steps} steps on {job.device.type}: about {clock_text(total)}")
    if on_cpu:
        _say("sampling on the CPU is slow: a GPU makes these grids in seconds")
    return job, total


def make_grids(
    job: Any,
    run: RunDir,
    kind: str,
    files: list[Path],
    snapshot: Path,
    strengths: list[float],
    unet: list[float],
    te: list[float],
    progress_of: tuple[int, float],
) -> list[Path]:
    """The chosen grids, with one progress bar over all their cells."""
    import dataclasses

    from tuilora.engine.grids import epoch_strength_grid, save_grid, unet_te_grid
    from tuilora.engine.sample_time import CellProgress

    folder = run.samples / "grids"
    progress = CellProgress(*progress_of)  # (cells, estimated seconds)
    job = dataclasses.replace(job, report=progress)
    written = []
    try:
        if kind in ("epoch-strength", "both"):
            grid = epoch_strength_grid(job, files, strengths)
            written.append(save_grid(grid, folder, f"{run.name}_epoch-strength"))
        if kind in ("unet-te", "both"):
            grid, has_te = unet_te_grid(job, snapshot, unet, te)
            if not has_te:
                _say(f"note: {snapshot.name} has no text-encoder modules; the rows cannot differ")
            written.append(save_grid(grid, folder, f"{snapshot.stem}_unet-te"))
    finally:
        progress.close()
    return written


def show_in_terminal(paths: list[Path]) -> None:
    """Draw the grids in the terminal (Sixel / Kitty graphics where the terminal has them,
    half-block characters elsewhere); the paths above stay the record."""
    try:
        from rich.console import Console
        from textual_image.renderable import Image as TerminalImage
    except ImportError:  # the optional package is missing: the paths are enough
        return
    console = Console()
    for path in paths:
        console.print(TerminalImage(str(path), width=min(console.width, 100)))


def grid_job(
    config: TrainingConfig, item: Any, *, model_path: str | None = None, allow_pickle: bool = False
) -> Any:
    """The run's base model on the best device in the run's precision, with the prompt."""
    import torch

    from tuilora.engine.grids import GridJob
    from tuilora.engine.models import load_base_model
    from tuilora.engine.sample import TextSettings, autocast_for
    from tuilora.engine.train import quiet_libraries

    quiet_libraries()
    _say("loading the base model ...")
    model = load_base_model(
        str(model_path or config.pretrained_model_name_or_path or ""),
        model_config=config.model_config,
        allow_pickle=allow_pickle,
        force_v_prediction=config.v_parameterization,
        vae_path=config.vae,
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32
    if device.type == "cuda":
        dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16
    for part in (model.unet, *model.text_encoders):
        part.to(device, dtype=dtype)
    # SDXL's VAE overflows in fp16 (DESIGN §6): it decodes in fp32, as in training.
    vae_dtype = torch.float32 if config.no_half_vae or model.family == "sdxl" else dtype
    model.vae.to(device, dtype=vae_dtype)
    return GridJob(
        model=model,
        config=config,
        item=item,
        text=TextSettings.of(config),
        device=device,
        autocast=autocast_for(device, dtype),
        report=_say,
    )
