"""The sd-scripts exports use sd-scripts' own argument types (DESIGN §3, §11)."""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import shlex
import tomllib
from typing import Any

import pytest

from tuilora.advisor.answers import Answers
from tuilora.advisor.export import render_text
from tuilora.advisor.recommend import CONFIG_KEYS, recommend
from tuilora.config import config_from_toml_dict
from tuilora.kohya_options import KOHYA_CHOICES, KOHYA_OPTIONS

MATRIX = [
    Answers(
        subject=subject,
        category="D" if subject == "character" else None,
        base=base,
        optimizer=optimizer,
        network=network,
        images=40,
        vram=vram,
    )
    for subject, base, optimizer, network, vram in itertools.product(
        ("character", "style"),
        ("sd15", "nai", "sdxl"),
        ("auto", "adamw8bit", "adafactor", "dadaptadam"),
        ("lora", "locon", "lokr"),
        (6.0, 24.0),
    )
]


def _parser() -> argparse.ArgumentParser:
    """An argparse parser with sd-scripts' argument kinds, as train_network.py builds it."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    kinds: dict[str, Any] = {"int": int, "float": float, "str": str, "int_or_float": str}
    for key, kind in KOHYA_OPTIONS.items():
        if kind == "flag":
            parser.add_argument(f"--{key}", action="store_true")
        elif kind in ("strs", "floats"):
            parser.add_argument(f"--{key}", nargs="*", type=float if kind == "floats" else str)
        else:
            parser.add_argument(f"--{key}", type=kinds[kind])
    return parser


def _check_kohya_types(values: dict[str, Any]) -> None:
    for key, value in values.items():
        kind = KOHYA_OPTIONS[key]  # KeyError: a key sd-scripts would silently ignore
        if kind == "flag":
            assert isinstance(value, bool), key
        else:
            assert not isinstance(value, bool), f"{key}: a boolean for a non-flag option"
        if kind == "int":
            assert isinstance(value, int), key
        if kind in ("float", "floats"):
            assert isinstance(value, float), key
        if kind == "strs":
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), key
        if key in KOHYA_CHOICES:
            assert value in KOHYA_CHOICES[key], key
    assert isinstance(values["resolution"], str)
    width, height = (int(v) for v in values["resolution"].split(","))
    assert width == height
    for entry in values.get("optimizer_args", []) + values.get("network_args", []):
        name, value = entry.split("=", 1)
        assert name.strip() == name and "=" not in value
    for entry in values.get("optimizer_args", []):
        ast.literal_eval(entry.split("=", 1)[1])  # sd-scripts reads the values like this


@pytest.mark.parametrize(
    "answers", MATRIX, ids=lambda a: f"{a.subject}-{a.base}-{a.optimizer}-{a.network}-{a.vram:g}"
)
def test_kohya_toml_and_cmd_agree_and_use_sd_scripts_types(answers: Answers) -> None:
    rec = recommend(answers)
    toml_text = render_text(rec, "kohya-toml", "header")
    values = tomllib.loads(toml_text)
    _check_kohya_types(values)
    script = "sdxl_train_network.py" if answers.base == "sdxl" else "train_network.py"
    assert script in toml_text
    if answers.base == "sdxl":
        assert "clip_skip" not in values
    # The command line parses with sd-scripts' argument kinds into the same values.
    words = shlex.split(render_text(rec, "kohya-cmd"), comments=True)
    assert words[:5] == ["accelerate", "launch", "--num_cpu_threads_per_process", "8", script]
    parsed = vars(_parser().parse_args(words[5:]))
    for key, value in values.items():
        got = parsed[key]
        if KOHYA_OPTIONS[key] == "floats":
            got = got[0]
        if KOHYA_OPTIONS[key] == "int_or_float":
            got = ast.literal_eval(got)
        assert got == value, key
    # tuilora itself reads the sd-scripts file back into the same config.
    loaded = config_from_toml_dict(values, source="kohya").config
    for key in rec.config:
        if key == "max_token_length":
            continue
        assert getattr(loaded, key) == pytest.approx(rec.config[key]) or key == "resolution"


def test_json_is_the_contract() -> None:
    rec = recommend(Answers(category="C", images=40, vram=12))
    data = json.loads(render_text(rec, "json"))
    assert list(data) == ["config", "plan", "reasons", "warnings"]
    assert set(data["config"]) <= set(CONFIG_KEYS)
    assert "scale_weight_norms" not in data["config"]  # omitted when unset
    assert set(data["plan"]) == {
        "network_type",
        "regularization",
        "repeats",
        "images",
        "batch_size",
        "steps_per_epoch",
        "epochs",
        "total_steps",
        "file_size_mb",
        "vram_gb",
        "processes",
    }
    for reasons in data["reasons"].values():
        for reason in reasons:
            assert set(reason) == {"rule", "guide", "text"}
            assert reason["guide"]
    for warning in data["warnings"]:
        assert set(warning) == {"id", "severity", "guide", "message"}
    # every decided config key carries at least one reason
    assert set(data["config"]) <= set(data["reasons"])


def test_tuilora_toml_reads_back_identically() -> None:
    rec = recommend(Answers(subject="style", images=5000, vram=24, base="nai"))
    text = render_text(rec, "toml", "made by a test")
    assert text.startswith("# made by a test")
    loaded = config_from_toml_dict(tomllib.loads(text), source="t")
    assert not loaded.kohya
    assert loaded.config == rec.training_config()
