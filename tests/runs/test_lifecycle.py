"""The run's state machine (``runs.lifecycle``) and the commands around it, torch-free:
every state from events and a (verified) trainer, elapsed training time, phases, the
registry of recent runs, user errors that leave nothing behind, ``--debug`` anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuilora.cli import main, split_debug
from tuilora.errors import UserError
from tuilora.runs.begin import begin
from tuilora.runs.lifecycle import STATES, TRANSITIONS, run_state, summarize
from tuilora.runs.phases import PhaseReporter, StopBeforeStart, describe_phase
from tuilora.runs.preflight import check_training
from tuilora.runs.watch import format_event, resolve_run, watch_plain

StartTrainer = Callable[..., Any]  # the stand_in_trainer fixture (tests/conftest.py)
DOCS = Path(__file__).parents[2] / "docs" / "monitor.md"

PHASE = {"type": "phase", "name": "caching latents", "done": 3, "total": 8, "eta_s": 5.0}
START = {"type": "start", "total_steps": 8}
STEP = {"type": "step", "step": 1, "loss": 0.5}


def end(status: str) -> dict[str, Any]:
    return {"type": "end", "status": status}


@pytest.mark.parametrize(
    ("events", "alive", "pid_file", "state"),
    [
        ([], False, False, "waiting"),
        ([], True, True, "loading"),  # the pid is written before the first event
        ([], False, True, "crashed"),  # it died before writing one
        ([PHASE], True, True, "loading"),
        ([PHASE], False, True, "crashed"),
        ([PHASE, START], True, True, "running"),
        ([PHASE, START, STEP], False, True, "crashed"),
        *[([PHASE, START, STEP, end(s)], False, True, s) for s in ("finished", "diverged")],
        *[([PHASE, START, STEP, end(s)], True, True, s) for s in ("oom", "stopped")],
        ([PHASE, end("stopped")], False, True, "stopped"),  # stopped before step 1
        ([PHASE, end("failed-to-start")], False, True, "failed-to-start"),
        # A resumed run: its earlier end event does not end the session in progress.
        ([START, STEP, end("stopped"), PHASE], True, True, "loading"),
        ([START, STEP, end("stopped"), PHASE, START], True, True, "running"),
        ([START, STEP, end("stopped"), PHASE, START], False, True, "crashed"),
        ([START, STEP, end("nonsense")], False, True, "crashed"),
    ],
)
def test_every_state_from_events_and_the_trainer(
    events: list[dict[str, Any]], alive: bool, pid_file: bool, state: str
) -> None:
    assert state in STATES
    assert run_state(summarize(events), trainer_alive=alive, pid_file=pid_file) == state


def test_the_docs_show_the_state_machine_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for source, what, target in TRANSITIONS:
        assert f"| {source} | {what} | {target} |" in text
    for state in STATES:
        assert f"| `{state}` |" in text


def test_elapsed_is_training_time_without_the_stopped_interval() -> None:
    first = [
        {"t": 100.0, "elapsed_s": 0.0, **PHASE},
        {"t": 110.0, "elapsed_s": 10.0, **end("stopped")},
    ]
    # Resumed a day later: elapsed goes on from the state's 10 s.
    second = [{"t": 86500.0, "elapsed_s": 10.0, **PHASE}, {"t": 86505.0, "elapsed_s": 15.0, **STEP}]
    assert summarize(first + second).elapsed_s == 15.0
    legacy = [{"t": 100.0, **START}, {"t": 110.0, **end("stopped")}]  # written before elapsed_s
    legacy += [{"t": 86500.0, **START}, {"t": 86505.0, **STEP}]
    assert summarize(legacy).elapsed_s == 15.0


def test_phases_report_progress_an_eta_and_a_stop() -> None:
    emitted: list[dict[str, Any]] = []
    now = [0.0]
    stop = [False]
    reporter = PhaseReporter(
        lambda kind, **fields: emitted.append(fields), lambda: stop[0], clock=lambda: now[0]
    )
    reporter.begin("caching latents", total=10)
    for done in range(1, 11):
        now[0] += 0.2
        reporter.advance(done)
    assert [e["done"] for e in emitted] == [0, 3, 6, 9, 10]  # at most every 0.5 s, and the last
    assert emitted[1]["eta_s"] == pytest.approx(0.6 / 3 * 7)
    assert describe_phase(PHASE) == "caching latents 3/8, about 0:05 left"
    assert format_event(PHASE, None) == "phase: caching latents 3/8, about 0:05 left"
    stop[0] = True
    with pytest.raises(StopBeforeStart):
        reporter.advance(1)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    import tomli_w

    from tuilora.engine.tiny import build_shapes_dataset

    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")
    (model / "text_encoder").mkdir()
    (model / "text_encoder" / "config.json").write_text("{}", encoding="utf-8")
    values = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(build_shapes_dataset(tmp_path / "dataset", images=4)),
        "output_dir": str(tmp_path / "elsewhere" / "runs" / "t"),
        "output_name": "t",
        "resolution": 64,
        "min_bucket_reso": 32,
        "max_bucket_reso": 128,
        "bucket_reso_steps": 32,
    }
    path = tmp_path / "t.toml"
    path.write_text(tomli_w.dumps(values), encoding="utf-8")
    return path


def finished_run(config: Path) -> Path:
    session = begin(check_training(str(config)))
    session.events.emit("start", total_steps=8, epochs=1, device="cpu", resumed_from_step=0)
    session.events.emit("step", step=8, epoch=1, loss=0.25)
    session.events.emit("end", status="finished", step=8, final=None, message="")
    session.close()
    return session.run.root


def tuilora(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuilora", *args], capture_output=True, text=True, cwd=cwd
    )


def test_runs_and_watch_find_recent_runs_from_anywhere(config: Path, tmp_path: Path) -> None:
    root = finished_run(config)
    somewhere = tmp_path / "somewhere"
    somewhere.mkdir()
    listed = tuilora("runs", "--format", "json", cwd=somewhere)
    assert listed.returncode == 0, listed.stderr
    assert [Path(r["path"]) for r in json.loads(listed.stdout)] == [root.absolute()]
    table = tuilora("runs", cwd=somewhere)
    assert "finished" in table.stdout and "8/8" in table.stdout
    watched = tuilora("watch", "--plain", cwd=somewhere)
    assert watched.returncode == 0 and "end: finished" in watched.stdout
    assert resolve_run(None) == root.absolute()


def test_watch_follows_a_resumed_run_past_its_earlier_end(
    config: Path, stand_in_trainer: StartTrainer
) -> None:
    root = finished_run(config)
    with (root / "events.jsonl").open("a") as handle:  # a new session begins ...
        handle.write(json.dumps({"t": 1.0, **PHASE}) + "\n")
    trainer = stand_in_trainer(root)  # ... and its trainer is alive: not over yet
    out: list[str] = []

    class Stream:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    polls = [0]

    def sleep(_: float) -> None:
        polls[0] += 1
        if polls[0] == 3:
            trainer.send_signal(2)  # SIGINT: the stand-in writes "end: stopped"
            trainer.wait()

    assert watch_plain(root, out=Stream(), sleep=sleep) == 0  # type: ignore[arg-type]
    text = "".join(out)
    assert "end: finished" in text and text.rstrip().endswith("end: stopped — stopped")
    assert polls[0] >= 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pretrained_model_name_or_path": None}, "pretrained_model_name_or_path is not set"),
        ({"pretrained_model_name_or_path": "missing"}, "missing: no such file or folder"),
        ({"pretrained_model_name_or_path": "."}, "not a diffusers model folder"),
        ({"pretrained_model_name_or_path": "m.ckpt"}, "--allow-pickle"),
        ({"pretrained_model_name_or_path": "bad.safetensors"}, "not a readable .safetensors file"),
        ({"vae": "nowhere.safetensors"}, "vae nowhere.safetensors: no such file"),
        ({"train_data_dir": "nodata"}, "train_data_dir nodata: no such folder"),
        ({"output_name": "a/b"}, "output_name 'a/b'"),
        ({"sample_prompts": "prompts.txt"}, "sample_prompts prompts.txt: no such file"),
    ],
)
@pytest.mark.parametrize("detach", [False, True])
def test_user_errors_leave_no_run_folder(
    config: Path, tmp_path: Path, change: dict[str, Any], message: str, detach: bool
) -> None:
    import tomllib

    import tomli_w

    (tmp_path / "m.ckpt").write_bytes(b"pickle")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 16)
    values = tomllib.loads(config.read_text(encoding="utf-8"))
    for key, value in change.items():
        if value is None:
            values.pop(key)
        else:
            values[key] = value
    config.write_text(tomli_w.dumps(values), encoding="utf-8")
    result = tuilora("train", str(config), *(["--detach"] if detach else []), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "elsewhere").exists()  # no run folder, no parent folder


def test_a_resume_check_needs_no_torch(config: Path, tmp_path: Path) -> None:
    root = finished_run(config)
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    probe = (
        "import sys\nfrom tuilora.cli import main\n"
        f"try:\n    main(['train', '--resume', {str(root)!r}])\n"
        "except SystemExit as exc:\n    print(exc.code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert "finished at step 8: nothing to resume" in result.stderr
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == before
    listed = json.loads(tuilora("runs", str(root), "--format", "json", cwd=tmp_path).stdout)
    assert listed[0]["state"] == "finished"


def test_debug_anywhere_keeps_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert split_debug(["advise", "--debug", "--", "--debug"]) == (
        True,
        ["advise", "--", "--debug"],
    )
    for argv in (
        ["advise", "--subject", "nonsense", "--debug"],
        ["--debug", "advise", "--subject", "nonsense"],
        ["advise", "--debug", "--subject", "nonsense"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("tuilora: error:")
    with pytest.raises(SystemExit) as exited:
        main(["advise", "--no-such-flag", "--debug"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["advise", "--subject", "concept", "--images", "20", "--format", "json", "--debug"])
    assert exited.value.code == 0
    assert json.loads(capsys.readouterr().out)["plan"]["images"] == 20
    with pytest.raises(SystemExit) as exited:
        main(["advise", "--subject", "nonsense"])  # without --debug: one line, no traceback
    assert exited.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_demo_out_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep", encoding="utf-8")
    for extra in ([], ["--force"]):
        with pytest.raises(SystemExit) as exited:
            main(["demo", "--out", str(folder), "--no-progress", *extra])
        assert exited.value.code == 2
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]
    with pytest.raises(UserError, match="not empty"):
        from tuilora.engine.demo import demo_folder

        (tmp_path / "old-demo").mkdir()
        (tmp_path / "old-demo" / "demo.toml").write_text("", encoding="utf-8")
        demo_folder(str(tmp_path / "old-demo"), force=False)
    assert demo_folder(str(tmp_path / "old-demo"), force=True) == tmp_path / "old-demo"
