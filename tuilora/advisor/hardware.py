"""Read the GPU's memory from ``nvidia-smi`` (no torch: ``advise`` must stay light)."""

from __future__ import annotations

import shutil
import subprocess

_QUERY = ["--query-gpu=memory.total", "--format=csv,noheader,nounits"]


def detect_vram_gb(timeout: float = 5.0) -> float | None:
    """The first GPU's total memory in GB, or None when there is no readable NVIDIA GPU."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        result = subprocess.run(
            [binary, *_QUERY], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return parse_memory_mib(result.stdout)


def parse_memory_mib(output: str) -> float | None:
    """nvidia-smi prints one MiB figure per GPU; the first card is the one trained on."""
    for line in output.splitlines():
        try:
            mib = float(line.strip())
        except ValueError:
            continue
        if mib > 0:
            return round(mib / 1024, 1)
    return None
