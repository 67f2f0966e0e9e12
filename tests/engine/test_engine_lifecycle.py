"""Issue 15 end to end with real trainer processes: a stop before step 1, a resume that
``runs`` and ``stop`` see, resumes that cannot start and leave the run as it was, and what
``train`` prints (tuilora's notices and phases; the libraries' noise goes to train.log)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tuilora.config import to_toml_dict
from tuilora.errors import UserError
from tuilora.runs import statedir
from tuilora.runs.events import read_events
from tuilora.runs.preflight import check_training
from tuilora.runs.status import run_status
from tuilora.runs.trainer import find_trainer
from tuilora.runs.watch import stop_run


def tuilora(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuilora", *args], capture_output=True, text=True, timeout=timeout
    )


def write(config: Any, path: Path) -> Path:
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    return path


def wait_until(predicate: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def detach(*args: str) -> int:
    """``train --detach``; the pid it reports, which the run folder already holds."""
    result = tuilora("train", *args, "--detach", timeout=120)
    assert result.returncode == 0, result.stderr
    pid = int(result.stderr.split("(pid ")[1].split(")")[0])
    return pid


@pytest.mark.slow
def test_stop_before_step_1_then_a_resume_seen_by_runs_and_stop(
    make_config: Any, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    config = write(make_config(run, max_train_epochs=500), tmp_path / "c.toml")
    # 1. Detach returns once the pid is written: stop works at once, before step 1.
    pid = detach(str(config))
    assert find_trainer(run).pid == pid  # verified: lock held, tuilora's command line
    assert run_status(run).state == "loading"
    assert stop_run(run, out=io.StringIO()) == 0
    status = run_status(run)
    assert (status.state, status.step, status.resumable_step) == ("stopped", 0, None)
    assert read_events(run / "events.jsonl")[-1]["message"].startswith("stopped before the first")
    with pytest.raises(UserError, match="stopped before its first step: nothing to resume"):
        check_training(None, resume=str(run))
    # 2. It never trained, so the same command starts it again without --force.
    detach(str(config))
    wait_until(lambda: run_status(run).step >= 1)
    assert stop_run(run, out=io.StringIO()) == 0
    stopped = run_status(run)
    assert stopped.state == "stopped" and stopped.resumable_step == stopped.step >= 1
    before = {name: (run / name).read_bytes() for name in ("events.jsonl", "pid")}
    # 3. --resume rewrites the pid: runs and stop see the live trainer at once ...
    pid = detach("--resume", str(run))
    listed = json.loads(tuilora("runs", str(run), "--format", "json").stdout)[0]
    assert (listed["state"], listed["pid"]) == ("loading", pid)
    assert stop_run(run, out=io.StringIO()) == 0  # ... and a stop before its first step
    # leaves the run exactly as it was: same events, same pid file, same state.
    assert {name: (run / name).read_bytes() for name in before} == before
    assert run_status(run).state == "stopped" and run_status(run).step == stopped.step


@pytest.mark.slow
def test_a_resume_that_fails_after_loading_leaves_the_run_as_it_was(
    make_config: Any, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    config = write(make_config(run, max_train_epochs=500), tmp_path / "c.toml")
    detach(str(config))
    wait_until(lambda: run_status(run).step >= 1)
    assert stop_run(run, out=io.StringIO()) == 0
    saved = statedir.newest_state(run / "state")
    assert saved is not None
    weights = load_file(str(saved.path / "network.safetensors"))
    save_file(
        {k: (v[..., :1] if v.dim() else v).contiguous() for k, v in weights.items()},
        str(saved.path / "network.safetensors"),
    )
    before = {
        p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "train.log"
    }
    result = tuilora("train", "--resume", str(run), "--no-progress")
    assert result.returncode == 2, result.stderr
    assert "the saved state does not fit" in result.stderr.splitlines()[-1]
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "train.log"}
    assert after == before
    assert run_status(run).state == "stopped"


@pytest.mark.slow
def test_train_prints_its_notices_and_phases_and_logs_the_libraries(
    make_config: Any, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    prodigy = ["decouple=True", "weight_decay=0.01", "d_coef=2", "use_bias_correction=True"]
    config = make_config(
        run,
        max_train_epochs=1,
        optimizer_type="Prodigy",
        optimizer_args=prodigy,
        learning_rate=1.0,
        unet_lr=1.0,
        text_encoder_lr=1.0,
        mixed_precision="fp16",
    )
    result = tuilora("train", str(write(config, tmp_path / "c.toml")))
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "tuilora: fp16 mixed precision needs a GPU: training in fp32 on the CPU" in err
    assert "loading the model" in err and "caching latents" in err
    assert "Using decoupled weight decay" not in err  # Prodigy's print() ...
    assert "Using decoupled weight decay" in (run / "train.log").read_text()  # ... is logged
    assert err.rstrip().endswith(f"done: {run / 't.safetensors'}")
    events = read_events(run / "events.jsonl")
    phases = [e["name"] for e in events if e["type"] == "phase"]
    assert phases[:2] == ["starting", "loading libraries"]
    assert {"loading the model", "caching latents"} <= set(phases)
    latents = [e for e in events if e["type"] == "phase" and e["name"] == "caching latents"]
    assert latents[-1]["done"] == latents[-1]["total"] == 6
    info = [e for e in events if e["type"] == "info"]
    assert info and info[0]["id"] == "cpu-precision"
    assert all(e["elapsed_s"] >= 0 for e in events)


def test_sample_says_how_long_it_takes_and_keeps_cpu_runs_short(
    sampled_run: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuilora.engine import sample_time
    from tuilora.engine.cli_sample import run_sample

    options = {"run": str(sampled_run), "grid": "unet-te", "unet_strengths": "0,1"}
    options["te_strengths"] = "1"
    monkeypatch.setattr(sample_time, "CPU_BUDGET_S", 0.001)  # a very slow CPU, in effect
    assert run_sample(options) == 0
    err = capfd.readouterr().err
    assert "on the CPU: 8 steps per image instead of 3" not in err  # never more than asked
    assert "2 images × 3 steps on cpu: about" in err  # the run's prompt asks for --s 3
    assert "sampling on the CPU is slow" in err
    assert "cell 2/2" in err
    prompt = "tuidemo, red circle --d 11"  # no --s: the default 30 steps, lowered on a CPU
    assert run_sample({**options, "prompt": prompt}) == 0
    err = capfd.readouterr().err
    assert "on the CPU: 8 steps per image instead of 30" in err
    assert "2 images × 8 steps on cpu" in err
    assert run_sample({**options, "prompt": prompt, "steps": "4"}) == 0  # --steps: as given
    assert "2 images × 4 steps on cpu" in capfd.readouterr().err


def test_cell_progress_and_cpu_steps(capfd: pytest.CaptureFixture[str]) -> None:
    from tuilora.engine.sample_time import CellProgress, Timing, cpu_steps

    now = [0.0]
    progress = CellProgress(3, 30.0, clock=lambda: now[0])
    progress("a")  # before any cell is done: the estimate
    now[0] = 12.0
    progress("b")  # then the pace of the cells done: 12 s each
    progress.close()
    lines = capfd.readouterr().err.splitlines()
    assert lines == ["cell 1/3: a, about 0:30 left", "cell 2/3: b, about 0:24 left"]
    timing = Timing(per_step_s=1.0, per_image_s=0.5)
    assert cpu_steps(timing, 10, 30) == 9  # (100 s / 10 cells - 0.5) / 1 s per step
    assert cpu_steps(timing, 1000, 30) == 8  # never below 8
    assert cpu_steps(timing, 1, 5) == 5  # never above what was asked


@pytest.mark.slow
def test_a_model_the_loader_refuses_ends_failed_to_start_and_blocks_nothing(
    make_config: Any, tmp_path: Path
) -> None:
    model = tmp_path / "damaged"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")  # passes the checks
    (model / "text_encoder").mkdir()
    (model / "text_encoder" / "config.json").write_text("{}", encoding="utf-8")
    run = tmp_path / "run"
    config = write(make_config(run, pretrained_model_name_or_path=str(model)), tmp_path / "c.toml")
    result = tuilora("train", str(config), "--no-progress")
    # The loader names the folder in one line (exit 2, no traceback); the run that opened
    # its folder ends failed-to-start.
    assert result.returncode == 2, result.stderr
    assert "damaged: cannot load this diffusers folder" in result.stderr
    assert "Traceback" not in result.stderr
    status = run_status(run)
    assert status.state == "failed-to-start" and not status.trained
    plan = check_training(str(config))  # the next try needs no --force
    assert plan.replace is not None and "never trained a step (failed-to-start)" in plan.notices[0]


def test_an_unexpected_error_before_step_1_ends_failed_to_start_with_one_line(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A bug (not a user mistake) while building: exit 1, one line on the console, the
    traceback in train.log, and the run ends failed-to-start so the next try needs no --force."""
    from tuilora.engine import loop
    from tuilora.engine.train import run_training

    def broken_build(self: Any) -> Any:
        raise RuntimeError("simulated failure inside the training stack")

    monkeypatch.setattr(loop.Trainer, "build", broken_build)
    run = tmp_path / "run"
    config = write(make_config(run), tmp_path / "c.toml")
    assert run_training(str(config), progress=False) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("training ended: failed-to-start: ")
    assert "simulated failure" in last and "Traceback" not in last
    assert "Traceback" in (run / "train.log").read_text(encoding="utf-8")
    assert run_status(run).state == "failed-to-start"
    assert check_training(str(config)).replace is not None  # replaced without --force
