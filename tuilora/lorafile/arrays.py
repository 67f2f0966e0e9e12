"""Raw safetensors bytes as numpy arrays (floating dtypes widened to float32).

numpy has no bfloat16 or float8: bf16 is the upper half of a float32, F8_E5M2 the upper
half of a float16, and F8_E4M3 (the ``fn`` variant torch writes: no infinities, one NaN
pattern) is decoded through a 256-entry table.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tuilora.errors import UserError

_PLAIN = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}


def to_array(buffer: bytes | bytearray, dtype: str, shape: tuple[int, ...], *, where: str) -> Any:
    import numpy as np

    if dtype == "BF16":
        halves = np.frombuffer(buffer, dtype="<u2").astype(np.uint32) << 16
        return halves.view(np.float32).reshape(shape)
    if dtype == "F8_E5M2":
        upper = np.frombuffer(buffer, dtype=np.uint8).astype(np.uint16) << 8
        return upper.view(np.float16).astype(np.float32).reshape(shape)
    if dtype == "F8_E4M3":
        return _e4m3_table()[np.frombuffer(buffer, dtype=np.uint8)].reshape(shape)
    if dtype not in _PLAIN:
        raise UserError(f"{where}: dtype {dtype} is not one tuilora can read")
    array = np.frombuffer(buffer, dtype=_PLAIN[dtype]).reshape(shape)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    return array


@cache
def _e4m3_table() -> Any:
    import numpy as np

    values = np.empty(256, dtype=np.float32)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exponent = (byte >> 3) & 0x0F
        mantissa = byte & 0x07
        if exponent == 0x0F and mantissa == 0x07:
            values[byte] = np.nan
        elif exponent == 0:
            values[byte] = sign * (mantissa / 8.0) * 2.0**-6
        else:
            values[byte] = sign * (1.0 + mantissa / 8.0) * 2.0 ** (exponent - 7)
    return values
