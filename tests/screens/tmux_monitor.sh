#!/usr/bin/env bash
# The monitor as a user sees it: tmux at 80x24, NO_COLOR, keyboard only.
#
# A stand-in trainer (a small Python process in its own session, like a detached run)
# writes a recorded run's events a few lines at a time and, on SIGINT, writes an "end:
# stopped" event and exits, as `tuilora train` does after saving. `tuilora watch` follows
# it live, toggles the log scale, stops it (s, then y) and leaves (q); then it shows a
# finished run. Every screen is captured as text into OUT (default: a new temp dir).
#
#   tests/screens/tmux_monitor.sh [OUT]      PYTHON=... to pick the interpreter
#
# Exit 0 when every expected screen appeared and the monitor exited with 0.
set -euo pipefail

PYTHON=${PYTHON:-python3}
OUT=${1:-$(mktemp -d)}
HERE=$(cd "$(dirname "$0")" && pwd)
FIXTURES="$HERE/../fixtures/events"
WORK=$(mktemp -d)
SESSION="tuilora-monitor-$$"
TRAINER_PID=""
mkdir -p "$OUT" "$WORK/runs/aria" "$WORK/runs/done"
cp "$FIXTURES/healthy.jsonl" "$WORK/runs/done/events.jsonl"

cleanup() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    if [ -n "$TRAINER_PID" ]; then kill "$TRAINER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The stand-in trainer: 120 events at once, then one every 0.1 s; SIGINT ends it "stopped".
# Like tuilora train it holds the run's lock and runs as `tuilora` (what stop verifies).
mkdir -p "$WORK/bin"
cat > "$WORK/bin/tuilora" <<'PY'
import fcntl, json, os, signal, sys, time
from pathlib import Path
lines = Path(sys.argv[1]).read_text(encoding="utf-8").splitlines(keepends=True)[:-1]
run = Path(sys.argv[2])
lock = open(run / "lock", "a")
fcntl.flock(lock, fcntl.LOCK_EX)
(run / "pid").write_text(str(os.getpid()), encoding="utf-8")
events = (run / "events.jsonl").open("a", encoding="utf-8")
step = 0
shift = time.time() - json.loads(lines[120])["t"]  # recorded times, replayed as if live
def stop(*_):
    end = {"t": time.time(), "type": "end", "status": "stopped", "step": step,
           "final": str(run / f"aria-step{step:08d}.safetensors"),
           "message": "stopped on request: state and LoRA saved"}
    events.write(json.dumps(end) + "\n")
    events.close()
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
for index, line in enumerate(lines):
    event = json.loads(line)
    event["t"] = round(event["t"] + shift, 3)
    events.write(json.dumps(event) + "\n")
    events.flush()
    step = event.get("step", step)
    if index >= 120:
        time.sleep(0.1)
time.sleep(600)
PY
setsid "$PYTHON" "$WORK/bin/tuilora" "$FIXTURES/healthy.jsonl" "$WORK/runs/aria" &
TRAINER_PID=$!

tmux new-session -d -s "$SESSION" -x 80 -y 24 -c "$WORK" \
    "env NO_COLOR=1 $PYTHON -m tuilora watch runs/aria; echo \"EXITED \$?\"; sleep 30"

screen() { tmux capture-pane -p -t "$SESSION"; }

wait_for() {  # wait_for TEXT: poll the screen for up to 20 s
    for _ in $(seq 1 100); do
        if screen | grep -qF -- "$1"; then return 0; fi
        sleep 0.2
    done
    echo "timed out waiting for: $1" >&2
    screen >&2
    return 1
}

capture() { sleep 0.3; screen > "$OUT/$1.txt"; echo "captured $1"; }

wait_for "RUNNING"
wait_for "q leaves the monitor: training keeps running"
capture live
first=$(grep -o 'step [0-9]*/600' "$OUT/live.txt" | head -1)
sleep 1.5
capture live_later
later=$(grep -o 'step [0-9]*/600' "$OUT/live_later.txt" | head -1)
if [ "$first" = "$later" ]; then echo "the monitor did not follow the run ($first)" >&2; exit 1; fi

tmux send-keys -t "$SESSION" l
wait_for "log scale"
capture log_scale

tmux send-keys -t "$SESSION" F1
wait_for "Keys: monitor of aria"
capture help
tmux send-keys -t "$SESSION" Escape
sleep 1  # a key right after Esc would read as Alt+key

tmux send-keys -t "$SESSION" s
wait_for "Stop training aria?"
capture stop_dialog
tmux send-keys -t "$SESSION" y
wait_for "STOPPED"
wait_for "stopped on request"
wait_for "continue with: tuilora train --resume runs/aria"
capture stopped

tmux send-keys -t "$SESSION" q
wait_for "EXITED 0"
capture left

tmux kill-session -t "$SESSION"
tmux new-session -d -s "$SESSION" -x 80 -y 24 -c "$WORK" \
    "env NO_COLOR=1 $PYTHON -m tuilora watch runs/done; echo \"EXITED \$?\"; sleep 30"
wait_for "FINISHED"
wait_for "final healthy.safetensors"
capture finished
tmux send-keys -t "$SESSION" q
wait_for "EXITED 0"
echo "all monitor screens captured in $OUT"
