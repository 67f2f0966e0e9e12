"""Read ``.safetensors`` files lazily, without torch or the safetensors package.

The format: an 8-byte little-endian header length, a JSON header mapping each tensor name
to its dtype, shape and ``data_offsets`` (relative to the end of the header), an optional
``__metadata__`` table of strings, then the raw little-endian tensor bytes. Only the header
is read when the file is opened; each tensor is read on demand (plain reads, not mmap, so
the memory a tool holds is what it keeps, not the pages it touched).

A header that lies (offsets past the end of the file, a size that does not match the
shape) is a ``UserError`` naming the file, never a crash halfway through a merge.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import IO, Any, Final

from tuilora.errors import UserError

#: A header larger than this is not a model's (a full SDXL checkpoint's is ~200 kB).
MAX_HEADER_BYTES: Final = 100 * 1024 * 1024

#: Bytes per element of the dtypes safetensors writes.
DTYPE_SIZES: Final = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}
FLOAT_DTYPES: Final = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
#: How people name these dtypes (sd-scripts' save_precision names where there is one).
DTYPE_NAMES: Final = {"F32": "float", "F16": "fp16", "BF16": "bf16", "F64": "fp64"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    #: Absolute byte offsets in the file.
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a safetensors file; UserError naming the file when it is not one."""
    header, _ = _read_header_and_size(Path(path))
    return header


def read_metadata(path: str | Path) -> dict[str, str]:
    return metadata_of(read_header(path))


def metadata_of(header: Mapping[str, Any]) -> dict[str, str]:
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _read_header_and_size(path: Path) -> tuple[dict[str, Any], int]:
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise UserError(f"{path}: too short to be a .safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                raise UserError(f"{path}: not a .safetensors file (header length {length})")
            raw = handle.read(length)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a .safetensors file") from None
    except PermissionError:
        raise UserError(f"{path}: not readable (permission denied)") from None
    if len(raw) < length:
        raise UserError(f"{path}: the header is cut off; the file is incomplete")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise UserError(f"{path}: not a .safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: not a .safetensors file (its header is not a table)")
    return header, 8 + length


class SafetensorsFile:
    """One safetensors file: its tensors' names, dtypes and shapes, read lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        header, self.data_start = _read_header_and_size(self.path)
        self.metadata = metadata_of(header)
        size = self.path.stat().st_size
        tensors: list[TensorInfo] = []
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            tensors.append(self._entry(str(name), entry, size))
        tensors.sort(key=lambda info: info.start)
        self.tensors: dict[str, TensorInfo] = {info.name: info for info in tensors}
        self._handle: BufferedReader | None = None

    def _entry(self, name: str, entry: Any, size: int) -> TensorInfo:
        where = f"{self.path}: tensor {name}"
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(n) for n in entry["shape"])
            begin, end = (int(n) for n in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: malformed header entry; the file is damaged") from None
        itemsize = DTYPE_SIZES.get(dtype)
        if any(n < 0 for n in shape) or begin < 0 or end < begin:
            raise UserError(f"{where}: impossible shape or offsets; the file is damaged")
        if itemsize is not None and end - begin != math.prod(shape) * itemsize:
            raise UserError(
                f"{where}: its header says {shape} {dtype} but gives {end - begin} bytes;"
                " the file is damaged"
            )
        if self.data_start + end > size:
            raise UserError(f"{self.path}: cut off (tensor {name} ends past the end of the file)")
        return TensorInfo(name, dtype, shape, self.data_start + begin, self.data_start + end)

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
        self._handle.seek(info.start)
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
        if info.dtype in FLOAT_DTYPES and info.numel > 1:  # not the alpha scalars
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
    _, data_start = _read_header_and_size(path)
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
