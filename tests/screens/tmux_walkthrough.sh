#!/usr/bin/env bash
# Walk the whole wizard as a user would: tmux at 80x24, NO_COLOR, keyboard only.
# Captures every step's screen as text into OUT (default: a new temp dir), saves the
# sd-scripts TOML and the command script, and with TRAIN=1 also presses "Train now".
#
#   tests/screens/tmux_walkthrough.sh [OUT]      PYTHON=... to pick the interpreter
#                                                SIZE=120x40 for another terminal size
#
# Exit 0 when every expected screen appeared and the TOML was written.
set -euo pipefail

PYTHON=${PYTHON:-python3}
OUT=${1:-$(mktemp -d)}
WORK=$(mktemp -d)
SESSION="tuilora-walk-$$"
APP=${TUILORA_APP:-"$PYTHON -m tuilora"}  # `tuilora` with no arguments
mkdir -p "$OUT"

cleanup() { tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# A small dataset (6 images, one without a caption) and a model file (header only).
PYTHONPATH="$(dirname "$0")/.." "$PYTHON" - "$WORK" <<'PY'
import sys
from pathlib import Path
from PIL import Image
folder = Path(sys.argv[1]) / "data" / "10_aria"
folder.mkdir(parents=True)
for i in range(6):
    Image.new("RGB", (512, 512 + 128 * (i % 2)), (40 * i, 90, 160)).save(folder / f"img{i}.png")
    if i:
        (folder / f"img{i}.txt").write_text("aria, 1girl, wings, armor", encoding="utf-8")
# An SD1.5 checkpoint's header over sparse data: the wizard reads only the header.
from stub_models import header_only_model
header_only_model(Path(sys.argv[1]) / "model.safetensors")
PY

SIZE=${SIZE:-80x24}
tmux new-session -d -s "$SESSION" -x "${SIZE%x*}" -y "${SIZE#*x}" -c "$WORK" \
    "env NO_COLOR=1 XDG_CONFIG_HOME='$WORK/config' $APP; echo \"EXITED \$?\"; sleep 30"

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

keys() { for key in "$@"; do tmux send-keys -t "$SESSION" "$key"; sleep 0.15; done; }
type_text() {  # one character at a time, at a fast typist's pace
    local text=$1 i
    for ((i = 0; i < ${#text}; i++)); do
        tmux send-keys -t "$SESSION" -l "${text:i:1}"
        sleep 0.03
    done
    sleep 0.3
}
capture() { sleep 0.4; screen > "$OUT/$1.txt"; echo "captured $1"; }

wait_for "New LoRA";                       capture 01-welcome
keys Enter;            wait_for "step 1/8"; capture 02-subject
keys Enter;            wait_for "Category"  # Enter on a single-choice step goes on
keys Down Down;        wait_for "C: Elaborate"; capture 03-category
keys Enter;            wait_for "About the subject"
keys Space;            wait_for "[x]";      capture 04-details
keys C-n;              wait_for "Dataset folder"
type_text "data";      keys Enter;          wait_for "Scanned data"; capture 05-dataset
keys C-n;              wait_for "Hardware and base model"
type_text "12";        keys Tab Tab Tab Tab
type_text "model.safetensors"; keys Tab;    type_text "aria"; capture 06-hardware
keys C-n;              wait_for "Sample prompts"; capture 07-samples
keys C-n;              wait_for "Review and edit"; capture 08-review
keys Down Down Down Down Down Down Down Down Down Down Down Down Down Down Enter C-u  # batch
type_text "4"; keys Enter
wait_for "*train_batch_size";              capture 09-review-edited
keys F1;               wait_for "Keys: Review"; capture 10-review-help
keys Escape; sleep 1   # a key right after Esc would read as Alt+key
keys C-n;              wait_for "Save or train"
keys C-s;              wait_for "Saved sd-scripts TOML"; capture 11-saved
keys Down Down Enter;  sleep 0.3; keys C-s; wait_for "Saved sd-scripts command"
keys C-o;              wait_for "Copy these lines"; capture 12-command
keys Escape;           wait_for "Save or train"; sleep 1
if [ "${TRAIN:-0}" = "1" ]; then
    keys C-t
    wait_for "tuilora watch" || wait_for "failed"
    capture 13-train
fi
keys F1;               wait_for "Keys";     capture 14-help
keys Escape; sleep 1
keys C-q;              wait_for "EXITED 0"

"$PYTHON" - "$WORK/aria.sdscripts.toml" <<'PY'
import os, sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
assert data["output_name"] == "aria" and data["train_batch_size"] == 4, data
# written absolute, so sd-scripts finds it from any folder
assert data["train_data_dir"] == os.path.join(os.path.dirname(sys.argv[1]), "data"), data
print("saved", sys.argv[1], "with", len(data), "keys")
PY
head -1 "$WORK/aria.sh" | grep -qxF '#!/usr/bin/env bash'
test -x "$WORK/aria.sh"
echo "screens in $OUT"
