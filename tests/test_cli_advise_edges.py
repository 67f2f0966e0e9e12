"""`tuilora advise` at the edges (issue 14): contradictions and bad values are one-line
errors with exit 2; the guide's limits warn; exports say how to launch and what to add."""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from stub_models import header_only_model

from tuilora.cli import main

BASE = ["advise", "--category", "C", "--images", "40", "--vram", "12"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def advice(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run([*args, "--format", "json"], capsys)
    assert code == 0, err
    return dict(json.loads(out))


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--rank", "16", "--set", "network_dim=32"], ("--rank 16", "--set network_dim=32")),
        (["--alpha", "4", "--set", "network_alpha=8"], ("--alpha 4", "--set network_alpha=8")),
        (["--batch-size", "2", "--set", "train_batch_size=4"], ("--batch-size", "--set")),
        (["--name", "a", "--set", "output_name=b"], ("--name a", "--set output_name=b")),
        (["--set", "network_dim=1", "--set", "network_dim=2"], ("--set network_dim",)),
        (["--subject", "style", "--category", "C"], ("--category", "--subject style")),
        (["--subject", "style", "--male"], ("--male", "--subject style")),
        (["--category", "C", "--realistic", "--simple"], ("--realistic", "--subject character")),
        (["--subject", "concept", "--goal", "likeness"], ("--goal", "--subject concept")),
    ],
)
def test_contradictions_are_one_line_errors(
    args: list[str], names: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    base = BASE[1:] if "--subject" not in args and "--category" not in args else BASE[3:]
    code, out, err = run(["advise", *base, *args], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    for name in names:
        assert name in err


def test_images_and_a_dataset_contradict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "1_a").mkdir()
    code, _, err = run([*BASE, "--dataset", str(tmp_path)], capsys)
    assert code == 2 and "--images 40 and --dataset" in err


def test_a_set_value_against_another_field_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Checks across fields (networks.lora ranks stop at 768) run on the whole config."""
    code, out, err = run([*BASE, "--set", "network_dim=2000"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("tuilora: error: network_dim 2000 is out of range") and "1 to 768" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("network_dim=abc", "network_dim must be a whole number"),
        ("resolution=abc", "not a resolution"),
        ("unet_lr=abc", "unet_lr must be a number"),
        ("min_snr_gamma=50", "out of range"),
        ("max_token_length=100", "choose one of 75, 150, 225"),
        ("lr_scheduler=cosinus", "is unknown (did you mean cosine?)"),
        ("networkdim=8", "did you mean network_dim"),
    ],
)
def test_bad_set_values_are_one_line_errors(
    entry: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run([*BASE, "--set", entry], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"tuilora: error: --set {entry}: ") and words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "warning"),
    [
        (["--vram", "4"], "vram-below-minimum"),
        (["--optimizer", "adamw8bit", "--set", "text_encoder_lr=0.0002"], "te-lr-above-unet"),
        (["--optimizer", "adamw8bit", "--set", "text_encoder_lr=0.0002"], "te-lr-outside-band"),
        (["--optimizer", "dadaptadam", "--set", "unet_lr=0.05"], "adaptive-lr-below-range"),
        (["--set", "min_snr_gamma=12"], "min-snr-gamma-outside-range"),
        (["--set", "max_train_epochs=5"], "too-few-steps"),
        (["--vram", "8", "--batch-size", "8"], "vram-headroom"),
        (["--set", "save_every_n_epochs=1"], "too-many-snapshots"),
    ],
)
def test_the_guides_limits_warn(
    args: list[str], warning: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = advice([*BASE, *args], capsys)
    ids = {w["id"] for w in data["warnings"]}
    assert warning in ids
    found = next(w for w in data["warnings"] if w["id"] == warning)
    assert found["guide"] and found["severity"] == "warning"


def test_the_issues_plans_hold_together(capsys: pytest.CaptureFixture[str]) -> None:
    warmup = advice([*BASE, "--set", "lr_scheduler=constant_with_warmup"], capsys)["config"]
    assert warmup["lr_warmup_steps"] == 100 and "safeguard_warmup=True" in warmup["optimizer_args"]
    assert warmup["max_train_epochs"] == 28  # 25 + the warmup's 100 steps in 40-step epochs
    noise = advice([*BASE, "--set", "noise_offset=0.06"], capsys)["config"]
    assert noise["max_train_epochs"] == 27
    lion = advice([*BASE, "--optimizer", "lion"], capsys)["config"]
    assert lion["unet_lr"] == pytest.approx(3.3e-5)
    vehicle = advice(
        [
            "advise",
            "--subject",
            "vehicle",
            "--realistic",
            "--network",
            "lokr",
            "--images",
            "40",
            "--vram",
            "12",
        ],
        capsys,
    )
    assert vehicle["config"]["network_dim"] == 64 and vehicle["plan"]["total_steps"] >= 1500
    sdxl = advice(
        ["advise", "--category", "C", "--images", "40", "--vram", "8", "--base", "sdxl"], capsys
    )["config"]
    assert sdxl["network_train_unet_only"] and sdxl["cache_text_encoder_outputs"]
    assert sdxl["shuffle_caption"] is False
    huge = advice(["advise", "--subject", "style", "--images", "100000", "--vram", "24"], capsys)
    assert huge["plan"]["total_steps"] == 3000 and "max_train_epochs" not in huge["config"]
    assert {w["id"] for w in huge["warnings"]} >= {"epoch-past-target"}
    batch = advice([*BASE, "--batch-size", "8", "--vram", "24"], capsys)
    epochs, every = batch["config"]["max_train_epochs"], batch["config"]["save_every_n_epochs"]
    assert (epochs - 1) // every <= 20
    ia3 = advice([*BASE, "--optimizer", "adamw8bit", "--network", "ia3"], capsys)["config"]
    assert 1e-5 <= ia3["text_encoder_lr"] <= 5e-5


def test_regularization_doubles_the_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    """sd-scripts fills regularization views up to the training views: 40 images give 80
    steps an epoch, and the 1600-step target (as sd-scripts prints it) takes 20 epochs."""
    plan = advice([*BASE, "--quality", "bad"], capsys)["plan"]
    assert (plan["steps_per_epoch"], plan["epochs"], plan["total_steps"]) == (80, 20, 1600)


def test_no_fp16_without_a_gpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("tuilora.advisor.cli_advise.detect_vram_gb", lambda: None)
    data = advice(["advise", "--category", "C", "--images", "40"], capsys)
    assert data["config"]["mixed_precision"] == "no"
    assert "CUDA" in data["reasons"]["mixed_precision"][-1]["text"]
    given = advice(["advise", "--category", "C", "--images", "40", "--vram", "12"], capsys)
    assert given["config"]["mixed_precision"] == "fp16"


def test_exports_carry_the_launch_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*BASE, "--processes", "2", "--format", "kohya-cmd"], capsys)
    assert code == 0
    words = shlex.split(out, comments=True)
    assert words[:6] == [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_cpu_threads_per_process",
    ]
    code, out, _ = run([*BASE, "--processes", "2", "--format", "kohya-toml"], capsys)
    assert "# For sd-scripts: accelerate launch --multi_gpu --num_processes 2" in out
    code, out, _ = run([*BASE, "--processes", "2", "--format", "toml"], capsys)
    assert "# Train with: tuilora train THIS_FILE --processes 2" in out
    code, out, _ = run([*BASE, "--format", "kohya-cmd"], capsys)
    assert "--multi_gpu" not in out


@pytest.mark.parametrize("fmt", ["toml", "kohya-toml", "kohya-cmd"])
def test_every_export_says_what_to_add(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*BASE, "--format", fmt], capsys)
    assert code == 0
    note = next(line for line in out.splitlines() if "Add before training" in line)
    assert "pretrained_model_name_or_path" in note and "train_data_dir" in note
    assert ("output_dir" in note) == fmt.startswith("kohya")


def test_paths_are_written_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "ds" / "10_aria"
    data.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(data / "a.png")
    header_only_model(tmp_path / "model.safetensors")  # advise reads its header (SD1.5)
    args = [
        "advise",
        "--category",
        "C",
        "--vram",
        "12",
        "--dataset",
        "ds",
        "--model",
        "model.safetensors",
        "--name",
        "aria",
    ]
    code, out, _ = run([*args, "--format", "kohya-toml"], capsys)
    assert code == 0
    values = tomllib.loads(out)
    assert values["train_data_dir"] == str(tmp_path / "ds")
    assert values["pretrained_model_name_or_path"] == str(tmp_path / "model.safetensors")
    assert values["output_dir"] == str(tmp_path / "runs" / "aria")
    assert values["logging_dir"] == str(tmp_path / "runs" / "aria" / "logs")
    assert "Add before training" not in out
