"""Hostile and broken inputs to ``tuilora train``, ``--resume`` and ``sample`` (issue 17,
items 3 and 3b), through ``tuilora.cli.main`` on the tiny model.

The promise for every case: exit 2, one line on stderr naming the file or field, and nothing
half-written — a case caught before training leaves no run folder at all (pre-flight runs
before the folder is created and before the model loads), a refused resume leaves the run's
files byte for byte as they were, and a refused pickle never runs its payload.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch

from tuilora.cli import main
from tuilora.config import to_toml_dict

from .conftest import _tiny_config


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    code = ended.value.code
    return (code if isinstance(code, int) else 0), capsys.readouterr().err


def assert_one_line_error(err: str, *names: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.startswith("tuilora: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, err)


def write_config(path: Path, model: Path, data: Path, out: Path, **changes: Any) -> Path:
    values = to_toml_dict(_tiny_config(model, data, out, max_train_epochs=1))
    flat = {key: value for section in values.values() for key, value in section.items()}
    flat.update(changes)
    path.write_text(tomli_w.dumps(flat), encoding="utf-8")
    return path


class Payload:
    """Unpickling this writes a marker file: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "the pickle ran"))


def safetensors_bytes(names: dict[str, list[int]]) -> bytes:
    header, offset = {}, 0
    for name, shape in names.items():
        size = 4 * int(torch.tensor(shape).prod().item())
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


LORA = {"lora_unet_x.lora_down.weight": [4, 8], "lora_unet_x.lora_up.weight": [8, 4]}

#: name -> (bytes of the file or a writer, its suffix)
BAD_FILES: dict[str, Callable[[Path], bytes]] = {
    "half-cut": lambda _: safetensors_bytes(LORA)[:-40],
    "cut-header": lambda _: safetensors_bytes(LORA)[:30],
    "lying-length": lambda _: struct.pack("<Q", 10**12) + safetensors_bytes(LORA)[8:],
    "random-bytes": lambda _: os.urandom(3000),
    "empty": lambda _: b"",
    "deep-header": lambda _: struct.pack("<Q", 6000) + b"[" * 3000 + b"]" * 3000,
}


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "the-pickle-ran"


def pickle_file(path: Path, marker: Path) -> Path:
    torch.save({"lora_unet_x.alpha": Payload(marker)}, path)
    return path


# -- refused before the run folder exists (and before the model loads) -----------------


def _model_cases(tmp: Path, marker: Path, tiny_model: Path) -> dict[str, tuple[dict, str]]:
    cases: dict[str, tuple[dict[str, Any], str]] = {}
    for name, content in BAD_FILES.items():
        path = tmp / f"base-{name}.safetensors"
        path.write_bytes(content(path))
        cases[f"base model {name}"] = ({"pretrained_model_name_or_path": str(path)}, path.name)
        lora = tmp / f"lora-{name}.safetensors"
        lora.write_bytes(content(lora))
        cases[f"network_weights {name}"] = ({"network_weights": str(lora)}, lora.name)
    ckpt = pickle_file(tmp / "model.ckpt", marker)
    cases["base model .ckpt pickle"] = ({"pretrained_model_name_or_path": str(ckpt)}, "model.ckpt")
    weights = pickle_file(tmp / "weights.pt", marker)
    cases["network_weights pickle"] = ({"network_weights": str(weights)}, "weights.pt")
    cases["base_weights pickle"] = ({"base_weights": [str(weights)]}, "weights.pt")
    not_lora = tmp / "not-a-lora.safetensors"
    not_lora.write_bytes(safetensors_bytes({"model.diffusion_model.x.weight": [2, 2]}))
    cases["network_weights not a LoRA"] = ({"network_weights": str(not_lora)}, "not a LoRA")
    a_file = tmp / "a-file"
    a_file.write_text("mine", encoding="utf-8")
    cases["output_dir is a file"] = ({"output_dir": str(a_file)}, "output_dir")
    cases["output_dir under a file"] = ({"output_dir": str(a_file / "run")}, "output_dir")
    cases["conv_dim=abc"] = ({"network_args": ["conv_dim=abc"]}, "conv_dim")
    cases["unknown optimizer"] = ({"optimizer_type": "AdamWX"}, "optimizer_type")
    cases["optimizer args junk"] = ({"optimizer_args": ["betas"]}, "optimizer_args")
    cases["unknown scheduler"] = ({"lr_scheduler": "cosine_forever"}, "lr_scheduler")
    cases["../ in output_name"] = ({"output_name": "../escape"}, "output_name")
    return cases


