"""Read checkpoint tensors one at a time and put them into modules built without weights.

A full-size model is gigabytes, so nothing here holds a second copy of it: the modules are
built on the meta device (no memory) and each parameter gets its tensor from the file in the
training dtype. A tensor already in that dtype is a view of the memory-mapped file (no copy:
its pages are read when first used, and on a GPU machine they go straight to the device); a
tensor to convert is read with plain reads into its own buffer, converted, and the buffer
dropped, so the file's pages never pile up beside the converted copy. Peak memory is the
model in its training dtype plus one tensor. Every shape is checked against the file's
header before the first byte of data is read, so a wrong architecture fails in milliseconds.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from tuilora.errors import UserError
from tuilora.modelfile.header import SafetensorsHeader
from tuilora.modelfile.ldm_names import LdmName, legacy_aliases

TORCH_DTYPES = {
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


class TensorSource(Protocol):
    """A checkpoint's tensors by name."""

    label: str

    def names(self) -> set[str]: ...

    def shape(self, name: str) -> tuple[int, ...] | None: ...

    def read(self, name: str, dtype: torch.dtype) -> torch.Tensor: ...


class SafetensorsSource:
    """A ``.safetensors`` file: tensors in the wanted dtype are views of the memory-mapped
    file, tensors to convert are read with plain ``readinto`` calls and converted."""

    def __init__(self, header: SafetensorsHeader) -> None:
        self.header = header
        self.label = str(header.path)
        self._file: io.FileIO | None = None
        self._mapped: Any = None

    def names(self) -> set[str]:
        return set(self.header.tensors)

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.header.shape(name)

    def read(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        stored = TORCH_DTYPES[self.header.tensors[name].dtype]
        if stored == dtype or not stored.is_floating_point:
            if self._mapped is None:
                from safetensors import safe_open

                self._mapped = safe_open(str(self.header.path), framework="pt")
            return self._mapped.get_tensor(name)
        return self._read_copy(name).to(dtype)

    def _read_copy(self, name: str) -> torch.Tensor:
        info = self.header.tensors[name]
        if self._file is None:
            self._file = io.FileIO(self.header.path, "r")
        raw = torch.empty(info.nbytes, dtype=torch.uint8)
        view = raw.numpy().data  # a writable memoryview of the new buffer
        self._file.seek(info.begin)
        done = 0
        while done < info.nbytes:
            count = self._file.readinto(view[done:])
            if not count:
                raise UserError(f"{self.label}: ends inside tensor {name} (a truncated download?)")
            done += count
        return raw.view(TORCH_DTYPES[info.dtype]).reshape(info.shape)

    def close(self) -> None:
        # the tensors handed out keep their mapping alive; only the handles are closed
        self._mapped = None
        if self._file is not None:
            self._file.close()
            self._file = None


class StateDictSource:
    """Tensors already in memory (a ``.ckpt`` loaded with ``weights_only=True``)."""

    def __init__(self, state: Mapping[str, Any], label: str) -> None:
        self.state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        self.label = label

    def names(self) -> set[str]:
        return set(self.state)

    def shape(self, name: str) -> tuple[int, ...] | None:
        value = self.state.get(name)
        return None if value is None else tuple(value.shape)

    def read(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        tensor = self.state[name]
        return tensor.to(dtype) if tensor.is_floating_point() else tensor

    def close(self) -> None:
        self.state = {}


def load_pickled_checkpoint(path: Path) -> StateDictSource:
    """A ``.ckpt`` / ``.pt`` the user allowed (``--allow-pickle``): still weights-only, so a
    payload cannot run; memory-mapped where the format allows."""
    import pickle

    try:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{path}: refused by the weights-only loader: it holds more than tensors (objects"
            " or code that would run when unpickled)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other unpickling failure is the file's
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: cannot read as a PyTorch checkpoint ({reason})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: holds no state dict of tensors")
    return StateDictSource(loaded, str(path))


def _file_name(source: TensorSource, name: LdmName, available: set[str]) -> str | None:
    for candidate in (name.key, *legacy_aliases(name.key)):
        if candidate in available:
            return candidate
    return None


def _expected(name: LdmName, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the file must have for a parameter of ``shape``."""
    if name.part is not None:
        return (shape[0] * 3, *shape[1:])
    if name.transpose:
        return tuple(reversed(shape))
    return shape


def _fits(found: tuple[int, ...], wanted: tuple[int, ...]) -> bool:
    # LDM's VAE attention keeps 1x1 convs where diffusers has linears (and the reverse
    # for old SD1 ``proj_in``): the same numbers with trailing unit dims.
    strip = [d for d in found if d != 1], [d for d in wanted if d != 1]
    return found == wanted or strip[0] == strip[1]


def check_component(
    module: torch.nn.Module, names: Mapping[str, LdmName], source: TensorSource, label: str
) -> dict[str, str]:
    """Each parameter of ``module`` → the file's tensor name, every shape checked first.
    ``label`` says which part and where its config came from, for the error."""
    available = source.names()
    found: dict[str, str] = {}
    for key, parameter in module.named_parameters():
        name = names[key]
        file_name = _file_name(source, name, available)
        if file_name is None:
            raise UserError(
                f"{source.label}: has no {name.key}, which the {label} needs: an incomplete"
                " checkpoint or another architecture"
            )
        shape = source.shape(file_name) or ()
        wanted = _expected(name, tuple(parameter.shape))
        if not _fits(shape, wanted):
            raise UserError(
                f"{source.label}: {file_name} has shape {list(shape)} where the {label}"
                f" needs {list(wanted)}: another architecture"
            )
        found[key] = file_name
    return found


def load_component(
    module: torch.nn.Module,
    names: Mapping[str, LdmName],
    source: TensorSource,
    *,
    dtype: torch.dtype,
    label: str,
) -> None:
    """Fill ``module`` (built on the meta device) from ``source``, in ``dtype``."""
    file_names = check_component(module, names, source, label)
    state: dict[str, torch.Tensor] = {}
    fused: tuple[str, torch.Tensor] | None = None  # OpenCLIP's in_proj, read once for q/k/v
    for key, parameter in module.named_parameters():
        name, file_name = names[key], file_names[key]
        if name.part is not None:
            if fused is None or fused[0] != file_name:
                fused = (file_name, source.read(file_name, dtype))
            tensor = fused[1].chunk(3, dim=0)[name.part]
        else:
            tensor = source.read(file_name, dtype)
        if name.transpose:
            tensor = tensor.T
        state[key] = tensor.reshape(parameter.shape).contiguous()
    missing, _ = module.load_state_dict(state, strict=False, assign=True)
    parameters = {key for key, _ in module.named_parameters()}
    left = [key for key in missing if key in parameters]
    if left:  # cannot happen after check_component; a guard against silent meta weights
        raise RuntimeError(f"{label}: parameters not loaded: {left[:3]}")
