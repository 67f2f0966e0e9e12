"""Every sd-scripts option is implemented, refused before training, or (only when it cannot
change the trained file) accepted with a notice; docs/sd-scripts-options.md is the table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomli_w

from tuilora.cli import main
from tuilora.config import config_field_names, load_toml
from tuilora.errors import UserError
from tuilora.kohya_options import ALIASES, LORA_NETWORK_ARGS, OPTIONS, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_table_is_generated_from_the_options() -> None:
    text = (ROOT / "docs" / "sd-scripts-options.md").read_text(encoding="utf-8")
    assert text == markdown(), (
        "regenerate: python -m tuilora.kohya_options > docs/sd-scripts-options.md"
    )
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(OPTIONS) + len(LORA_NETWORK_ARGS)


def test_implemented_options_are_config_fields_with_a_test_that_exists() -> None:
    fields = set(config_field_names())
    tests = [option.test for option in OPTIONS.values() if option.status == "implemented"]
    tests += list(LORA_NETWORK_ARGS.values())
    for name, option in OPTIONS.items():
        if option.status == "implemented":
            assert name in fields or name in ALIASES, name
        else:
            assert name not in fields and option.note, name
    for test in tests:
        file, _, function = test.partition("::")
        source = (ROOT / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {function}\(", source, re.M), test


@pytest.mark.parametrize("name", sorted(n for n, o in OPTIONS.items() if o.status == "refused"))
def test_refused_options_stop_with_one_line_naming_them(name: str, tmp_path: Path) -> None:
    option = OPTIONS[name]
    value = _asking_value(option.kind, option.default)
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps({name: value}), encoding="utf-8")
    with pytest.raises(UserError) as error:
        load_toml(path)
    message = str(error.value)
    assert name in message and option.note in message and "\n" not in message
    path.write_text(tomli_w.dumps({name: option.default}) if option.default is not None else "")
    load_toml(path)  # at sd-scripts' default it asks for nothing: accepted


def test_a_refused_option_exits_2_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('train_data_dir = "x"\ndeepspeed = true\n', encoding="utf-8")
    with pytest.raises(SystemExit) as code:
        main(["train", str(path)])
    assert code.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "deepspeed" in err and "gradient_checkpointing" in err


@pytest.mark.parametrize("name", sorted(n for n, o in OPTIONS.items() if o.status == "notice"))
def test_notice_options_are_accepted_and_reported_once(name: str, tmp_path: Path) -> None:
    option = OPTIONS[name]
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps({name: _asking_value(option.kind, option.default)}))
    loaded = load_toml(path)
    assert loaded.ignored == (name,)
    assert loaded.notices == (f"{name}: {option.note} (ignored)",)


def _asking_value(kind: str, default: object) -> object:
    """A value of the option's kind that differs from its default."""
    if kind == "flag":
        return True
    if kind in ("int", "int_or_float"):
        return 3 if default != 3 else 1
    if kind == "float":
        return 0.5 if default != 0.5 else 0.25
    if kind in ("strs", "floats"):
        return ["a=1"] if kind == "strs" else [0.5]
    return "something"
