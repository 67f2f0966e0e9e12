"""`tuilora diagnose` through cli_diagnose.run: run dirs, bare TOMLs, LoRA metadata, files."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tuilora.advisor import cli_diagnose
from tuilora.advisor.diagnose_history import history, render_history
from tuilora.advisor.lora_metadata import lora_training, parse_optimizer
from tuilora.config import load_toml
from tuilora.errors import UserError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"

RUN_CONFIG = """\
[tuilora]
base_type = "sd15"
[network]
network_dim = 32
network_alpha = 16.0
[optimizer]
optimizer_type = "{optimizer}"
optimizer_args = {args}
learning_rate = {lr}
unet_lr = {lr}
text_encoder_lr = {te}
lr_scheduler = "{scheduler}"
[dataset]
train_data_dir = "data"
caption_extension = ".txt"
[training]
max_train_epochs = {epochs}
[saving]
output_dir = "runs/{name}"
output_name = "{name}"
save_every_n_epochs = 1
"""
PRODIGY_ARGS = (
    '["decouple=True", "weight_decay=0.01", "d_coef=2", "use_bias_correction=True",'
    ' "safeguard_warmup=False", "betas=0.9,0.999"]'
)


def make_run(name: str, fixture: str, *, prodigy: bool = False, epochs: int = 12) -> Path:
    """runs/NAME from a recorded events fixture, with a config and some snapshot files."""
    run = Path("runs") / name
    run.mkdir(parents=True)
    shutil.copy(FIXTURES / f"{fixture}.jsonl", run / "events.jsonl")
    values = {
        "name": name,
        "epochs": epochs,
        "optimizer": "Prodigy" if prodigy else "AdamW8bit",
        "args": PRODIGY_ARGS if prodigy else "[]",
        "lr": 1.0 if prodigy else 4e-4,
        "te": 1.0 if prodigy else 5e-5,
        "scheduler": "constant" if prodigy else "cosine_with_restarts",
    }
    (run / "config.toml").write_text(RUN_CONFIG.format(**values), encoding="utf-8")
    for epoch in (1, 2, 4, 8):
        (run / f"{name}-{epoch:06d}.safetensors").write_bytes(b"")
    (run / f"{name}.safetensors").write_bytes(b"")
    return run


def make_dataset() -> None:
    folder = Path("data") / "10_aria"
    folder.mkdir(parents=True)
    captions = ["aria, shoulder bag, wings", "aria, armor", "aria, bag", "aria, handbags"]
    for number, caption in enumerate(captions):
        (folder / f"{number}.png").write_bytes(b"")
        (folder / f"{number}.txt").write_text(caption, encoding="utf-8")
    (folder / "9.png").write_bytes(b"")  # no caption


def run_json(capsys: pytest.CaptureFixture[str], **options: Any) -> dict[str, Any]:
    assert cli_diagnose.run({"fmt": "json", **options}) == 0
    return dict(json.loads(capsys.readouterr().out))


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_scenario_6_overfit_with_a_bag(capsys: pytest.CaptureFixture[str]) -> None:
    """SCENARIOS.md 6: needs strength 0.6, a bag in every image."""
    make_dataset()
    make_run("aria", "rising")
    out = run_json(capsys, run="runs/aria", strength="lower", object="bag")
    assert list(out) == ["findings", "snapshot", "changes", "config"]
    ids = [f["id"] for f in out["findings"]]
    assert {"strength-lower", "loss-rising", "object-persistent-counted"} <= set(ids)
    for finding in out["findings"]:
        assert set(finding) == {"id", "severity", "guide", "text"}
    bag = next(f for f in out["findings"] if f["id"] == "object-persistent-counted")
    assert "2 of 5 captions" in bag["text"]  # "shoulder bag" and "bag", not "handbags"
    assert out["snapshot"]["file"] == "aria-000004.safetensors"
    assert out["snapshot"]["exists"] is True
    changes = out["changes"]
    assert changes["max_train_epochs"]["from"] == 12
    assert changes["max_train_epochs"]["to"] == 4
    for change in changes.values():
        assert set(change) == {"from", "to", "reason", "guide"}
    assert changes["output_dir"]["to"] == "runs/aria-r2"
    assert out["config"]["max_train_epochs"] == 4


def test_write_is_atomic_refuses_to_overwrite_and_records_lineage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_run("aria", "rising")
    options = {"run": "runs/aria", "strength": "lower", "write": "next.toml", "fmt": "json"}
    assert cli_diagnose.run(options, ["diagnose", "runs/aria", "--write", "next.toml"]) == 0
    written = Path("next.toml").read_text(encoding="utf-8")
    assert written.startswith("# Made by: tuilora diagnose runs/aria\n")
    assert load_toml("next.toml").config.max_train_epochs == 4
    lineage = json.loads(Path("runs/aria-r2/lineage.json").read_text(encoding="utf-8"))
    assert lineage["parent"] == "../aria"
    assert lineage["changes"]["max_train_epochs"]["to"] == 4
    with pytest.raises(UserError, match="already exists; pass --force"):
        cli_diagnose.run(options)
    # The first run's folder is untouched; a forced rewrite goes to the next free folder.
    assert cli_diagnose.run({**options, "force": True}) == 0
    assert Path("runs/aria-r3/lineage.json").is_file()
    assert not list(Path(".").glob(".next.toml.*"))  # no temp file left behind


def test_bare_sd_scripts_toml_with_unet_te_split(capsys: pytest.CaptureFixture[str]) -> None:
    Path("kohya.toml").write_text(
        'pretrained_model_name_or_path = "/m/nai.safetensors"\n'
        'train_data_dir = "data"\noutput_name = "aria"\nnetwork_module = "networks.lora"\n'
        'network_dim = 32\nnetwork_alpha = 16\noptimizer_type = "AdamW8bit"\n'
        "learning_rate = 1e-4\nunet_lr = 1e-4\ntext_encoder_lr = 5e-5\n"
        'lr_scheduler = "cosine_with_restarts"\nmax_train_epochs = 10\n'
        'resolution = "512,512"\nxformers = true\n',
        encoding="utf-8",
    )
    out = run_json(capsys, config="kohya.toml", unet="0.5", te="1.0", write="next.toml")
    assert out["snapshot"] is None
    assert out["changes"]["unet_lr"] == {
        "from": 1e-4,
        "to": 5e-5,
        "reason": out["changes"]["unet_lr"]["reason"],
        "guide": ["G-TEST-UNETTE", "G-LR-UNET", "G-LR-TE"],
    }
    assert "text_encoder_lr" not in out["changes"]  # TE 1.0: unchanged
    raw = tomllib.loads(Path("next.toml").read_text(encoding="utf-8"))
    assert raw["unet_lr"] == 5e-5 and raw["learning_rate"] == 5e-5
    assert raw["xformers"] is True and raw["resolution"] == "512,512"
    # TE 2.0 doubles the TE rate and keeps the Unet's.
    out = run_json(capsys, config="kohya.toml", unet="1.0", te="2.0")
    assert out["changes"]["text_encoder_lr"]["to"] == 1e-4
    assert "unet_lr" not in out["changes"]


def _lora_file(path: Path, meta: dict[str, str]) -> None:
    header = json.dumps(
        {"__metadata__": meta, "w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}
    )
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0\0")


SD_SCRIPTS_META = {
    "ss_network_module": "networks.lora",
    "ss_network_dim": "16",
    "ss_network_alpha": "1.0",
    "ss_learning_rate": "1.0",
    "ss_unet_lr": "1.0",
    "ss_text_encoder_lr": "[1.0]",
    "ss_optimizer": "prodigyopt.prodigy.Prodigy(decouple=True,weight_decay=0.01,d_coef=2,"
    "use_bias_correction=True,safeguard_warmup=False,betas=(0.9, 0.999))",
    "ss_num_epochs": "10",
    "ss_max_train_steps": "400",
    "ss_lr_scheduler": "constant",
    "ss_min_snr_gamma": "5.0",
    "ss_noise_offset": "None",
    "ss_resolution": "(512, 512)",
    "ss_base_model_version": "sd_v1",
    "ss_output_name": "aria",
    "ss_num_batches_per_epoch": "40",
    "ss_clip_skip": "2",
    "ss_flip_aug": "True",
    "ss_tag_frequency": json.dumps({"1_aria": {"aria": 40, "shoulder bag": 12, "1girl": 40}}),
    "ss_dataset_dirs": json.dumps({"1_aria": {"n_repeats": 1, "img_count": 40}}),
}


def test_lora_metadata_becomes_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    _lora_file(Path("aria.safetensors"), SD_SCRIPTS_META)
    training = lora_training("aria.safetensors")
    config = training.config
    assert config.optimizer_type == "Prodigy"
    assert "betas=0.9,0.999" in config.optimizer_args and "d_coef=2" in config.optimizer_args
    assert config.text_encoder_lr == 1.0 and config.max_train_epochs == 10
    assert config.resolution == 512 and config.clip_skip == 2 and config.flip_aug is True
    assert config.noise_offset is None and training.steps_per_epoch == 40
    out = run_json(capsys, lora="aria.safetensors", strength="invisible", object="bag")
    # 10 x 40 = 400 steps: too few, so the lever is length, not the learning rate.
    assert out["changes"]["max_train_epochs"]["to"] == 25
    bag = next(f for f in out["findings"] if f["id"] == "object-persistent-counted")
    assert "12 of 40 captions" in bag["text"]


def test_parse_optimizer_forms() -> None:
    assert parse_optimizer("bitsandbytes.optim.adamw.AdamW8bit") == ("AdamW8bit", [])
    assert parse_optimizer("torch.optim.sgd.SGD(nesterov=True,momentum=0.9)") == (
        "SGDNesterov",
        ["nesterov=True", "momentum=0.9"],
    )
    assert parse_optimizer("transformers.optimization.Adafactor(relative_step=True)")[0] == (
        "Adafactor"
    )


def test_not_a_lora_is_a_user_error() -> None:
    Path("x.safetensors").write_bytes(b"short")
    with pytest.raises(UserError, match="shorter than a header"):
        lora_training("x.safetensors")
    Path("y.safetensors").write_bytes(struct.pack("<Q", 4) + b"nope")
    with pytest.raises(UserError, match="not JSON"):
        lora_training("y.safetensors")
    _lora_file(Path("z.safetensors"), {"modelspec.title": "x"})
    with pytest.raises(UserError, match="no sd-scripts training metadata"):
        lora_training("z.safetensors")


def test_adaptive_runs_move_d_coef_not_the_learning_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_run("boom", "prodigy-explode", prodigy=True, epochs=10)
    out = run_json(capsys, run="runs/boom")
    assert "lrd-exploding" in [f["id"] for f in out["findings"]]
    change = out["changes"]["optimizer_args"]
    assert "d_coef=1" in change["to"] and "d_coef=2" in change["from"]
    assert "unet_lr" not in out["changes"] and "learning_rate" not in out["changes"]
    out = run_json(capsys, run="runs/boom", strength="lower")
    assert out["changes"]["max_train_epochs"]["to"] == 8  # adaptive + overfit: shorter
    assert "unet_lr" not in out["changes"]


def test_diverged_run_prefers_the_last_good_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    make_run("nan", "nan", epochs=10)
    out = run_json(capsys, run="runs/nan")
    assert out["findings"][0]["id"] == "run-diverged"
    assert out["snapshot"]["epoch"] == 2
    assert out["snapshot"]["file"] == "nan-000002.safetensors"
    assert out["changes"]["unet_lr"]["to"] == pytest.approx(5e-5)  # 4e-4 / 8


def test_table_output_names_findings_snapshot_and_changes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_run("aria", "rising")
    assert cli_diagnose.run({"run": "runs/aria", "strength": "lower"}) == 0
    out = capsys.readouterr().out
    for text in ("Findings", "Prefer: aria-000004.safetensors", "max_train_epochs", "12 -> 4"):
        assert text in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give one of"),
        ({"run": "runs/x", "config": "c.toml"}, "give one of"),
        ({"run": "runs/missing"}, "no such run directory"),
        ({"run": "runs/x", "strength": "weak"}, "--strength 'weak'"),
        ({"run": "runs/x", "unet": "half"}, "--unet 'half'"),
        ({"run": "runs/x", "unet": "9"}, "--unet 9"),
        ({"run": "runs/x", "epoch": "0"}, "--epoch 0"),
        ({"run": "runs/x", "fmt": "yaml"}, "--format 'yaml'"),
        ({"config": "missing.toml"}, "no such config file"),
    ],
)
def test_user_errors_name_the_flag_or_file(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        cli_diagnose.run(options)


def test_history_shows_the_chain_with_diffs_and_outcomes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_run("aria", "rising")
    cli_diagnose.run({"run": "runs/aria", "strength": "lower", "fmt": "json", "write": "n.toml"})
    capsys.readouterr()
    # The engine would now train runs/aria-r2: give it a finished run's events.
    shutil.copy(FIXTURES / "healthy.jsonl", Path("runs/aria-r2/events.jsonl"))
    make_run("other", "plateau")
    tops = history("runs")
    assert [top.path.name for top in tops] == ["aria", "other"]
    child = tops[0].children[0]
    assert child.path.name == "aria-r2"
    assert child.diff["max_train_epochs"] == (12, 4)
    assert child.status == "finished" and child.epochs_done == 10
    text = render_history(tops, "runs")
    assert "aria  [finished] 12/12 epochs" in text
    assert "`-- aria-r2  [finished] 10/10 epochs" in text
    assert "max_train_epochs: 12 -> 4" in text
    assert "tested: strength lower" in text
    assert cli_diagnose.history_run({"root": "runs"}) == 0
    assert "aria-r2" in capsys.readouterr().out


def test_json_diagnose_imports_neither_rich_nor_textual_nor_torch(tmp_path: Path) -> None:
    make_run("aria", "rising")
    code = (
        "import sys\n"
        "from tuilora.advisor import cli_diagnose\n"
        "cli_diagnose.run({'run': 'runs/aria', 'fmt': 'json', 'strength': 'lower'})\n"
        "bad = {m.split('.')[0] for m in sys.modules} & {'rich', 'textual', 'torch'}\n"
        "sys.stderr.write('BAD=' + ','.join(sorted(bad)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.strip().endswith("BAD="), result.stderr
