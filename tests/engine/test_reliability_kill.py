"""Kill at any moment, lose at most one state interval (issue 17, item 1).

``tuilora train`` on the tiny model is killed with SIGKILL at 20 moments drawn from a seeded
RNG: while it loads (before any state), during the first state save, during steps, during
snapshot saves and during state saves (file writes, the commit rename, the pruning of old
states). After each kill: every ``.safetensors`` in the run loads, ``config.toml`` parses,
``events.jsonl`` parses (a torn last line, which the test also makes on purpose, is
tolerated, and the resume cuts it), the newest complete state loads; then ``--resume``
continues from exactly that state — or, with no state yet, says so and proposes starting
over, which works — and, after the last kill, produces the final LoRA. Steps done twice
(before a kill and again after the resume) must give the same loss.

Each trainer but the first is a fork of ``kill_server.py`` (tuilora's CLI, imports paid once);
the first is the real ``python -m tuilora train`` command. The counts are printed (-s).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import tomli_w
from safetensors import safe_open

from tuilora.config import load_toml, to_toml_dict
from tuilora.engine.state import load_state
from tuilora.runs import statedir
from tuilora.runs.events import EventReader, parse_line, read_events
from tuilora.runs.rundir import RunDir

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork, /proc and SIGKILL")

SEED = 1717
KILLS = 20
SERVER = Path(__file__).with_name("kill_server.py")
TORN = b'{"t": 1.0, "type": "step", "step": 9'  # what a write cut by a crash leaves


@dataclass
class Tally:
    tried: int = 0
    survived: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    torn_repaired: int = 0
    max_steps_lost: int = 0
    steps_redone_equal: int = 0
    resumes: int = 0

    def count(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


class Server:
    """The fork server: one ``tuilora train`` child at a time."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def start(self, args: list[str], log: Path, kill: dict[str, Any] | None = None) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"args": args, "log": str(log), "kill": kill}) + "\n")
        self.proc.stdin.flush()
        return int(self._reply()["pid"])

    def wait(self) -> int:
        return int(self._reply()["code"])

    def _reply(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        assert line, "the fork server died"
        return dict(json.loads(line))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def loads(path: Path) -> None:
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
            handle.get_tensor(key)


def step_count(run: RunDir) -> int:
    try:
        return run.events.read_bytes().count(b'"type": "step"')
    except FileNotFoundError:
        return 0


@dataclass
class AfterKill:
    newest_state: int | None
    last_step: int
    torn: bool


def inspect(run: RunDir) -> AfterKill:
    """What must hold after any kill: readable files, a parseable event log, a loadable
    newest state."""
    for path in run.root.rglob("*.safetensors"):
        hidden = [part for part in path.relative_to(run.root).parts if part.startswith(".")]
        if not hidden:  # hidden: a killed save's staging, removed at the next start
            loads(path)
    if run.config.exists():
        tomllib.loads(run.config.read_text(encoding="utf-8"))
        load_toml(run.config)
    data = run.events.read_bytes() if run.events.exists() else b""
    lines = data.split(b"\n")
    torn = lines.pop() != b""  # the part after the last newline
    for line in lines:
        assert parse_line(line) is not None, line
    steps = [e["step"] for e in (parse_line(line) for line in lines) if e and e["type"] == "step"]
    saved = statedir.newest_state(run.state)
    if saved is not None:
        assert load_state(run.state).counters.step == saved.step
    return AfterKill(saved.step if saved else None, steps[-1] if steps else 0, torn)


def state_plan(rng: random.Random) -> dict[str, Any]:
    return rng.choice(
        [
            {"op": "fsync", "where": "/state/.", "nth": rng.randint(1, 6), "when": "before"},
            {"op": "rename", "where": ".tmp ->", "nth": rng.randint(1, 2), "when": "before"},
            {"op": "rename", "where": ".tmp ->", "nth": rng.randint(1, 2), "when": "after"},
            {"op": "rmtree", "where": ".trash", "nth": 1, "when": rng.choice(["before", "after"])},
        ]
    )


def snapshot_plan(rng: random.Random) -> dict[str, Any]:
    return rng.choice(
        [
            {"op": "fsync", "where": "/.t-0", "nth": 1, "when": "before"},
            {"op": "replace", "where": "/t-0", "nth": 1, "when": rng.choice(["before", "after"])},
        ]
    )


def check_losses_redone(run: RunDir, tally: Tally) -> None:
    """A step trained twice (before a kill and after the resume) gives the same loss."""
    seen: dict[int, float] = {}
    for event in read_events(run.events):
        if event["type"] == "start" and not event.get("resumed_from_step"):
            seen = {}  # a run started over
        if event["type"] != "step":
            continue
        step, loss = event["step"], event["loss"]
        if step in seen:
            assert seen[step] == loss, (step, seen[step], loss)
            tally.steps_redone_equal += 1
        seen[step] = loss


@pytest.mark.slow
def test_sigkill_at_20_moments_loses_at_most_one_state_interval(
    make_config: Any, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    run = RunDir(tmp_path / "run", "t")
    config = make_config(
        run.root,
        max_train_epochs=20,  # 3 steps an epoch: more than twenty kills can use up
        cache_latents_to_disk=True,
        save_state_every_n_minutes=0.0002,  # 12 ms: a state after every step
        save_every_n_epochs=1,
        save_last_n_epochs=2,
    )
    config_path = tmp_path / "c.toml"
    config_path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tally = Tally()
    log = tmp_path / "train-console.log"
    resume = ["train", "--resume", str(run.root), "--no-progress"]

    def start_over() -> list[str]:
        """No state yet: --resume says so and proposes the command that starts over."""
        result = subprocess.run(
            [sys.executable, "-m", "tuilora", *resume],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        said = result.stderr
        assert result.returncode == 2, said
        assert "\n" not in said.strip() and "Traceback" not in said
        if not run.config.exists():  # killed before the run folder had its config
            assert "no such run folder" in said or "not a tuilora run folder" in said, said
            return ["train", str(config_path), "--no-progress"]
        assert "nothing to resume" in said or "no saved training state" in said, said
        proposed = re.search(r"`tuilora train (\S+) --force`", said)
        assert proposed is not None and Path(proposed.group(1)) == run.config, said
        return ["train", proposed.group(1), "--force", "--no-progress"]

    # 1. The real command, killed at a random moment while it loads: no state yet.
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuilora", "train", str(config_path), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    moment = time.monotonic() + rng.uniform(0.5, 3.0)
    while time.monotonic() < moment and not (
        run.events.exists() and b'"type": "start"' in run.events.read_bytes()
    ):
        time.sleep(0.01)  # at the drawn moment, or as training begins: before any state
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    tally.tried += 1
    after = inspect(run)
    assert after.newest_state is None
    tally.count("while loading, before any state")
    args = start_over()
    tally.survived += 1

    server = Server(env)
    try:
        # 2. The first state save of the run, killed half-way: still no complete state.
        note = tmp_path / "note"
        first = {"op": "fsync", "where": "/state/.", "nth": rng.randint(1, 5), "when": "before"}
        server.start(args, log, {**first, "note": str(note)})
        assert server.wait() == -signal.SIGKILL, log.read_text()
        tally.tried += 1
        after = inspect(run)
        assert after.newest_state is None and after.last_step >= 1
        tally.count("during the first state save")
        args = start_over()
        tally.survived += 1

        kinds = ["steps", "state", "snapshot"] * 6
        rng.shuffle(kinds)
        expected_resume: int | None = None
        resumes = 0  # since the run last started over
        for number, kind in enumerate(kinds):
            if expected_resume is not None:
                args = resume
            plan: dict[str, Any] | None = None
            if kind == "state":
                plan = state_plan(rng)
            elif kind == "snapshot":
                plan = snapshot_plan(rng)
            note.unlink(missing_ok=True)
            before = step_count(run)
            # What this session appends starts after the last whole line (the resume cuts a
            # torn one).
            offset = run.events.read_bytes().rfind(b"\n") + 1
            pid = server.start(args, log, {**plan, "note": str(note)} if plan else None)
            if kind == "steps":
                wanted = before + rng.randint(1, 2)
                deadline = time.monotonic() + 180
                while step_count(run) < wanted:
                    assert time.monotonic() < deadline, log.read_text()[-2000:]
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.3))
                os.kill(pid, signal.SIGKILL)
            code = server.wait()
            assert code == -signal.SIGKILL, (kind, plan, code, log.read_text()[-3000:])
            tally.tried += 1
            after = inspect(run)
            landed = note.read_text(encoding="utf-8").split()[1:] if note.exists() else []
            tally.count(f"{kind} ({landed[0]})" if landed else kind)
            # The session continued from the newest complete state left by the kill before
            # (a session killed while it cleared the leftovers of the last one wrote no start).
            session = list(EventReader(run.events, offset=offset).iter_new())
            starts = [e for e in session if e["type"] == "start"]
            if expected_resume is not None and starts:
                assert [e["resumed_from_step"] for e in starts] == [expected_resume]
                notices = [e for e in session if e.get("id") == "takeover"]
                assert any("takes the run over" in e["message"] for e in notices), session[:5]
                resumes += 1
                tally.resumes += 1
            assert after.newest_state is not None, (kind, plan)
            lost = after.last_step - after.newest_state
            assert 0 <= lost <= 2, (kind, plan, after)  # one state interval, plus the save
            tally.max_steps_lost = max(tally.max_steps_lost, lost)
            expected_resume = after.newest_state
            if after.torn:  # a kill that cut a line itself
                tally.torn_repaired += 1
            elif number % 6 == 5:
                with run.events.open("ab") as handle:  # a crash mid-write leaves this
                    handle.write(TORN)
                tally.torn_repaired += 1
            tally.survived += 1

        # The last resume runs to the end.
        server.start(resume, log)
        assert server.wait() == 0, log.read_text()[-3000:]
    finally:
        server.close()
    events = read_events(run.events)
    assert events[-1]["type"] == "end" and events[-1]["status"] == "finished"
    assert run.events.read_bytes().endswith(b"\n")
    infos = [e["message"] for e in events if e["type"] == "info"]
    assert sum("torn last line" in m for m in infos) == tally.torn_repaired
    loads(run.final)
    assert statedir.leftovers(run.state) == [] and len(statedir.complete_states(run.state)) <= 2
    assert run.leftover_temp_files() == []
    check_losses_redone(run, tally)
    total = 3 * 20
    assert sorted({e["step"] for e in events if e["type"] == "step"}) == list(range(1, total + 1))
    print(f"\nkills survived {tally.survived}/{tally.tried}: {json.dumps(tally.kinds)}")
    print(
        f"torn lines repaired {tally.torn_repaired}, max steps lost {tally.max_steps_lost},"
        f" steps redone with equal loss {tally.steps_redone_equal}, resumes checked"
        f" {tally.resumes} (+1 to the end)"
    )
    assert tally.tried == tally.survived == KILLS
