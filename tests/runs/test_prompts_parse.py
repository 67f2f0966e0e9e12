"""Sample prompt files in sd-scripts' syntax: lines, options, comments, json/toml, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuilora.errors import UserError
from tuilora.runs.prompts import (
    SamplePrompt,
    load_prompts,
    parse_prompt_line,
    parse_prompt_text,
    round_size,
)


def test_a_line_with_every_option() -> None:
    line = (
        "tuidemo, red circle, masterpiece --n lowres, bad hands --w 512 --h 768 --s 28 --l 7 --d 42"
    )
    prompt = parse_prompt_line(line, origin="p.txt:3", index=2)
    assert prompt == SamplePrompt(
        prompt="tuidemo, red circle, masterpiece",
        negative="lowres, bad hands",
        width=512,
        height=768,
        steps=28,
        scale=7.0,
        seed=42,
        index=2,
        origin="p.txt:3",
    )


def test_options_are_case_insensitive_and_unset_values_stay_none() -> None:
    prompt = parse_prompt_line("a cat --D 5 --SS euler_a --L 5.5")
    assert (prompt.seed, prompt.sampler, prompt.scale) == (5, "euler_a", 5.5)
    assert prompt.negative is None and prompt.width is None and prompt.steps is None


def test_file_skips_blank_and_comment_lines_and_numbers_the_rest() -> None:
    text = "# sample prompts\n\nfirst --d 1\n   # indented comment\nsecond --s 4\n"
    prompts = parse_prompt_text(text, "p.txt")
    assert [(p.prompt, p.index, p.origin) for p in prompts] == [
        ("first", 0, "p.txt:3"),
        ("second", 1, "p.txt:5"),
    ]


def test_sizes_round_down_to_eight_and_default_to_the_training_resolution() -> None:
    assert parse_prompt_line("x --w 100 --h 30").size(512, 512) == (96, 64)
    assert parse_prompt_line("x").size(1024, 768) == (1024, 768)
    assert round_size(63) == 64 and round_size(520) == 520


def test_options_for_other_families_are_kept_as_ignored() -> None:
    prompt = parse_prompt_line("x --g 3.5 --fs 3")
    assert prompt.ignored == ("--g", "--fs")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x --w big", r"p\.txt:7: --w 'big' must be a whole number"),
        ("x --s 0", r"--s 0 must be at least 1"),
        ("x --s 5000", r"at most 1000 steps"),
        ("x --l -1", r"--l '-1' must be a number of 0 or more"),
        ("x --ar 16:9", r"unknown option --ar"),
        ("x --nn blurry", r"unknown option --nn \(did you mean --n\?\)"),
        ("x --ss magic", r"--ss 'magic' is not a sampler"),
        ("x --n", r"--n needs a value"),
        ("--n blurry", r"no prompt before the options"),
    ],
)
def test_mistakes_name_the_file_and_line(line: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_prompt_line(line, origin="p.txt:7")


def test_load_prompts_reads_text_json_and_toml(tmp_path: Path) -> None:
    text = tmp_path / "p.txt"
    text.write_text("a cat --d 3\n", encoding="utf-8")
    assert load_prompts(text)[0].seed == 3
    as_json = tmp_path / "p.json"
    as_json.write_text(
        '["a dog --s 5", {"prompt": "a bird", "negative_prompt": "blurry", "seed": 9}]',
        encoding="utf-8",
    )
    dog, bird = load_prompts(as_json)
    assert dog.steps == 5 and (bird.prompt, bird.negative, bird.seed, bird.index) == (
        "a bird",
        "blurry",
        9,
        1,
    )
    as_toml = tmp_path / "p.toml"
    as_toml.write_text(
        '[prompt]\nwidth = 320\nsample_steps = 12\n\n[[prompt.subset]]\nprompt = "one"\n\n'
        '[[prompt.subset]]\nprompt = "two"\nwidth = 256\n',
        encoding="utf-8",
    )
    one, two = load_prompts(as_toml)
    assert (one.width, one.steps, two.width, two.steps) == (320, 12, 256, 12)


def test_load_prompts_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"sample_prompts .*missing\.txt: no such file"):
        load_prompts(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(UserError, match="no prompts in the file"):
        load_prompts(empty)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"prompt": "x", "widht": 5}]', encoding="utf-8")
    with pytest.raises(
        UserError, match=r"bad\.json\[#1\]: unknown key 'widht' \(did you mean width\?\)"
    ):
        load_prompts(bad)
