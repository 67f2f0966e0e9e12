"""`tuilora advise` end to end through the console entry point: output, files, errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tuilora.cli import main

BASE = ["advise", "--category", "C", "--images", "40", "--vram", "12"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_done_when_example_prints_a_full_explained_recommendation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        ["advise", "--subject", "character", "--category", "D", "--male", "--images", "40"],
        capsys,
    )
    assert code == 0
    for text in ("network_dim = 64", "optimizer_type", "G-CAT", "steps/epoch", "why"):
        assert text in out
    code, out, _ = run(
        [
            "advise",
            "--subject",
            "character",
            "--category",
            "D",
            "--male",
            "--images",
            "40",
            "--format",
            "json",
        ],
        capsys,
    )
    data = json.loads(out)
    assert data["config"]["network_dim"] == 64
    assert data["plan"]["total_steps"] >= 1000
    assert data["reasons"]["network_dim"][0]["rule"] == "character-rank-range"


def test_json_without_vram_says_it_assumed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi
    code, out, _ = run(["advise", "--category", "B", "--images", "30", "--format", "json"], capsys)
    assert code == 0
    ids = [w["id"] for w in json.loads(out)["warnings"]]
    assert "vram-assumed" in ids


def test_vram_read_from_nvidia_smi(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 6144\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, _ = run(["advise", "--category", "B", "--images", "30", "--format", "json"], capsys)
    data = json.loads(out)
    assert data["config"]["optimizer_type"] == "AdamW8bit"  # 6 GB: no adaptive optimizer
    assert "vram-assumed" not in [w["id"] for w in data["warnings"]]


@pytest.mark.parametrize("fmt", ["toml", "kohya-toml", "kohya-cmd", "json", "table"])
def test_output_file_is_written_and_not_overwritten(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / f"out.{fmt}"
    code, _, _ = run([*BASE, "--format", fmt, "--output", str(target)], capsys)
    assert code == 0 and target.read_text(encoding="utf-8")
    before = target.read_text(encoding="utf-8")
    code, _, err = run([*BASE, "--rank", "8", "--format", fmt, "--output", str(target)], capsys)
    assert code == 2 and "--force" in err
    assert target.read_text(encoding="utf-8") == before
    code, _, _ = run([*BASE, "--rank", "8", "--format", fmt, "-o", str(target), "--force"], capsys)
    assert code == 0 and target.read_text(encoding="utf-8") != before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_kohya_toml_with_paths_is_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        [
            "advise",
            "--subject",
            "style",
            "--images",
            "5000",
            "--vram",
            "24",
            "--model",
            "/models/nai.safetensors",
            "--name",
            "mystyle",
            "--format",
            "kohya-toml",
        ],
        capsys,
    )
    values = tomllib.loads(out)
    assert values["pretrained_model_name_or_path"] == "/models/nai.safetensors"
    assert values["output_name"] == "mystyle"
    assert values["network_dim"] == 92
    assert "Add before training: train_data_dir" in out


def test_explain_lists_every_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "advise",
            "--category",
            "E",
            "--male",
            "--images",
            "40",
            "--vram",
            "16",
            "--base",
            "sdxl",
            "--explain",
            "network_dim",
        ],
        capsys,
    )
    assert code == 0
    assert "character-rank-male-unchanged" in out
    assert "G-CAT-MALE" in out
    code, out, _ = run([*BASE, "--explain", "epochs"], capsys)
    assert "epochs-to-target" in out


def test_set_overrides_pin_fields_and_reevaluate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            *BASE,
            "--optimizer",
            "adamw8bit",
            "--set",
            "train_batch_size=4",
            "--set",
            "noise_offset=0.06",
            "--format",
            "json",
        ],
        capsys,
    )
    data = json.loads(out)
    assert data["config"]["unet_lr"] == pytest.approx(4e-4)  # 1e-4 x batch
    assert data["config"]["noise_offset"] == 0.06
    assert data["plan"]["steps_per_epoch"] == 10


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["advise", "--subject", "robot", "--images", "4"], "--subject"),
        (["advise", "--category", "Z", "--images", "4"], "--category"),
        (["advise", "--images", "40"], "--category"),
        (["advise", "--category", "C", "--images", "0"], "--images"),
        (["advise", "--category", "C", "--images", "-3"], "--images"),
        (["advise", "--category", "C", "--images", "forty"], "--images"),
        (["advise", "--category", "C", "--images", "4.5"], "--images"),
        (["advise", "--category", "C"], "--images"),
        ([*BASE, "--vram", "0"], "--vram"),
        ([*BASE, "--vram", "-8"], "--vram"),
        ([*BASE, "--rank", "0"], "--rank"),
        ([*BASE, "--rank", "769"], "--rank"),
        ([*BASE, "--rank", "8", "--alpha", "16"], "--alpha"),
        (["advise", "--category", "A", "--images", "40", "--vram", "12", "--alpha", "32"], "alpha"),
        ([*BASE, "--batch-size", "0"], "--batch-size"),
        ([*BASE, "--format", "yaml"], "--format"),
        ([*BASE, "--dataset", "/no/such/dir"], "--dataset"),
        ([*BASE, "--set", "network_dimm=4"], "network_dimm"),
        ([*BASE, "--set", "min_snr_gamma=50"], "min_snr_gamma"),
        ([*BASE, "--set", "nonsense"], "--set"),
        ([*BASE, "--explain", "rnak"], "--explain"),
        ([*BASE, "--no-such-flag"], "--no-such-flag"),
    ],
)
def test_user_errors_exit_2_with_one_line_naming_the_flag(
    args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(args, capsys)
    assert code == 2
    assert err.count("\n") == 1, err
    assert flag in err
    assert "Traceback" not in err and out == ""


def test_dataset_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "x.txt"
    file.write_text("x")
    code, _, err = run(["advise", "--category", "C", "--dataset", str(file)], capsys)
    assert code == 2 and "is a file" in err


def test_categories_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["categories"], capsys)
    assert code == 0
    for letter in "ABCDEFGHI":
        assert f"│ {letter} " in out
    assert "192-256?" in out
