"""Read ``.safetensors`` tensors lazily, without torch or the safetensors package.

The header (names, dtypes, shapes, offsets, metadata; a lying one is a ``UserError`` naming
the file) is ``tuilora.modelfile.header``'s, the one reader every part of tuilora shares.
Each tensor is then read on demand with plain reads (not mmap, so the memory a tool holds is
what it keeps, not the pages it touched), as raw bytes or as a numpy array.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import IO, Any, Final

from tuilora.errors import UserError
from tuilora.modelfile.header import TensorInfo, read_safetensors_header

FLOAT_DTYPES: Final = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
#: How people name these dtypes (sd-scripts' save_precision names where there is one).
DTYPE_NAMES: Final = {"F32": "float", "F16": "fp16", "BF16": "bf16", "F64": "fp64"}


def numel(info: TensorInfo) -> int:
    return math.prod(info.shape)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` table of a safetensors file (strings to strings)."""
    return dict(read_safetensors_header(path).metadata)


class SafetensorsFile:
    """One safetensors file: its tensors' names, dtypes and shapes, read lazily."""

    def __init__(self, path: str | Path) -> None:
        header = read_safetensors_header(path)
        self.path = header.path
        self.metadata = dict(header.metadata)
        #: In the order of their data in the file.
        self.tensors: dict[str, TensorInfo] = dict(
            sorted(header.tensors.items(), key=lambda item: item[1].begin)
        )
        self._handle: BufferedReader | None = None

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def read_bytes(self, name: str) -> bytearray:
        """The raw bytes of one tensor (a fresh, writable buffer)."""
        info = self.tensors[name]
        if self._handle is None:
            self._handle = self.path.open("rb")
        buffer = bytearray(info.nbytes)
        self._handle.seek(info.begin)
        view = memoryview(buffer)
        done = 0
        while done < info.nbytes:
            count = self._handle.readinto(view[done:])
            if not count:
                raise UserError(f"{self.path}: cut off while reading tensor {name}")
            done += count
        return buffer

    def read_array(self, name: str) -> Any:
        """One tensor as a numpy array (floating dtypes as float32)."""
        from tuilora.lorafile.arrays import to_array

        info = self.tensors[name]
        return to_array(self.read_bytes(name), info.dtype, info.shape, where=f"{self.path}: {name}")


def dtype_summary(tensors: Mapping[str, TensorInfo]) -> str:
    """The floating dtypes of the weights, most bytes first: "fp16", "fp16 + float"."""
    weights: dict[str, int] = {}
    for info in tensors.values():
        if info.dtype in FLOAT_DTYPES and numel(info) > 1:  # not the alpha scalars
            weights[info.dtype] = weights.get(info.dtype, 0) + info.nbytes
    ordered = sorted(weights, key=lambda dtype: weights[dtype], reverse=True)
    names = [DTYPE_NAMES.get(dtype, dtype.lower()) for dtype in ordered]
    if not names:
        return "none"
    return " + ".join(names)


@dataclass(frozen=True)
class FileHashes:
    #: sha256 of the tensor data (everything after the header): sd-scripts' sshs_model_hash.
    model_hash: str
    #: sha256 of the whole file; its first 10 characters are sd-webui's and CivitAI's "AutoV2".
    sha256: str

    @property
    def autov2(self) -> str:
        return self.sha256[:10]


def file_hashes(path: str | Path, chunk: int = 1 << 20) -> FileHashes:
    """Both hashes in one pass over the file."""
    path = Path(path)
    read_safetensors_header(path)  # a UserError naming the file when it is not one
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    data_start = 8 + length
    whole = hashlib.sha256()
    data = hashlib.sha256()
    with path.open("rb") as handle:
        head = handle.read(data_start)
        whole.update(head)
        for block in _chunks(handle, chunk):
            whole.update(block)
            data.update(block)
    return FileHashes(model_hash=data.hexdigest(), sha256=whole.hexdigest())


def _chunks(handle: IO[bytes], size: int) -> Iterator[bytes]:
    while block := handle.read(size):
        yield block
