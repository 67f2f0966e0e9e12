"""Fixed fields (``--set``, the wizard's review edits) are checked before any rule runs: a
bad type or range is one UserError naming the field, never a rule's traceback; a good value
is kept in its normal form and every rule after it counts with it."""

from __future__ import annotations

import pytest

from tuilora.advisor.answers import Answers
from tuilora.advisor.recommend import recommend
from tuilora.errors import UserError

ANSWERS = Answers(category="C", images=40, vram=12.0, optimizer="adamw8bit")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("network_dim", "abc", "network_dim must be a whole number"),
        ("resolution", "abc", "resolution 'abc' is not a resolution"),
        ("unet_lr", "abc", "unet_lr must be a number"),
        ("train_batch_size", 0, "train_batch_size 0 is out of range"),
        ("max_train_epochs", 2.5, "max_train_epochs must be a whole number"),
        ("flip_aug", "yes", "flip_aug must be true or false"),
    ],
)
def test_a_bad_pin_is_one_error_naming_the_field(key: str, value: object, words: str) -> None:
    with pytest.raises(UserError) as raised:
        recommend(ANSWERS, overrides={key: value})
    message = str(raised.value)
    assert words in message and "\n" not in message
    assert "--" not in message  # the wizard shows it too: no flag syntax


def test_a_good_pin_is_normalized_and_counted_with() -> None:
    rec = recommend(ANSWERS, overrides={"resolution": "512,512", "train_batch_size": 4})
    assert rec.config["resolution"] == 512
    assert rec.plan["steps_per_epoch"] == 10 and rec.config["unet_lr"] == pytest.approx(4e-4)
    assert rec.reasons["train_batch_size"][0].text == "You set train_batch_size = 4."


def test_answers_the_subject_is_not_asked_contradict_it() -> None:
    with pytest.raises(UserError, match="--male applies to --subject character only"):
        Answers(subject="style", images=500, male=True).validate()
