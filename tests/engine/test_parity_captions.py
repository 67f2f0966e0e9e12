"""Captions as sd-scripts' ``BaseDataset.process_caption`` (library/train_util.py) makes them.

Each test states sd-scripts' behaviour and checks tuilora's ``process_caption`` against it.
"""

from __future__ import annotations

import random
from typing import Any

from tuilora.config import TrainingConfig
from tuilora.engine.captions import CaptionStep, process_caption

CAPTION = "tuidemo, red circle, blue sky, grass"


def caption(
    text: str = CAPTION, *, epoch: int = 1, step: int = 0, seed: int = 0, **options: Any
) -> str:
    config = TrainingConfig.from_dict(options)
    return process_caption(text, config, random.Random(seed), CaptionStep(epoch, step, 100))


def test_caption_dropout_every_n_epochs_counts_epochs_from_1() -> None:
    # sd-scripts sets current_epoch = epoch + 1 and drops when current_epoch % N == 0:
    # with N = 2 epochs 2 and 4 train without captions, epochs 1 and 3 with them.
    kept = [bool(caption(epoch=e, caption_dropout_every_n_epochs=2)) for e in (1, 2, 3, 4)]
    assert kept == [True, False, True, False]
    assert caption(epoch=1, caption_dropout_every_n_epochs=1) == ""


def test_caption_prefix_and_suffix_wrap_the_caption() -> None:
    # sd-scripts: prefix + " " + caption + " " + suffix, before dropout and shuffling, so
    # the prefix is the first tag that keep_tokens keeps.
    assert caption(caption_prefix="style", caption_suffix="end") == f"style {CAPTION} end"
    shuffled = caption("a, b, c, d", caption_prefix="p,", shuffle_caption=True, keep_tokens=1)
    assert shuffled.startswith("p, ") and sorted(shuffled.split(", ")[1:]) == ["a", "b", "c", "d"]


def test_keep_tokens_separator_fixes_the_head_and_the_tail() -> None:
    # sd-scripts: tags before the separator stay first, tags after a second one stay last,
    # only the middle is shuffled; keep_tokens is not used then.
    text = "girl, red hair ||| smile, sky, tree, grass ||| masterpiece"
    for seed in range(5):
        out = caption(text, seed=seed, shuffle_caption=True, keep_tokens_separator="|||")
        tags = out.split(", ")
        assert tags[:2] == ["girl", "red hair"] and tags[-1] == "masterpiece"
        assert sorted(tags[2:-1]) == ["grass", "sky", "smile", "tree"]


def test_caption_separator_and_secondary_separator() -> None:
    # caption_separator splits tags; the secondary separator joins tags that move as one
    # and becomes the caption separator after shuffling (sd-scripts replaces it at the end).
    out = caption(
        "a;b$$c;d", seed=3, shuffle_caption=True, caption_separator=";", secondary_separator="$$"
    )
    assert "b;c" in out  # "b$$c" stayed one tag, then became "b;c"
    assert sorted(out.replace(";", ", ").split(", ")) == ["a", "b", "c", "d"]


def test_wildcards_and_multiline_captions() -> None:
    # Without enable_wildcard sd-scripts uses the first line; with it one random line and
    # one choice of each {a|b}; {{ and }} stay literal braces.
    text = "a {red|blue} car {{x}}\nsecond line"
    assert caption(text) == "a {red|blue} car {{x}}"
    seen = {caption(text, seed=seed, enable_wildcard=True) for seed in range(30)}
    assert seen == {"a red car {x}", "a blue car {x}", "second line"}


def test_token_warmup_grows_the_caption_with_the_step() -> None:
    # sd-scripts: before token_warmup_step, floor(step * (tags - min) / warmup) + min tags
    # (after the fixed ones); a fraction < 1 is a share of the run's steps (here 100).
    text = "k, a, b, c, d, e"
    options = {"token_warmup_min": 1, "token_warmup_step": 10.0, "keep_tokens": 1}
    counts = [len(caption(text, step=s, **options).split(", ")) for s in (0, 5, 9, 10)]
    assert counts == [2, 4, 5, 6]  # 1 kept + 1, 1 + floor(5*4/10)=3, 1 + 4, all
    fraction = caption(text, step=5, token_warmup_min=1, token_warmup_step=0.1, keep_tokens=1)
    assert len(fraction.split(", ")) == 4  # 0.1 of 100 steps = 10, as above


def test_tag_dropout_and_shuffle_keep_the_fixed_tags() -> None:
    # sd-scripts shuffles the free tags, then drops each with caption_tag_dropout_rate;
    # keep_tokens leading tags are never shuffled or dropped.
    text = "trigger, " + ", ".join(f"t{i}" for i in range(40))
    out = caption(text, seed=1, shuffle_caption=True, keep_tokens=1, caption_tag_dropout_rate=0.5)
    tags = out.split(", ")
    assert tags[0] == "trigger" and 5 < len(tags) - 1 < 35
    assert tags[1:] != sorted(tags[1:], key=lambda t: int(t[1:]))  # shuffled
    assert caption(text, seed=1, caption_dropout_rate=1.0) == ""