CASE_NAMES = [
    *(f"base model {name}" for name in BAD_FILES),
    *(f"network_weights {name}" for name in BAD_FILES),
    "base model .ckpt pickle",
    "network_weights pickle",
    "base_weights pickle",
    "network_weights not a LoRA",
    "output_dir is a file",
    "output_dir under a file",
    "conv_dim=abc",
    "unknown optimizer",
    "optimizer args junk",
    "unknown scheduler",
    "../ in output_name",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_refused_before_anything_is_written(
    case: str,
    tiny_model: Path,
    shapes: Path,
    tmp_path: Path,
    marker: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    changes, named = _model_cases(tmp_path, marker, tiny_model)[case]
    out = tmp_path / "runs" / "r"
    changes = {"output_dir": str(out), **changes}
    config = write_config(tmp_path / "c.toml", tiny_model, shapes, out, **changes)
    code, err = run_cli(capsys, "train", str(config), "--no-progress")
    assert code == 2
    assert_one_line_error(err, named)
    assert not (tmp_path / "runs").exists()  # pre-flight: no run folder, no model loaded
    assert not marker.exists()
    if "a-file" in str(changes.get("output_dir")):
        assert (tmp_path / "a-file").read_text(encoding="utf-8") == "mine"


@pytest.fixture()
def read_only_dir(tmp_path: Path) -> Any:
    """A folder on a read-only filesystem (a read-only tmpfs as root, else a 0o555 folder)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot make a read-only filesystem here (root without mount)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_output_dir_on_a_read_only_filesystem(
    read_only_dir: Path, tiny_model: Path, shapes: Path, tmp_path: Path, capsys: Any
) -> None:
    for out in (read_only_dir, read_only_dir / "run"):
        config = write_config(tmp_path / "c.toml", tiny_model, shapes, out)
        code, err = run_cli(capsys, "train", str(config), "--no-progress")
        assert code == 2
        assert_one_line_error(err, "output_dir", str(read_only_dir))


def test_deeply_nested_toml_through_train(tmp_path: Path, capsys: Any) -> None:
    config = tmp_path / "deep.toml"
    config.write_text("network_args = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    code, err = run_cli(capsys, "train", str(config))
    assert code == 2
    assert_one_line_error(err, "deep.toml", "nested")


# -- after the model loads: shapes that do not fit the base ----------------------------


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, shapes: Path) -> Path:
    """A run stopped after its first epoch: a saved state at step 3 and a snapshot, no end."""
    from tuilora.engine.train import run_training

    folder = tmp_path_factory.mktemp("stopped")
    run = folder / "run"
    config = write_config(
        folder / "c.toml", tiny_model, shapes, run, max_train_epochs=2, save_state=True
    )
    assert run_training(str(config), progress=False) == 0
    shutil.rmtree(run / "state" / "00000006")
    (run / "t.safetensors").unlink()
    lines = (run / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run / "events.jsonl").write_text(
        "".join(line for line in lines if '"type": "end"' not in line), encoding="utf-8"
    )
    return run


def reshaped_lora(source: Path, target: Path, how: str) -> Path:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(source))
    if how == "rank":  # a LoRA of rank 8 where the network has rank 4
        for key, value in list(weights.items()):
            if key.endswith("lora_down.weight"):
                weights[key] = torch.zeros(8, *value.shape[1:])
            elif key.endswith("lora_up.weight"):
                weights[key] = torch.zeros(value.shape[0], 8, *value.shape[2:])
    else:  # names of another model: nothing matches
        weights = {
            f"lora_unet_other_{index}.{key.split('.', 1)[1]}": value
            for index, (key, value) in enumerate(weights.items())
        }
    save_file(weights, str(target))
    return target


@pytest.mark.slow
@pytest.mark.parametrize("how", ["rank", "other-model"])
def test_network_weights_that_do_not_fit_the_base(
    how: str, stopped_run: Path, tiny_model: Path, shapes: Path, tmp_path: Path, capsys: Any
) -> None:
    lora = reshaped_lora(stopped_run / "t-000001.safetensors", tmp_path / "odd.safetensors", how)
    out = tmp_path / "run"
    config = write_config(tmp_path / "c.toml", tiny_model, shapes, out, network_weights=str(lora))
    code, err = run_cli(capsys, "train", str(config), "--no-progress")
    assert code == 2
    assert_one_line_error(err, "network_weights", "odd.safetensors")
    assert not list(out.glob("*.safetensors"))  # no LoRA was written from it


# -- sample --snapshot: the file is checked before the model loads ---------------------


@pytest.mark.parametrize("name", [*BAD_FILES, "pickle", "not-a-lora", "missing"])
def test_sample_snapshot_checked_before_the_model(
    name: str, stopped_run: Path, tmp_path: Path, marker: Path, capsys: Any
) -> None:
    if name == "pickle":
        path = pickle_file(tmp_path / "snap.pt", marker)
    else:
        path = tmp_path / "snap.safetensors"
        if name == "not-a-lora":
            path.write_bytes(safetensors_bytes({"model.diffusion_model.x.weight": [2, 2]}))
        elif name != "missing":
            path.write_bytes(BAD_FILES[name](path))
    code, err = run_cli(
        capsys, "sample", str(stopped_run), "--grid", "unet-te", "--snapshot", str(path)
    )
    assert code == 2
    assert_one_line_error(err, "--snapshot" if name != "missing" else path.name)
    assert "loading the base model" not in err
    assert not marker.exists()


@pytest.mark.parametrize(("how", "says"), [("rank", "has shape"), ("other-model", "none of")])
def test_sample_snapshot_that_does_not_fit_the_run(
    how: str, says: str, stopped_run: Path, tmp_path: Path, capsys: Any
) -> None:
    lora = reshaped_lora(stopped_run / "t-000001.safetensors", tmp_path / "odd.safetensors", how)
    code, err = run_cli(
        capsys, "sample", str(stopped_run), "--grid", "unet-te", "--snapshot", str(lora)
    )
    assert code == 2
    assert_one_line_error(err, "odd.safetensors", says)
    assert "loading the base model" not in err


# -- --resume on a tampered run: refused, and nothing touched --------------------------


def _counters(run: Path, **changes: Any) -> None:
    path = run / "state" / "00000003" / "counters.json"
    counters = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**counters, **changes}), encoding="utf-8")


def _cut(run: Path, name: str) -> None:
    path = run / "state" / "00000003" / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_config(run: Path, old: str, new: str) -> None:
    path = run / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


TAMPER: dict[str, tuple[Callable[[Path], None], str]] = {
    "counters garbage": (
        lambda run: (run / "state/00000003/counters.json").write_text("garbage", "utf-8"),
        "counters.json",
    ),
    "negative step": (lambda run: _counters(run, step=-3), "step"),
    "step beyond the run": (lambda run: _counters(run, step=10**6), "step"),
    "float step": (lambda run: _counters(run, step=3.5), "step"),
    "text epoch": (lambda run: _counters(run, epoch="two"), "epoch"),
    "list batch": (lambda run: _counters(run, batch_in_epoch=[1]), "batch_in_epoch"),
    "network cut": (lambda run: _cut(run, "network.safetensors"), "network.safetensors"),
    "optimizer cut": (lambda run: _cut(run, "optimizer.safetensors"), "optimizer.safetensors"),
    "scheduler json": (
        lambda run: (run / "state/00000003/scheduler.json").write_text("[1,", "utf-8"),
        "scheduler.json",
    ),
    "network_dim changed": (
        lambda run: _edit_config(run, "network_dim = 4", "network_dim = 8"),
        "network_dim",
    ),
    "optimizer switched": (
        lambda run: _edit_config(run, 'optimizer_type = "AdamW"', 'optimizer_type = "Lion"'),
        "optimizer_type",
    ),
    "epochs changed": (
        lambda run: _edit_config(run, "max_train_epochs = 2", "max_train_epochs = 5"),
        "max_train_epochs",
    ),
}


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "lock"
    }


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_resume_refuses_a_tampered_run_and_touches_nothing(
    case: str, stopped_run: Path, tmp_path: Path, capsys: Any
) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    config = run / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(str(stopped_run), str(run)), encoding="utf-8"
    )
    tamper, named = TAMPER[case]
    tamper(run)
    before = fingerprint(run)
    code, err = run_cli(capsys, "train", "--resume", str(run), "--no-progress")
    assert code == 2
    assert_one_line_error(err, str(run), named)
    assert fingerprint(run) == before


def test_a_config_with_resume_must_describe_the_same_training(
    stopped_run: Path, tiny_model: Path, shapes: Path, tmp_path: Path, capsys: Any
) -> None:
    from tuilora.runs.preflight import check_training

    # The same settings (the run's own file, or a copy elsewhere): --resume goes on.
    same = tmp_path / "same.toml"
    same.write_bytes((stopped_run / "config.toml").read_bytes())
    assert check_training(str(same), resume=str(stopped_run)).resume is not None
    # Other settings: refused, naming the difference (they would be silently ignored).
    other = write_config(
        tmp_path / "other.toml", tiny_model, shapes, stopped_run, network_dim=8, seed=7
    )
    code, err = run_cli(capsys, "train", str(other), "--resume", str(stopped_run))
    assert code == 2
    assert_one_line_error(err, "other.toml", "network_dim", "--resume")
