#!/usr/bin/env bash
# One GPU session, in one go (issue 19 item 5): install what a bare CUDA machine lacks from
# a carried wheelhouse (no network there), then run the GPU benchmark with a time limit.
#
# Build the wheelhouse beforehand, on a machine with network, from the repository root:
#
#   pip download -d wheelhouse --only-binary=:all: --python-version 3.11 \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#       -c .ci/constraints.txt torch==2.13.0 \
#       diffusers transformers accelerate safetensors peft prodigyopt dadaptation \
#       bitsandbytes lion-pytorch tensorboard numpy pillow
#   pip wheel -w wheelhouse --no-deps .          # tuilora itself
#
# (torch's CUDA wheels come from the default index; if the card needs another CUDA build,
# add --index-url https://download.pytorch.org/whl/cu12X to the torch line.) Then carry
# `wheelhouse/` with the tree and run on the GPU machine:
#
#   bash benchmarks/gpu_run.sh [TIMEOUT_SECONDS] [extra gpu_bench.py arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
limit="${1:-480}"
shift || true
if [[ ! -d wheelhouse ]]; then
    echo "gpu_run.sh: wheelhouse/ is missing: build it as the header of this script says" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m venv /tmp/tuilora-gpu-venv
. /tmp/tuilora-gpu-venv/bin/activate
pip install --quiet --no-index --find-links wheelhouse torch==2.13.0
pip install --quiet --no-index --find-links wheelhouse -c .ci/constraints.txt tuilora \
    diffusers transformers accelerate safetensors peft prodigyopt dadaptation bitsandbytes \
    tensorboard numpy pillow
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
out="${OUT:-.}/gpu_bench.txt"
timeout --signal=INT --kill-after=30 "$limit" \
    python benchmarks/gpu_bench.py --work /tmp "$@" 2>&1 | tee "$out"
