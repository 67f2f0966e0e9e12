"""Opening a run folder after the checks (``runs.begin``), torch-free: leftovers of killed
saves are removed (only the run's own), an old run is replaced file by file, a resume that
cannot start leaves the folder byte for byte as it was, and no state is ever unpickled."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from tuilora.errors import UserError
from tuilora.runs import statedir
from tuilora.runs.begin import begin
from tuilora.runs.preflight import check_training
from tuilora.runs.registry import recent_runs


@pytest.fixture
def config(tmp_path: Path) -> Path:
    import tomli_w

    from tuilora.engine.tiny import build_shapes_dataset

    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")
    (model / "text_encoder").mkdir()
    (model / "text_encoder" / "config.json").write_text("{}", encoding="utf-8")
    data = build_shapes_dataset(tmp_path / "dataset", images=4)
    path = tmp_path / "t.toml"
    values = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(data),
        "output_dir": str(tmp_path / "run"),
        "output_name": "t",
        "resolution": 64,
        "min_bucket_reso": 32,
        "max_bucket_reso": 128,
        "bucket_reso_steps": 32,
    }
    path.write_text(tomli_w.dumps(values), encoding="utf-8")
    return path


def complete_state(root: Path, step: int, **counters: Any) -> Path:
    folder = statedir.folder_for(root, step)
    folder.mkdir(parents=True)
    for name in statedir.STATE_FILES:
        # JSON "{}"; the safetensors files as the smallest whole file (an empty header)
        prefix = (2).to_bytes(8, "little") if name.endswith(".safetensors") else b""
        (folder / name).write_bytes(prefix + b"{}")
    (folder / "counters.json").write_text(json.dumps({"step": step, **counters}), "utf-8")
    return folder


def test_a_new_run_writes_its_pid_then_its_first_event_and_registers(config: Path) -> None:
    plan = check_training(str(config))
    session = begin(plan)
    try:
        run = plan.run
        assert int(run.pid.read_text()) > 0
        events = [json.loads(line) for line in run.events.read_text().splitlines()]
        assert [e["type"] for e in events] == ["phase"] and events[0]["name"] == "starting"
        assert run.config.is_file() and run.lock.exists()
        assert recent_runs()[0].resolve() == run.root.resolve()
        with pytest.raises(UserError, match="being trained"):
            check_training(str(config), force=True)  # the lock is held: refused before all
    finally:
        session.close()


def run_with_state(config: Path) -> Path:
    """A stopped run with a state at step 10, made through the real begin()."""
    plan = check_training(str(config))
    session = begin(plan)
    session.events.emit("start", total_steps=40, epochs=4, resumed_from_step=0)
    session.events.emit("step", step=10, epoch=1, loss=0.5)
    session.events.emit("end", status="stopped", step=10, final=None, message="stopped")
    session.close()
    complete_state(plan.run.state, 10, elapsed_s=12.5)
    return plan.run.root


def test_leftovers_of_killed_saves_are_removed_and_nothing_else(config: Path) -> None:
    run = run_with_state(config)
    own = [".t.safetensors.abcd1234.tmp", ".t-000002.safetensors.x_y1z2w3.tmp"]
    own += [".config.toml.q1w2e3r4.tmp", ".events.jsonl.aaaaaaaa.tmp"]
    foreign = [".other.safetensors.abcd1234.tmp", ".notes.tmp", ".t.safetensors.tmp", "x.tmp"]
    for name in own + foreign:
        (run / name).write_bytes(b"partial")
    state = run / "state"
    (state / ".00000020.tmp").mkdir()
    (state / ".00000005.trash").mkdir()
    (state / "notes").mkdir()
    begin(check_training(None, resume=str(run))).close()  # the next start of the run
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == sorted(foreign)
    assert sorted(p.name for p in state.iterdir()) == ["00000010", "notes"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("status", ["failed-to-start", "stopped", "oom"])
def test_a_resume_that_cannot_start_leaves_the_run_as_it_was(config: Path, status: str) -> None:
    root = run_with_state(config)
    before = snapshot(root)
    plan = check_training(None, resume=str(root))
    assert plan.resume is not None and plan.resume.step == 10 and plan.resume.elapsed_s == 12.5
    session = begin(plan)
    session.events.emit("phase", name="loading the model", done=0, total=None, eta_s=None)
    assert snapshot(root) != before  # the resume did write: its pid, its phases
    session.fail_before_start(status, "the model moved")
    session.close()
    assert snapshot(root) == before


def test_a_new_run_that_cannot_start_says_so_and_blocks_nothing(config: Path) -> None:
    plan = check_training(str(config))
    session = begin(plan)
    session.fail_before_start("failed-to-start", "the model file is damaged")
    session.close()
    events = [json.loads(line) for line in plan.run.events.read_text().splitlines()]
    assert events[-1]["status"] == "failed-to-start" and events[-2]["type"] == "error"
    again = check_training(str(config))  # it never trained: replaced without --force
    assert again.replace is not None and "never trained" in again.notices[0]


def test_a_run_that_trained_is_replaced_only_with_force_and_only_its_files(
    config: Path,
) -> None:
    root = run_with_state(config)
    (root / "t-000001.safetensors").write_bytes(b"run's")  # the run wrote it ...
    with (root / "events.jsonl").open("a") as handle:  # ... as its events say
        handle.write(json.dumps({"t": 9.0, "type": "epoch_end", "snapshot": "t-000001"}) + "\n")
        handle.write(
            json.dumps({"t": 9.5, "type": "epoch_end", "snapshot": "/x/t-000001.safetensors"})
            + "\n"
        )
        handle.write(json.dumps({"t": 9.9, "type": "end", "status": "stopped"}) + "\n")
    (root / "t-000002.safetensors").write_bytes(b"user's, same name pattern")
    (root / "other.safetensors").write_bytes(b"user's")
    (root / "wizard.toml").write_text("# the wizard's", encoding="utf-8")
    with pytest.raises(UserError, match="--resume .* start over with --force"):
        check_training(str(config))
    plan = check_training(str(config), force=True)
    assert plan.replace is not None
    assert [p.name for p in plan.replace.loras] == ["t-000001.safetensors"]
    assert [p.name for p in plan.foreign_loras] == ["t-000002.safetensors"]
    begin(plan).close()
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted(
        [
            "config.toml",
            "events.jsonl",
            "lock",
            "pid",
            "other.safetensors",
            "t-000002.safetensors",
            "wizard.toml",
        ]
    )
    assert (root / "t-000002.safetensors").read_bytes() == b"user's, same name pattern"


def test_a_pickled_state_is_never_loaded(config: Path, tmp_path: Path) -> None:
    """The layout before numbered states kept pickles: resume refuses it, unread."""
    root = run_with_state(config)
    for path in list((root / "state").iterdir()):
        statedir.remove_tree(path)
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return (Path.write_text, (marker, "code ran"))

    (root / "state" / "optimizer.pt").write_bytes(pickle.dumps(Payload()))
    (root / "state" / "counters.json").write_text('{"step": 10}', encoding="utf-8")
    with pytest.raises(UserError, match="older tuilora .pickled."):
        check_training(None, resume=str(root))
    assert not marker.exists()


def test_resume_of_a_finished_run_says_there_is_nothing_to_resume(config: Path) -> None:
    plan = check_training(str(config))
    session = begin(plan)
    session.events.emit("step", step=40, epoch=4, loss=0.5)
    session.events.emit("end", status="finished", step=40, final=None, message="")
    session.close()
    with pytest.raises(UserError, match="finished at step 40: nothing to resume"):
        check_training(None, resume=str(plan.run.root))
    state = plan.run.state / "00000036"  # a state saved on the way (every N minutes)
    state.mkdir(parents=True)
    for name in statedir.STATE_FILES:
        (state / name).write_text('{"step": 36}' if name == "counters.json" else "{}")
    assert statedir.newest_state(plan.run.state) is not None
    with pytest.raises(UserError, match="finished at step 40: nothing to resume"):
        check_training(None, resume=str(plan.run.root))
    with pytest.raises(UserError) as refused:
        check_training(str(config))
    assert "--resume" not in str(refused.value)  # nothing to resume: not proposed
    assert "start over with --force" in str(refused.value)
