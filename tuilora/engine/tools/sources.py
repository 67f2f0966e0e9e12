"""Models and LoRAs as torch tensors, read one tensor at a time.

``ModelSource`` wraps a model's key table (``lorafile.modelkeys``) and reads each weight on
demand from its safetensors file with plain reads, so a tool holds one layer at a time,
not the model. A ``.ckpt`` (only with ``--allow-pickle``) has no lazy form: its state dict
is loaded once (memory-mapped where torch can) and served from memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from tuilora.errors import UserError
from tuilora.lorafile.modelkeys import ModelKeys, Slot, keys_from_slots, open_model_keys
from tuilora.lorafile.safetensors_io import SafetensorsFile

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
TORCH_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
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
    """``flag`` names the option in errors (``--base``)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} {path}: no such file or folder")
    if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
        source = ModelSource(*_pickle_keys(path, allow_pickle))
    else:
        source = ModelSource(open_model_keys(path))
    try:
        yield source
    finally:
        source.close()


def _pickle_keys(path: Path, allow_pickle: bool) -> tuple[ModelKeys, dict[str, torch.Tensor]]:
    if not allow_pickle:
        raise UserError(
            f"{path}: {path.suffix} files are Python pickles that can run code when loaded;"
            " convert it to .safetensors, or pass --allow-pickle if you trust its source"
        )
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # an old (non-zip) pickle cannot be memory-mapped
        loaded = torch.load(str(path), map_location="cpu", weights_only=False)
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a checkpoint (no state dict inside)")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    slots = {
        key: Slot(None, key, tuple(value.shape), DTYPE_CODES.get(value.dtype, "F32"))
        for key, value in tensors.items()
    }
    return keys_from_slots(path, slots), tensors
