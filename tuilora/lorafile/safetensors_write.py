"""Write a ``.safetensors`` file tensor by tensor, atomically.

The header (names, dtypes, shapes, offsets) is known before any data is, so a merged
multi-GB checkpoint is written one tensor at a time: each ``produce()`` returns that
tensor's bytes, which go to the file and are dropped before the next one is made. The file
appears under its name only when complete (``fileio.atomic_output``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuilora.fileio import atomic_output
from tuilora.modelfile.header import DTYPE_SIZES


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    produce: Callable[[], bytes | bytearray | memoryview]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_SIZES[self.dtype]


def header_bytes(planned: Sequence[PlannedTensor], metadata: Mapping[str, str] | None) -> bytes:
    """The length prefix and JSON header, padded with spaces to 8 bytes as safetensors does."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for tensor in planned:
        header[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def write_safetensors(
    path: str | Path,
    planned: Sequence[PlannedTensor],
    metadata: Mapping[str, str] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``planned`` in order; a producer returning the wrong size is a bug (ValueError)."""
    names = [tensor.name for tensor in planned]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tensor names")
    with atomic_output(path, overwrite=overwrite) as handle:
        handle.write(header_bytes(planned, metadata))
        for tensor in planned:
            data = tensor.produce()
            size = memoryview(data).nbytes
            if size != tensor.nbytes:
                raise ValueError(
                    f"{tensor.name}: produced {size} bytes, the header says {tensor.nbytes}"
                )
            handle.write(data)
            del data
    return Path(path)
