"""The words of the advice: built from the decided values, in plain English, without flags.

A sweep over many answers checks what no single rule case can: that the reason which
decided a number names that number (so it can never name another), that counts agree with
their nouns ("1 image", "an 8 GB card"), and that no reason or warning tells the user to
type a flag (the wizard shows the same texts, issue 16).
"""

from __future__ import annotations

import itertools
import re

import pytest

from tuilora.advisor.answers import Answers
from tuilora.advisor.recommend import Recommendation, recommend
from tuilora.advisor.rules import article
from tuilora.errors import UserError

#: Fields whose deciding reason must say the decided value.
NAMED_VALUES = (
    "network_dim",
    "network_alpha",
    "train_batch_size",
    "unet_lr",
    "text_encoder_lr",
    "max_train_epochs",
    "save_every_n_epochs",
    "min_snr_gamma",
    "resolution",
    "clip_skip",
    "seed",
    "max_token_length",
)

_BAD_ENGLISH = (
    (re.compile(r"\(s\)"), "an '(s)' plural"),
    (
        re.compile(r"(?<![\d.])1 (images|epochs|repeats|steps|warnings|views|batches|buckets)\b"),
        "'1' with a plural",
    ),
    (re.compile(r"\ba (8|11|18|8\d)\b"), "'a' before a number read with a vowel"),
    (re.compile(r"\ban (?!8|11|18)\d"), "'an' before a number read with a consonant"),
    (re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)-\1(?!\.?\d)"), "a range from a number to itself"),
    (re.compile(r"(?<![\w-])--[a-z]"), "flag syntax"),
)


def _scenarios() -> list[Answers]:
    out = []
    grid = itertools.product(
        ("character", "style", "concept", "vehicle"),
        ("sd15", "nai", "sdxl"),
        ("auto", "adamw8bit", "lion", "dadaptadam", "adafactor"),
        ("auto", "lokr", "ia3"),
        (4.0, 8.0, 12.0, 24.0),
    )
    for number, (subject, base, optimizer, network, vram) in enumerate(grid):
        images = (1, 8, 40, 150, 3000, 100000)[number % 6]
        quality = ("good", "bad")[number % 2]
        values = {
            "subject": subject,
            "base": base,
            "optimizer": optimizer,
            "network": network,
            "vram": vram,
            "images": images,
            "quality": quality,
        }
        if subject == "character":
            values["category"] = "ABCDEFGHI"[number % 9]
            values["male"] = number % 3 == 0
        if subject == "vehicle":
            values["realistic"] = number % 2 == 0
        out.append(Answers.from_dict(values))
    return out


SCENARIOS = _scenarios()


def _advice(answers: Answers) -> Recommendation | None:
    try:
        return recommend(answers)
    except UserError:
        return None


def _texts(rec: Recommendation) -> list[str]:
    texts = [reason.text for reasons in rec.reasons.values() for reason in reasons]
    return texts + [warning.message for warning in rec.warnings]


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("number", range(0, len(SCENARIOS), 40))
def test_reasons_name_the_decided_values(number: int) -> None:
    for answers in SCENARIOS[number : number + 40]:
        rec = _advice(answers)
        assert rec is not None
        for key in NAMED_VALUES:
            if key not in rec.config or key not in rec.reasons:
                continue
            decided = rec.reasons[key][-1]
            value = _shown(rec.config[key])
            assert re.search(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)", decided.text), (
                f"{answers}: {key} = {value} but its reason ({decided.rule}) says: {decided.text}"
            )


@pytest.mark.parametrize("number", range(0, len(SCENARIOS), 40))
def test_plain_english_and_no_flags(number: int) -> None:
    for answers in SCENARIOS[number : number + 40]:
        rec = _advice(answers)
        assert rec is not None
        for text in _texts(rec):
            for pattern, problem in _BAD_ENGLISH:
                assert not pattern.search(text), f"{problem} in: {text}"


def test_article_follows_the_spoken_number() -> None:
    assert [article(n) for n in (8, 11, 12, 18, 24, 80, 6.5, 8000, 11000, 100)] == [
        "an",
        "an",
        "a",
        "an",
        "a",
        "an",
        "a",
        "an",
        "an",
        "a",
    ]
