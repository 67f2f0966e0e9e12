"""TOML fuzzing of TrainingConfig (issue 17, item 3): any TOML file is either a valid config
or one clean ``UserError`` naming the file, never another exception.

Three generators, each deterministic (``derandomize``) so CI sees the same cases every run:
random raw text, random tables of random keys (sd-scripts', tuilora's, aliases and unknown
ones) with values of every TOML type (huge and negative integers, nan/inf, control
characters, dates, nested arrays and tables, sections), and a valid config with a few
fields replaced by random values (which reaches the cross-field checks). A config that loads
must also survive what ``train`` does with it next: written back as TOML and read again to the
same config. The counts below are what docs/reliability.md (hostile inputs) reports.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
tomli_w = pytest.importorskip("tomli_w")

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tuilora.config import SECTIONS, TrainingConfig, load_toml, to_toml_dict  # noqa: E402
from tuilora.errors import UserError  # noqa: E402
from tuilora.kohya_options import ALIASES, OPTIONS  # noqa: E402

FIELDS = sorted(spec.name for spec in fields(TrainingConfig))
KEYS = sorted(set(FIELDS) | set(OPTIONS) | set(ALIASES))
#: More with TUILORA_FUZZ_EXAMPLES=5000 (a longer local hunt; CI runs the default).
EXAMPLES = int(os.environ.get("TUILORA_FUZZ_EXAMPLES", "400"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: (cases tried, configs accepted, files rejected with a UserError) per generator.
COUNTS: dict[str, list[int]] = {}

scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e-4, 64, 512, 1024, 2**31, "", "0", "512,512", "a=b"]),
    st.text(max_size=40),
    st.sampled_from(["AdamW", "Prodigy", "cosine", "networks.lora", "lycoris.kohya", "fp16"]),
    st.dates(),
    st.datetimes(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=8,
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=20))


def _writable(value: Any) -> bool:
    """tomli_w writes every TOML value (no None in TOML)."""
    return value is not None


def check_file(path: Path, kind: str) -> None:
    """The promise, for one file."""
    counts = COUNTS.setdefault(kind, [0, 0, 0])
    counts[0] += 1
    try:
        loaded = load_toml(path)
    except UserError as error:
        message = str(error)
        assert "\n" not in message, message
        assert message.startswith(str(path)) or str(path) in message, message
        counts[2] += 1
        return
    counts[1] += 1
    # What train does next: the run's config.toml is this config written back.
    again = path.with_suffix(".again.toml")
    again.write_text(tomli_w.dumps(to_toml_dict(loaded.config)), encoding="utf-8")
    reloaded = load_toml(again).config
    assert _same(reloaded.to_dict(), loaded.config.to_dict())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Any:
    yield
    for kind, (tried, accepted, rejected) in sorted(COUNTS.items()):
        print(f"\nfuzz {kind}: {tried} tried, {accepted} valid, {rejected} rejected")


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_file(path, "random text")


@FUZZ
@example(table={"text_encoder_lr": [[]]}, sections={})  # found: unhashable items (TypeError)
@example(table={"network_args": [["conv_dim=abc"]]}, sections={"network": {"x": {"y": []}}})
@given(
    table=st.dictionaries(keys, values.filter(_writable), max_size=8),
    sections=st.dictionaries(
        st.sampled_from(SECTIONS), st.dictionaries(keys, values, max_size=4), max_size=3
    ),
)
def test_random_tables(
    tmp_path: Path, table: dict[str, Any], sections: dict[str, dict[str, Any]]
) -> None:
    path = tmp_path / "tables.toml"
    path.write_text(tomli_w.dumps({**table, **sections}), encoding="utf-8")
    check_file(path, "random keys and types")


VALID = {
    "pretrained_model_name_or_path": "model.safetensors",
    "train_data_dir": "data",
    "output_dir": "out",
    "output_name": "x",
    "resolution": 512,
    "network_dim": 16,
    "network_alpha": 8.0,
    "optimizer_type": "AdamW",
    "learning_rate": 1e-4,
    "max_train_epochs": 10,
    "save_every_n_epochs": 1,
}


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), values.filter(_writable), max_size=3),
    ranged=st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(
            st.integers(min_value=-10, max_value=200_000),
            st.floats(min_value=-1.0, max_value=30.0),
            st.sampled_from(["", "1,1", "64,8192", "0,0", "x=1", "conv_dim=abc"]),
            st.lists(st.sampled_from(["conv_dim=abc", "a=b", "=", "dropout=2", "x"]), max_size=2),
        ),
        max_size=3,
    ),
)
def test_valid_config_with_random_fields(
    tmp_path: Path, changes: dict[str, Any], ranged: dict[str, Any]
) -> None:
    path = tmp_path / "mutated.toml"
    path.write_text(tomli_w.dumps({**VALID, **changes, **ranged}), encoding="utf-8")
    check_file(path, "valid config, fields replaced")


def test_the_valid_base_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "valid.toml"
    path.write_text(tomli_w.dumps(VALID), encoding="utf-8")
    assert load_toml(path).config.network_dim == 16


# -- advise --set: a pinned value is checked before the advisor's rules compute with it --

SET_VALUES = [
    "nan", "inf", "1e400", "-1", "0", "99999999999999999999", "1.5", "true", '"x"', '""', "[]",
    "[[]]", '["a=b"]', '["conv_dim=abc"]', '["x"]', "{}", "{a=1}", "1979-05-27", "07:32:00",
    "abc", '"512,512"', '"99999,1"', '"0,0"', '"-64,64"', "[1,2]", '"../x"', '"a/b"', "2e-4",
    '"Prodigy"', '"lycoris.kohya"', '["algo=lokr","factor=-1"]', '["dropout=2"]',
    '["block_dims=1,2"]', "[" * 300 + "]" * 300,
]  # fmt: skip


@settings(max_examples=EXAMPLES // 2, derandomize=True, database=None, deadline=None)
@given(
    pins=st.lists(
        st.tuples(
            st.sampled_from(FIELDS),
            st.one_of(st.sampled_from(SET_VALUES), st.text(max_size=12)),
        ),
        min_size=1,
        max_size=3,
    ),
    subject=st.sampled_from(["style", "character", "concept"]),
    fmt=st.sampled_from(["json", "toml", "kohya-toml", "kohya-cmd"]),
)
def test_advise_set_random_values(pins: list[tuple[str, str]], subject: str, fmt: str) -> None:
    import contextlib
    import io

    from tuilora.cli import main

    sets = [arg for key, text in pins for arg in ("--set", f"{key}={text}")]
    args = ["advise", "--subject", subject, "--category", "B", "--images", "20", "--vram", "24"]
    err = io.StringIO()
    counts = COUNTS.setdefault("advise --set", [0, 0, 0])
    counts[0] += 1
    with (
        pytest.raises(SystemExit) as ended,
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(err),
    ):
        main([*args, "--format", fmt, *sets])
    assert ended.value.code in (0, 2)
    if ended.value.code == 2:
        counts[2] += 1
        assert len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
    else:
        counts[1] += 1
