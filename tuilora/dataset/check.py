"""``tuilora dataset check DIR``: scan, print the report, return the exit code."""

from __future__ import annotations

from typing import Final

from rich.console import Console

from tuilora.dataset.progress import ProgressBar
from tuilora.dataset.render import render_report
from tuilora.dataset.report import exit_code, report_to_json
from tuilora.dataset.scan import scan_dataset
from tuilora.errors import UserError

FORMATS: Final = ("table", "json")


def run_check(
    path: str,
    *,
    resolution: int = 512,
    subject: str = "character",
    fmt: str = "table",
    caption_extension: str = ".txt",
    keep_tokens: int = 1,
    reg_dir: str | None = None,
    min_bucket_reso: int | None = None,
    max_bucket_reso: int | None = None,
    console: Console | None = None,
    near_duplicates: bool = True,
    bucket_no_upscale: bool = False,
    use_cache: bool = True,
) -> int:
    """Print the audit of ``path`` as a table or JSON; 0 without errors, 1 with errors.

    Raises ``UserError`` (exit 2) for a missing directory, a file given as the directory,
    an unknown format or another bad option. ``near_duplicates=False`` skips the one step
    that decodes pixels; ``use_cache=False`` ignores the probe cache (see docs/dataset.md,
    "Cost"). A scan longer than a second shows a progress bar on stderr when that is a
    terminal.
    """
    if fmt not in FORMATS:
        raise UserError(f"format '{fmt}' is not one of {', '.join(FORMATS)}")
    bar = ProgressBar()
    try:
        report = scan_dataset(
            path,
            resolution=resolution,
            subject=subject,
            caption_extension=caption_extension,
            keep_tokens=keep_tokens,
            reg_dir=reg_dir,
            min_bucket_reso=min_bucket_reso,
            max_bucket_reso=max_bucket_reso,
            bucket_no_upscale=bucket_no_upscale,
            near_duplicates=near_duplicates,
            progress=bar,
            use_cache=use_cache,
        )
    finally:
        bar.close()
    out = console if console is not None else Console()
    if fmt == "json":
        # out() writes the text as is: no wrapping, markup or highlighting to corrupt it
        out.out(report_to_json(report), highlight=False)
    else:
        render_report(report, out)
    return exit_code(report)
