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

    Run `tuilora advise --help` for numbers from the command line.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
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


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: exit 0 ok, 1 failure during work, 2 user error (one line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="tuilora", standalone_mode=False)
    except UserError as exc:
        if debug:
            raise
        _fail(str(exc))
    except click.UsageError as exc:
        if debug:
            raise
        where = exc.ctx.command_path if exc.ctx else "tuilora"
        _fail(f"{exc.format_message()} (see `{where} --help`)")
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - defensive, loaders wrap it
        _fail(f"invalid TOML: {exc}")
    sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str) -> None:
    click.echo(f"tuilora: error: {message}", err=True)
    sys.exit(UserError.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
