"""The checklist a user can trust (issue 16, item 3), diagnose side: only files that exist,
one loss figure, no verdict before an epoch ends, epochs the run has, --write checked before
anything is printed, paths that fit 80 columns whole."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tuilora.advisor import cli_diagnose
from tuilora.advisor.diagnose import Observations
from tuilora.advisor.diagnose_inputs import load_run_input, run_diagnosis
from tuilora.advisor.diagnose_render import diagnosis_view, grid_hint, run_state
from tuilora.errors import UserError

CONFIG = """\
[tuilora]
base_type = "sd15"
[network]
network_dim = 16
network_alpha = 1.0
[optimizer]
optimizer_type = "Prodigy"
optimizer_args = ["decouple=True", "d_coef=2"]
learning_rate = 1.0
[training]
max_train_epochs = {epochs}
[saving]
output_dir = "{root}"
output_name = "aria"
save_every_n_epochs = 4
"""


def make_run(
    root: Path, *, epochs: int, steps_per_epoch: int, done_steps: int, files: tuple[int, ...]
) -> Path:
    """A Prodigy run of ``epochs`` planned, ``done_steps`` trained, snapshot ``files``."""
    root.mkdir(parents=True)
    (root / "config.toml").write_text(CONFIG.format(epochs=epochs, root=root), encoding="utf-8")
    events: list[dict[str, Any]] = [
        {
            "t": 0,
            "type": "start",
            "config": {},
            "total_steps": epochs * steps_per_epoch,
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
        },
    ]
    for step in range(1, done_steps + 1):
        epoch = (step - 1) // steps_per_epoch + 1
        loss = 0.6 - 0.3 * step / (epochs * steps_per_epoch)
        events.append(
            {
                "t": step,
                "type": "step",
                "step": step,
                "epoch": epoch,
                "loss": loss,
                "lr_d": {"unet": 1e-6},
            }
        )
        if step % steps_per_epoch == 0:
            events.append({"t": step, "type": "epoch_end", "epoch": epoch})
    (root / "events.jsonl").write_text(
        "".join(json.dumps(event) + "\n" for event in events), encoding="utf-8"
    )
    for epoch in files:
        (root / f"aria-{epoch:06d}.safetensors").write_bytes(b"")
    return root


def test_too_early_gives_no_verdict(tmp_path: Path) -> None:
    """At step 3 of 160 (lr x d still at its start, loss 'above the band') nothing is
    concluded: one "too early" finding, no snapshot, and the note says why."""
    run = make_run(tmp_path / "aria", epochs=8, steps_per_epoch=20, done_steps=3, files=())
    source = load_run_input(run)
    diagnosis = run_diagnosis(source, Observations())
    assert [f.id for f in diagnosis.findings] == ["too-early"]
    assert diagnosis.snapshot is None
    assert "no epoch of this run has ended" in diagnosis.snapshot_note
    assert "not finished, 0/8 epochs" in run_state(source.metrics)


def test_the_header_and_the_findings_quote_one_loss(tmp_path: Path) -> None:
    run = make_run(tmp_path / "aria", epochs=4, steps_per_epoch=10, done_steps=40, files=(4,))
    source = load_run_input(run)
    diagnosis = run_diagnosis(source, Observations(strength="ok"))
    level = next(f for f in diagnosis.findings if f.id == "loss-level").message
    figure = run_state(source.metrics).split("loss ~")[1].split(" ")[0]
    assert f"around {figure} (the median step loss of the last epoch)" in level


def test_only_snapshot_files_that_exist_are_named(tmp_path: Path) -> None:
    """Saved every 4 epochs: the grid starts at aria-000004, not an unsaved aria-000001, and
    an overfit run prefers the saved file at or before the epoch the curves point to."""
    run = make_run(tmp_path / "aria", epochs=12, steps_per_epoch=5, done_steps=40, files=(4, 8))
    source = load_run_input(run)
    assert "<lora:aria-000004:1.0> ... <lora:aria-000008:1.0>" in grid_hint(source)
    diagnosis = run_diagnosis(source, Observations(strength="lower"))
    assert diagnosis.snapshot is not None
    assert diagnosis.snapshot.exists and diagnosis.snapshot.file == "aria-000004.safetensors"
    assert "was not saved" not in diagnosis.snapshot.reason  # the user named no epoch
    named = run_diagnosis(source, Observations(epoch=6))
    assert named.snapshot is not None and named.snapshot.file == "aria-000004.safetensors"
    assert "epoch 6 was not saved" in named.snapshot.reason
    everything = " ".join(f.message for f in diagnosis.findings)
    assert "000001" not in everything


def test_an_epoch_beyond_the_run_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "aria", epochs=1, steps_per_epoch=5, done_steps=5, files=())
    (run / "aria.safetensors").write_bytes(b"")
    source = load_run_input(run)
    with pytest.raises(UserError, match="epoch 5 is beyond this run: it has 1 epoch so far"):
        run_diagnosis(source, Observations(epoch=5))
    diagnosis = run_diagnosis(source, Observations(epoch=1))
    assert diagnosis.snapshot is not None and diagnosis.snapshot.exists


def test_write_checks_its_target_before_printing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "aria", epochs=4, steps_per_epoch=5, done_steps=20, files=(4,))
    target = tmp_path / "next.toml"
    target.write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match="already exists"):
        cli_diagnose.run({"run": str(run), "write": str(target)})
    assert capsys.readouterr().out == ""  # nothing printed before the refusal
    assert target.read_text(encoding="utf-8") == "mine"


def test_the_next_folder_fits_80_columns_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "a-rather-long-folder-name-for-the-newcomer" / "demo-output-folder"
    run = make_run(deep / "aria", epochs=8, steps_per_epoch=5, done_steps=40, files=(4, 8))
    monkeypatch.chdir(tmp_path)
    diagnosis = run_diagnosis(load_run_input(run), Observations(strength="lower"))
    buffer = io.StringIO()
    Console(file=buffer, width=80, color_system=None).print(diagnosis_view(diagnosis))
    text = buffer.getvalue()
    assert "…" not in text
    flat = "".join(line.strip(" │┃") for line in text.splitlines())
    assert "a-rather-long-folder-name-for-the-newcomer" in flat.replace(" ", "")
