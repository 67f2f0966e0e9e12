"""Sample prompts for the wizard: suggestions after the guide's test advice, and the file.

The guide (G-TEST) says first impressions mislead: test with varied prompts, poses, outfits
and expressions, and keep a list of test prompts. The suggestions therefore vary the pose,
framing, outfit and scene around the subject's trigger tags, and all use one seed
(``--d 420``, the guide's seed) so the same prompt can be compared from epoch to epoch.
The file is sd-scripts' ``.txt`` prompt syntax; it is checked with the same parser the
trainer uses before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tuilora.runs.prompts import parse_prompt_text

#: Variations per subject: pose / framing / outfit / scene, as the guide asks (G-TEST).
VARIATIONS: Final = {
    "character": (
        "standing, full body, simple background",
        "portrait, smiling, looking at viewer",
        "sitting, different outfit, outdoors",
        "from side, angry, night, city street",
    ),
    "style": (
        "a landscape with a river and mountains",
        "portrait of an old man",
        "a city street at night, rain",
        "still life, fruit on a table",
    ),
    "concept": (
        "1girl, standing, full body",
        "1boy, sitting, indoors",
        "1girl, from behind, outdoors",
        "close-up, simple background",
    ),
    "vehicle": (
        "side view, on a road, daytime",
        "front view, night, city street",
        "from above, parked, rain",
        "in motion, motion blur, countryside",
    ),
}
SEED: Final = 420
NEGATIVE: Final = "lowres, blurry"
#: Shown on the samples step and written on top of the prompt file.
ADVICE: Final = (
    "One prompt per line (sd-scripts syntax: --n negative, --w/--h size, --s steps,"
    " --l CFG, --d seed). First impressions mislead: vary poses, outfits, expressions and"
    " scenes, and keep these prompts as your test list (G-TEST). One seed for all keeps"
    " epochs comparable. Empty: no samples during training."
)


def default_prompts(subject: str, subject_tags: str, resolution: int) -> list[str]:
    """Four varied test prompts around ``subject_tags`` (the dataset's trigger tags)."""
    lead = subject_tags.strip().strip(",").strip()
    options = f" --n {NEGATIVE} --w {resolution} --h {resolution} --d {SEED}"
    prompts = []
    for variation in VARIATIONS.get(subject, VARIATIONS["character"]):
        prompt = f"{lead}, {variation}" if lead else variation
        prompts.append(prompt + options)
    return prompts


def prompt_lines(text: str) -> list[str]:
    """The prompts of the text box: non-blank lines, comments left out."""
    return [line.strip() for line in text.splitlines() if line.strip() and not _comment(line)]


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def check_prompts(lines: Sequence[str]) -> None:
    """UserError naming the line when sd-scripts' syntax does not read (as the trainer)."""
    parse_prompt_text("\n".join(lines), "sample prompts")


#: On top of a written prompt file (what the wizard's step says, less its own controls).
FILE_HEADER: Final = (
    "# Sample prompts, one per line (sd-scripts syntax: --n negative, --w/--h size, --s"
    " steps,\n# --l CFG, --d seed). First impressions mislead: vary poses, outfits,"
    " expressions and\n# scenes, and keep these prompts as your test list (G-TEST). One"
    " seed keeps epochs comparable.\n"
)


def prompt_file_text(lines: Sequence[str]) -> str:
    return FILE_HEADER + "\n".join(lines) + "\n"
