"""The ``tuilora`` command line: parse, call, print. No logic lives here.

Every heavy import (rich, the dataset scanner, later torch) happens inside the command that
needs it, so ``tuilora advise --format json`` and ``tuilora --help`` start fast and import
neither torch nor textual (DESIGN §1).

User mistakes raise ``UserError``; ``main`` prints one line on stderr and exits with 2.
Click's own usage errors are folded into the same one-line form.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Sequence
from typing import Any

import click

from tuilora import __version__
from tuilora.errors import UserError


def _answer_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One click option per advisor question (answers.QUESTIONS is the single declaration)."""
    from tuilora.advisor.answers import QUESTIONS

    for question in reversed(QUESTIONS):
        param = question.name
        help_text = question.help
        if question.choices:
            help_text += f" [{'|'.join(question.choices)}]"
        if question.kind == "bool":
            option = click.option(question.flag, param, is_flag=True, default=None, help=help_text)
        else:
            # Plain strings: the advisor validates and names the flag in a one-line error.
            option = click.option(question.flag, param, default=None, help=help_text)
        func = option(func)
    return func


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.version_option(__version__, prog_name="tuilora")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> int:
    """tuilora: advice, dataset checks and training for Stable Diffusion LoRAs.

    Run `tuilora` alone in a terminal for the wizard, or `tuilora advise --help` for
    numbers from the command line.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if ctx.invoked_subcommand is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            # The wizard needs a terminal; in a pipe or a script, say what there is.
            click.echo(ctx.get_help())
            return 0
        from tuilora.screens.app import run_app

        return run_app()
    return 0


@cli.command()
@_answer_options
@click.option(
    "--dataset",
    "dataset_dir",
    default=None,
    help="scan DIR (<repeats>_<name>/ folders) for real counts",
)
@click.option(
    "--caption-extension", default=".txt", show_default=True, help="caption files for --dataset"
)
@click.option("--model", default=None, help="base model path (pretrained_model_name_or_path)")
@click.option("--name", "output_name", default=None, help="output_name of the LoRA")
@click.option("--output-dir", default=None, help="output_dir for the LoRA files")
@click.option("--processes", default=None, metavar="N", help="GPUs training together")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="fix a config field (repeatable)"
)
@click.option(
    "--format", "fmt", default="table", help="table | json | toml | kohya-toml | kohya-cmd"
)
@click.option(
    "--explain", "explain_field", default=None, metavar="FIELD", help="why FIELD has its value"
)
@click.option("--output", "-o", default=None, metavar="FILE", help="write to FILE (atomic)")
@click.option("--force", is_flag=True, help="overwrite --output if it exists")
def advise(**options: Any) -> int:
    """Recommend a complete training config, with a reason for every field."""
    from tuilora.advisor import cli_advise

    return cli_advise.run(options, argv=sys.argv[1:])


@cli.command()
def categories() -> int:
    """The character difficulty categories A-I with examples."""
    from tuilora.advisor.render import categories_table, print_renderable

    print_renderable(categories_table())
    return 0


@cli.group()
def dataset() -> None:
    """Check a dataset folder before training."""


@dataset.command("check")
@click.argument("directory")
@click.option("--resolution", default="512", show_default=True, help="training resolution")
@click.option(
    "--subject",
    default="character",
    show_default=True,
    help="character | style | concept | vehicle (image-count advice)",
)
@click.option("--format", "fmt", default="table", show_default=True, help="table | json")
@click.option("--caption-extension", default=".txt", show_default=True)
@click.option("--keep-tokens", default="1", show_default=True, help="leading tags kept in place")
@click.option("--reg", "reg_dir", default=None, metavar="DIR", help="regularization folder")
@click.option("--min-bucket-reso", default=None, help="smallest bucket side")
@click.option("--max-bucket-reso", default=None, help="largest bucket side")
@click.option("--bucket-no-upscale", is_flag=True, help="as sd-scripts' bucket_no_upscale")
@click.option("--no-near-duplicates", is_flag=True, help="skip the pixel-level duplicate check")
@click.option("--no-cache", is_flag=True, help="probe every image again (ignore the cache)")
def dataset_check(directory: str, **options: Any) -> int:
    """Audit DIR (<repeats>_<name>/ folders): layout, captions, images, buckets, tags.

    Exit 0 without errors, 1 when the dataset has errors, 2 for a bad argument.
    """
    from tuilora.dataset.check import run_check

    subject = str(options["subject"]).lower()
    if subject not in ("character", "style", "concept", "vehicle"):
        raise UserError(f"--subject {subject!r} is not one of: character, style, concept, vehicle")
    return run_check(
        directory,
        resolution=_int_option("--resolution", options["resolution"], 64),
        subject=subject,
        fmt=str(options["fmt"]),
        caption_extension=str(options["caption_extension"]),
        keep_tokens=_int_option("--keep-tokens", options["keep_tokens"], 0),
        reg_dir=options["reg_dir"],
        min_bucket_reso=_optional_int("--min-bucket-reso", options["min_bucket_reso"]),
        max_bucket_reso=_optional_int("--max-bucket-reso", options["max_bucket_reso"]),
        bucket_no_upscale=bool(options["bucket_no_upscale"]),
        near_duplicates=not options["no_near_duplicates"],
        use_cache=not options["no_cache"],
    )


def _int_option(flag: str, text: Any, minimum: int) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise UserError(f"{flag} must be a whole number, got {text!r}") from None
    if value < minimum:
        raise UserError(f"{flag} must be at least {minimum}, got {value}")
    return value


def _optional_int(flag: str, text: Any) -> int | None:
    return None if text is None else _int_option(flag, text, 16)


@cli.command()
@click.argument("config", required=False)
@click.option("--resume", default=None, metavar="RUN", help="continue a stopped run exactly")
@click.option("--detach", is_flag=True, help="train in the background, immune to SSH drops")
@click.option(
    "--force", is_flag=True, help="overwrite an existing run / train despite dataset errors"
)
@click.option("--allow-pickle", is_flag=True, help="allow a .ckpt (pickle) base model")
@click.option("--v-parameterization", is_flag=True, help="force v-prediction (SD2 768-v)")
@click.option("--no-progress", is_flag=True, help="no progress bar (events are still written)")
@click.option("--processes", default="1", metavar="N", help="data-parallel processes (GPUs)")
def train(
    config: str | None,
    resume: str | None,
    detach: bool,
    force: bool,
    allow_pickle: bool,
    v_parameterization: bool,
    no_progress: bool,
    processes: str,
) -> int:
    """Train a LoRA from a tuilora or sd-scripts TOML config."""
    count = _int_option("--processes", processes, 1)
    if detach:
        from tuilora.runs.detach import start_detached

        return start_detached(
            config,
            resume=resume,
            force=force,
            allow_pickle=allow_pickle,
            v_parameterization=v_parameterization,
            processes=count,
        )
    if count > 1:
        import os

        from tuilora.engine.train import run_processes
        from tuilora.runs.preflight import DATASET_CHECKED, check_training

        # Every check before the N processes start (rank 0 repeats the dataset's as a phase).
        check_training(
            config,
            resume=resume,
            force=force,
            allow_pickle=allow_pickle,
            v_parameterization=v_parameterization,
        )
        os.environ[DATASET_CHECKED] = "1"
        args = [a for a in [config] if a]
        args += ["--resume", resume] if resume else []
        args += ["--force"] * force + ["--allow-pickle"] * allow_pickle
        args += ["--v-parameterization"] * v_parameterization + ["--no-progress"] * no_progress
        return run_processes(args, count)
    from tuilora.engine.train import run_training

    return run_training(
        config,
        resume=resume,
        force=force,
        allow_pickle=allow_pickle,
        v_parameterization=v_parameterization,
        progress=not no_progress,
        debug=bool(click.get_current_context().find_root().obj.get("debug")),
    )


@cli.command()
@click.option("--out", default=None, metavar="DIR", help="keep everything in DIR")
@click.option("--force", is_flag=True, help="reuse an --out folder that holds a demo run")
@click.option("--no-tui", is_flag=True, help="a progress bar instead of the live monitor")
@click.option("--no-progress", is_flag=True, help="no progress bar either (scripts, CI)")
def demo(out: str | None, force: bool, no_tui: bool, no_progress: bool) -> int:
    """Build a tiny model and dataset, get advice, train, and prove the LoRA loads."""
    from tuilora.engine.demo import run_demo

    tui = not (no_tui or no_progress) and sys.stdin.isatty() and sys.stdout.isatty()
    trainer = None
    if tui:
        from tuilora.screens.monitor_app import follow_training

        trainer = follow_training
    return run_demo(out, force=force, progress=not no_progress, trainer=trainer)


@cli.command()
@click.argument("run", required=False)
@click.option("--config", default=None, metavar="FILE", help="a tuilora or sd-scripts TOML")
@click.option("--lora", default=None, metavar="FILE", help="read ss_* metadata from a LoRA")
@click.option("--strength", default=None, help="ok | lower | higher | invisible (G-TEST-STRENGTH)")
@click.option("--unet", default=None, help="the Unet strength that looked right (G-TEST-UNETTE)")
@click.option("--te", default=None, help="the TE strength that looked right")
@click.option("--noise", is_flag=True, help="the output is pure noise")
@click.option("--object", default=None, metavar="TEXT", help="a persistent unwanted element")
@click.option("--overfit-from-start", is_flag=True, help="overfit from the first snapshot")
@click.option("--one-checkpoint", is_flag=True, help="works on one checkpoint only")
@click.option("--epoch", default=None, help="the snapshot (epoch) that looked best")
@click.option("--format", "fmt", default="table", help="table | json")
@click.option("--write", default=None, metavar="FILE", help="write the next run's config")
@click.option("--force", is_flag=True, help="overwrite --write if it exists")
def diagnose(**options: Any) -> int:
    """The overfitting checklist: findings, the snapshot to prefer, the next config."""
    from tuilora.advisor import cli_diagnose

    return cli_diagnose.run(options, argv=sys.argv[1:])


@cli.command()
@click.argument("root", required=False, default=None)
@click.option("--history", is_flag=True, help="the chain of runs diagnose produced, with diffs")
@click.option("--format", "fmt", default="table", help="table | json")
def runs(root: str | None, history: bool, fmt: str) -> int:
    """List runs under ROOT (default: runs/ and recent runs started anywhere)."""
    if history:
        from tuilora.advisor import cli_diagnose

        return cli_diagnose.history_run({"root": root or "runs"})
    from tuilora.runs.listing import print_runs

    return print_runs(root, fmt)


@cli.command()
@click.argument("run", required=False)
@click.option("--plain", is_flag=True, help="print lines instead of the live monitor")
@click.option("--every", default=None, metavar="N", help="with --plain: one line per N steps")
@click.option(
    "--root", default=None, help="look for the newest run here (default: runs/ and recent runs)"
)
def watch(run: str | None, plain: bool, every: str | None, root: str | None) -> int:
    """Follow a live or finished run (default: the newest); reattaches after SSH drops."""
    from tuilora.runs.watch import resolve_run, watch_plain

    folder = resolve_run(run, root)
    step_every = _int_option("--every", every, 1) if every is not None else None
    if plain or not sys.stdout.isatty():
        return watch_plain(folder, every=step_every)
    from tuilora.screens.monitor_app import run_monitor

    return run_monitor(folder)


@cli.command()
@click.argument("run")
@click.option("--wait", default="120", show_default=True, help="seconds to wait for the save")
def stop(run: str, wait: str) -> int:
    """Stop a running training gracefully: it saves its state and LoRA, then exits."""
    from tuilora.runs.watch import resolve_run, stop_run

    return stop_run(resolve_run(run), wait_s=float(_int_option("--wait", wait, 1)))


@cli.command()
@click.argument("run")
@click.option("--grid", default="both", show_default=True, help="epoch-strength | unet-te | both")
@click.option(
    "--prompt",
    default=None,
    metavar="TEXT",
    help='sd-scripts syntax, e.g. "mychar, park --n lowres --s 24" (default: the run\'s first'
    " sample prompt, else the first caption)",
)
@click.option("--seed", default=None, help="one seed for every cell (default: --d, else 0)")
@click.option("--steps", default=None, help="sampling steps (default: --s, else 30)")
@click.option("--sampler", default=None, help="sd-scripts sampler name (default: the run's)")
@click.option("--strengths", default=None, help="epoch-strength columns (default 0.5,0.75,1.0)")
@click.option("--unet-strengths", default=None, help="unet-te columns (default 0,0.5,1,1.5)")
@click.option("--te-strengths", default=None, help="unet-te rows (default 0,0.5,1,1.5)")
@click.option(
    "--snapshot", default=None, metavar="FILE", help="LoRA for unet-te (default: the final)"
)
@click.option("--model", default=None, metavar="PATH", help="the base model, if it moved")
@click.option("--allow-pickle", is_flag=True, help="allow a .ckpt base model")
@click.option("--no-show", is_flag=True, help="only print the grids' paths")
def sample(**options: Any) -> int:
    """XY grids of a run: epoch x strength and Unet x TE strength (G-TEST)."""
    from tuilora.engine.cli_sample import run_sample

    return run_sample(options)


@cli.group()
def tools() -> None:
    """LoRA tools: inspect, extract, merge, resize (offline; safetensors in and out)."""


_PRECISION = click.Choice(["float", "fp16", "bf16"])
_FORMAT = click.Choice(["table", "json"])
_RANK = click.IntRange(min=1)
_QUANTILE = click.FloatRange(0, 1, min_open=True)


@tools.command("inspect")
@click.argument("file")
@click.option("--model", default=None, metavar="PATH", help="does the LoRA fit this model?")
@click.option("--format", "fmt", type=_FORMAT, default="table", show_default=True)
def tools_inspect(file: str, model: str | None, fmt: str) -> int:
    """What a LoRA file is: type, rank, alpha, base, training, tags, norms, hash.

    With --model (a .safetensors checkpoint or a diffusers folder): exit 1 unless every
    module finds its weight there with the right shape.
    """
    from tuilora.lorafile.cli_inspect import run_inspect

    return run_inspect(file, model=model, fmt=fmt)


@tools.command("extract")
@click.option("--base", required=True, metavar="MODEL", help="the original model (model_org)")
@click.option("--tuned", required=True, metavar="MODEL", help="the fine-tuned model")
@click.option("--out", required=True, metavar="FILE", help="the LoRA to write (save_to)")
@click.option("--dim", type=_RANK, default=4, show_default=True, help="rank of the LoRA")
@click.option("--conv-dim", type=_RANK, default=None, help="rank for 3x3 convs (C3Lier)")
@click.option(
    "--clamp-quantile", type=_QUANTILE, default=0.99, show_default=True, help="1 turns it off"
)
@click.option(
    "--min-diff",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="text encoders differing less are left out",
)
@click.option("--save-precision", type=_PRECISION, default=None, help="default: float")
@click.option("--device", default="cpu", show_default=True, help="where the SVDs run (cuda)")
@click.option("--allow-pickle", is_flag=True, help="allow .ckpt models")
@click.option("--force", is_flag=True, help="overwrite --out")
@click.option("--verbose", is_flag=True, help="the kept energy of every module")
@click.option("--format", "fmt", type=_FORMAT, default="table", show_default=True)
def tools_extract(**options: Any) -> int:
    """A LoRA from the difference between a base and a tuned model (SVD per layer)."""
    from tuilora.engine.tools.cli import run_extract

    return run_extract(options)


@tools.command("merge")
@click.option("--lora", multiple=True, required=True, metavar="FILE[:RATIO]", help="repeatable")
@click.option("--out", required=True, metavar="PATH", help="the model or LoRA to write")
@click.option("--base", default=None, metavar="MODEL", help="merge into this checkpoint")
@click.option("--dim", type=_RANK, default=None, help="LoRA+LoRA: SVD to this rank")
@click.option("--conv-dim", type=_RANK, default=None, help="LoRA+LoRA: rank for 3x3 convs")
@click.option("--clamp-quantile", type=_QUANTILE, default=0.99, show_default=True)
@click.option("--save-precision", type=_PRECISION, default=None, help="default: as stored")
@click.option("--device", default="cpu", show_default=True, help="where the SVDs run (cuda)")
@click.option("--allow-pickle", is_flag=True, help="allow a .ckpt base model")
@click.option("--force", is_flag=True, help="overwrite --out")
@click.option("--verbose", is_flag=True, help="the kept energy of every module")
@click.option("--format", "fmt", type=_FORMAT, default="table", show_default=True)
def tools_merge(**options: Any) -> int:
    """LoRAs into a checkpoint (--base, written in its own format) or into one LoRA.

    Without --base the LoRAs' ranks are concatenated (exact), or with --dim re-ranked by SVD.
    """
    from tuilora.engine.tools.cli import run_merge

    return run_merge(options)


@tools.command("resize")
@click.argument("file")
@click.option("--dim", type=_RANK, required=True, help="the new rank (new_rank)")
@click.option("--conv-dim", type=_RANK, default=None, help="for 3x3 convs (default: --dim)")
@click.option("--out", required=True, metavar="FILE", help="the LoRA to write (save_to)")
@click.option("--save-precision", type=_PRECISION, default=None, help="default: float")
@click.option("--device", default="cpu", show_default=True, help="where the SVDs run (cuda)")
@click.option("--force", is_flag=True, help="overwrite --out")
@click.option("--verbose", is_flag=True, help="the kept energy of every module")
@click.option("--format", "fmt", type=_FORMAT, default="table", show_default=True)
def tools_resize(file: str, **options: Any) -> int:
    """Lower a LoRA's rank by SVD, keeping its strength; reports the kept energy."""
    from tuilora.engine.tools.cli import run_resize

    return run_resize({"file": file, **options})


def split_debug(args: Sequence[str]) -> tuple[bool, list[str]]:
    """``--debug`` may stand anywhere on the line (before a ``--``); it is the group's flag."""
    cut = list(args).index("--") if "--" in args else len(args)
    head = [a for a in args[:cut] if a != "--debug"]
    return len(head) < cut, [*head, *args[cut:]]


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: exit 0 ok, 1 failure during work, 2 user error (one line; with
    ``--debug`` the traceback first, and the same exit code)."""
    debug, args = split_debug(list(sys.argv[1:] if argv is None else argv))
    if debug:
        args = ["--debug", *args]
    try:
        result = cli.main(args=args, prog_name="tuilora", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc), debug)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "tuilora"
        _fail(f"{exc.format_message()} (see `{where} --help`)", debug)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - defensive, loaders wrap it
        _fail(f"invalid TOML: {exc}", debug)
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, debug: bool = False) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    click.echo(f"tuilora: error: {message}", err=True)
    sys.exit(UserError.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
