"""The torch-free safetensors reader and streaming writer."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tuilora.errors import UserError
from tuilora.lorafile.safetensors_io import SafetensorsFile, dtype_summary, file_hashes
from tuilora.lorafile.safetensors_write import PlannedTensor, write_safetensors


def test_written_tensors_read_back_lazily(write_file) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    values = {
        "b": rng.normal(size=(3, 4)).astype(np.float16),
        "a": rng.normal(size=(2, 2, 3, 3)).astype(np.float32),
        "scalar": np.array(7, dtype=np.int64),
    }
    path = write_file("t.safetensors", values, {"ss_note": "hi"})
    with SafetensorsFile(path) as file:
        assert list(file.tensors) == ["b", "a", "scalar"]  # the written order
        assert file.metadata == {"ss_note": "hi"}
        assert file.tensors["a"].shape == (2, 2, 3, 3) and file.tensors["a"].dtype == "F32"
        np.testing.assert_array_equal(file.read_array("b"), values["b"].astype(np.float32))
        np.testing.assert_array_equal(file.read_array("a"), values["a"])
        assert int(file.read_array("scalar")) == 7
    # the header is padded to 8 bytes, as the safetensors package writes it
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert length % 8 == 0


def test_bf16_and_fp8_decode(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 0.15625, 448.0], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    # float8 e4m3fn: 1.0 = 0x38, -2.5 = 0xC2, 0.15625 = 0x22 (1.25 * 2^-3), 448 = 0x7E
    e4m3 = np.array([0x38, 0xC2, 0x22, 0x7E], dtype=np.uint8)
    # float8 e5m2 is the upper byte of float16
    e5m2 = (values.astype(np.float16).view(np.uint16) >> 8).astype(np.uint8)
    planned = [
        PlannedTensor("bf16", "BF16", (4,), bf16.tobytes),
        PlannedTensor("e4m3", "F8_E4M3", (4,), e4m3.tobytes),
        PlannedTensor("e5m2", "F8_E5M2", (4,), e5m2.tobytes),
    ]
    path = write_safetensors(tmp_path / "x.safetensors", planned)
    with SafetensorsFile(path) as file:
        np.testing.assert_array_equal(file.read_array("bf16"), values)
        np.testing.assert_array_equal(file.read_array("e4m3"), values)
        np.testing.assert_allclose(file.read_array("e5m2"), [1.0, -2.5, 0.15625, 448.0], rtol=0.13)


def _raw_file(path: Path, header: dict[str, object], data: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.mark.parametrize(
    ("header", "data"),
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),  # cut off
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8),  # size lies
        ({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),  # no offsets
    ],
)
def test_a_lying_header_is_a_user_error(
    tmp_path: Path, header: dict[str, object], data: bytes
) -> None:
    """The header is modelfile.header's (one reader for tuilora): a lie is a one-line
    UserError naming the file, before any tensor is read."""
    path = _raw_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(UserError, match="tensor w") as caught:
        SafetensorsFile(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02", "shorter than a header"),
        (struct.pack("<Q", 40) + b"{}", "past the end"),
        (struct.pack("<Q", 2) + b"{{", "not JSON"),
    ],
)
def test_not_a_safetensors_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        SafetensorsFile(path)


def test_writer_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"keep me")
    good = [PlannedTensor("w", "F32", (2,), lambda: np.zeros(2, np.float32).tobytes())]
    with pytest.raises(UserError, match="already exists; pass --force"):
        write_safetensors(target, good)
    assert target.read_bytes() == b"keep me"

    def fails() -> bytes:
        raise RuntimeError("disk on fire")

    broken = [*good, PlannedTensor("x", "F32", (2,), fails)]
    with pytest.raises(RuntimeError):
        write_safetensors(target, broken, overwrite=True)
    assert target.read_bytes() == b"keep me"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]  # no temp file left
    wrong_size = [PlannedTensor("w", "F32", (2,), lambda: b"\0" * 4)]
    with pytest.raises(ValueError, match="produced 4 bytes"):
        write_safetensors(tmp_path / "new.safetensors", wrong_size)
    assert not (tmp_path / "new.safetensors").exists()


def test_file_hashes_are_sd_scripts_and_autov2(write_file) -> None:  # type: ignore[no-untyped-def]
    path = write_file("h.safetensors", {"w": np.arange(6, dtype=np.float32)}, {"k": "v"})
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    hashes = file_hashes(path, chunk=5)  # chunks smaller than the header still split right
    # sd-scripts' addnet_hash_safetensors: sha256 of everything after the header
    assert hashes.model_hash == hashlib.sha256(raw[8 + length :]).hexdigest()
    assert hashes.sha256 == hashlib.sha256(raw).hexdigest()
    assert hashes.autov2 == hashes.sha256[:10]


def test_dtype_summary_ignores_scalars(write_file) -> None:  # type: ignore[no-untyped-def]
    path = write_file(
        "d.safetensors",
        {"w": np.zeros((4, 4), np.float16), "alpha": np.array(1.0, np.float32)},
    )
    with SafetensorsFile(path) as file:
        assert dtype_summary(file.tensors) == "fp16"
