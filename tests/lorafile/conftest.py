"""LoRA and checkpoint files written with numpy and tuilora's own writer (no torch)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuilora.lorafile.safetensors_write import PlannedTensor, write_safetensors

CODES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}

WriteFile = Callable[..., Path]


def planned(tensors: Mapping[str, Any]) -> list[PlannedTensor]:
    out = []
    for name, value in tensors.items():
        array = np.array(value, copy=True, order="C")  # ascontiguousarray makes 0-d 1-d
        out.append(
            PlannedTensor(name, CODES[array.dtype], tuple(array.shape), lambda a=array: a.tobytes())
        )
    return out


@pytest.fixture()
def write_file(tmp_path: Path) -> WriteFile:
    def write(
        name: str, tensors: Mapping[str, Any], metadata: dict[str, str] | None = None
    ) -> Path:
        return write_safetensors(tmp_path / name, planned(tensors), metadata)

    return write


def _lora_module(
    rng: np.random.Generator, out: int, inp: int, rank: int, alpha: float, kernel: int = 0
) -> dict[str, Any]:
    """One plain LoRA module's parameters (4-D for a conv with ``kernel``)."""
    if kernel:
        down = rng.normal(size=(rank, inp, kernel, kernel))
        up = rng.normal(size=(out, rank, 1, 1))
    else:
        down = rng.normal(size=(rank, inp))
        up = rng.normal(size=(out, rank))
    return {
        "lora_down.weight": down.astype(np.float16),
        "lora_up.weight": up.astype(np.float16),
        "alpha": np.array(alpha, dtype=np.float32),
    }


def _flatten(modules: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        f"{name}.{param}": value
        for name, params in modules.items()
        for param, value in params.items()
    }


@pytest.fixture()
def lora_module() -> Callable[..., dict[str, Any]]:
    return _lora_module


@pytest.fixture()
def flatten() -> Callable[[Mapping[str, Mapping[str, Any]]], dict[str, Any]]:
    return _flatten
