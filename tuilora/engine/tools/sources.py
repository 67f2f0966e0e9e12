"""Models and LoRAs as torch tensors, read one tensor at a time.

``ModelSource`` wraps a model's key table (``lorafile.modelkeys``) and reads each weight on
demand from its safetensors file with plain reads, so a tool holds one layer at a time,
not the model. A ``.ckpt`` (only with ``--allow-pickle``) has no lazy form: its state dict
is loaded once, weights-only and memory-mapped where torch can (the engine's loader), and
served from memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from tuilora.engine.weights import TORCH_DTYPES, load_pickled_checkpoint
from tuilora.errors import UserError
from tuilora.lorafile.modelkeys import ModelKeys, Slot, keys_from_slots, open_model_keys
from tuilora.lorafile.safetensors_io import SafetensorsFile
from tuilora.modelfile.describe import PICKLE_SUFFIXES, refuse_pickle

DTYPE_CODES = {dtype: code for code, dtype in TORCH_DTYPES.items()}
#: sd-scripts' save_precision names.
PRECISIONS: dict[str, str] = {"float": "F32", "fp16": "F16", "bf16": "BF16"}


def tensor_from_bytes(buffer: bytearray, dtype: str, shape: tuple[int, ...]) -> torch.Tensor:
    if dtype not in TORCH_DTYPES:
        raise UserError(f"dtype {dtype} is not one tuilora can compute with")
    if not buffer:
        return torch.empty(shape, dtype=TORCH_DTYPES[dtype])
    return torch.frombuffer(buffer, dtype=TORCH_DTYPES[dtype]).reshape(shape)


def tensor_bytes(tensor: torch.Tensor) -> Any:
    """The raw little-endian bytes of a tensor (a numpy view; no copy when contiguous)."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy()


def dtype_code(tensor: torch.Tensor) -> str:
    return DTYPE_CODES[tensor.dtype]


class ModelSource:
    """A model's weights by key (see ``ModelKeys``), read lazily."""

    def __init__(self, keys: ModelKeys, state: dict[str, torch.Tensor] | None = None) -> None:
        self.keys = keys
        self._state = state
        self._files: dict[Path, SafetensorsFile] = {}

    @property
    def family(self) -> str:
        return self.keys.family

    def file(self, path: Path) -> SafetensorsFile:
        if path not in self._files:
            self._files[path] = SafetensorsFile(path)
        return self._files[path]

    def stored(
        self, file: Path | None, key: str, dtype: str, shape: tuple[int, ...]
    ) -> torch.Tensor:
        """One stored tensor, whole, in its stored dtype (``file`` None: the .ckpt's state)."""
        if file is None:
            if self._state is None:
                raise KeyError(key)
            return self._state[key]
        return tensor_from_bytes(self.file(file).read_bytes(key), dtype, shape)

    def read(self, slot: Slot) -> torch.Tensor:
        """The slot's weight (its rows of a fused weight), in its stored dtype."""
        tensor = self.stored(slot.file, slot.key, slot.dtype, slot.shape)
        if slot.rows is not None:
            tensor = tensor[slot.rows[0] : slot.rows[1]]
        return tensor

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
        self._state = None


@contextmanager
def open_model(path: str | Path, *, allow_pickle: bool, flag: str) -> Iterator[ModelSource]:
    """``flag`` names the option in errors (``--base``). A ``.ckpt`` needs ``allow_pickle``
    (the consent rule, ``modelfile.refuse_pickle``) and is then read weights-only, as the
    engine's loader reads one."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
        refuse_pickle(path, allow_pickle, what=flag)
        state = load_pickled_checkpoint(path).state
        slots = {
            key: Slot(None, key, tuple(value.shape), DTYPE_CODES.get(value.dtype, "F32"))
            for key, value in state.items()
        }
        source = ModelSource(keys_from_slots(path, slots), state)
    else:
        source = ModelSource(open_model_keys(path, what=flag))
    try:
        yield source
    finally:
        source.close()
