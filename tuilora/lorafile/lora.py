"""The modules of a LoRA file: kind, rank, alpha and the weight shape each one changes.

Files from sd-scripts, LyCORIS and tuilora share the module names (``lora_unet_…``,
``lora_te_…``, ``lora_te1_…``/``lora_te2_…``; the name holds no dot) and differ in the
parameters under each name:

- LoRA (LierLa, C3Lier, LyCORIS LoCon): ``lora_down.weight``, ``lora_up.weight``
  (+ ``lora_mid.weight`` for Tucker convs), ``alpha``; ΔW = up·down·alpha/rank.
- LoHa: ``hada_w1_a``, ``hada_w1_b``, ``hada_w2_a``, ``hada_w2_b`` (+ ``hada_t1/t2``),
  ``alpha``; ΔW = (w1a·w1b) ⊙ (w2a·w2b)·alpha/rank.
- LoKr: ``lokr_w1`` or ``lokr_w1_a/_b``, ``lokr_w2`` or ``lokr_w2_a/_b`` (+ ``lokr_t2``),
  ``alpha``; ΔW = w1 ⊗ w2·alpha/rank (scale 1 when neither factor is decomposed).
- (IA)^3: ``weight`` (+ ``on_input``): W' = W·(1 + weight) along the output (or input) axis.
- LyCORIS full/diff, GLoRA, OFT/BOFT: recognised and named; tuilora does not merge them.

``dora_scale`` (DoRA) may sit beside any of them. Only the header is needed for the
structure; ``alpha`` scalars are the only values read here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tuilora.errors import UserError
from tuilora.lorafile.names import block_of
from tuilora.lorafile.safetensors_io import SafetensorsFile, numel
from tuilora.modelfile.header import TensorInfo

KIND_NAMES: Final = {
    "lora": "LoRA",
    "loha": "LoHa",
    "lokr": "LoKr",
    "ia3": "(IA)^3",
    "full": "LyCORIS full (diff)",
    "glora": "GLoRA",
    "oft": "OFT/BOFT",
    "norm": "LyCORIS norm",
}
#: Which parameter tells the kind (LyCORIS' ``weight_list_det``), checked in this order.
_KIND_MARKERS: Final = (
    ("lora_down.weight", "lora"),
    ("hada_w1_a", "loha"),
    ("lokr_w1", "lokr"),
    ("lokr_w1_a", "lokr"),
    ("on_input", "ia3"),
    ("diff", "full"),
    ("a1.weight", "glora"),
    ("oft_blocks", "oft"),
    ("oft_diag", "oft"),
    ("w_norm", "norm"),
)
_SCALARS: Final = {"F32": "<f", "F16": "<e", "F64": "<d", "I64": "<q", "I32": "<i"}


@dataclass(frozen=True)
class LoraModule:
    name: str
    kind: str
    params: Mapping[str, TensorInfo]
    #: None where the kind has no rank (IA3, full) or LoKr has no decomposed factor.
    rank: int | None
    alpha: float | None
    #: The weight this module changes, as (out, in·kh·kw) — comparable for linears and convs.
    out_features: int
    in_features: int
    #: Kernel size when the module's own weights show a conv (3x3 LoRA down), else None.
    kernel: tuple[int, ...] | None
    dora: bool = False
    tucker: bool = False

    @property
    def component(self) -> str:
        """``unet``, ``te``, ``te1``, ``te2`` (from the name's prefix)."""
        head = self.name.split("_", 2)[1] if self.name.count("_") >= 2 else ""
        return head if head in ("unet", "te", "te1", "te2") else "other"

    @property
    def block(self) -> str:
        return block_of(self.name)

    @property
    def scale(self) -> float:
        """alpha / rank, as sd-scripts and LyCORIS apply it (1 without alpha or rank)."""
        if self.rank is None or self.alpha is None:
            return 1.0
        return self.alpha / self.rank

    @property
    def is_conv3x3(self) -> bool:
        return self.kernel is not None and any(k != 1 for k in self.kernel)


@dataclass
class LoraFile:
    path: Path
    metadata: dict[str, str]
    modules: dict[str, LoraModule]
    tensors: dict[str, TensorInfo]
    #: Keys that belong to no module (reported, never silently dropped).
    stray: list[str] = field(default_factory=list)

    def kinds(self) -> set[str]:
        return {module.kind for module in self.modules.values()}


def read_lora(path: str | Path) -> LoraFile:
    """Parse a LoRA file's header; UserError when it is not a LoRA in sd-scripts naming."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" + (" (a folder)" if path.is_dir() else ""))
    if path.suffix.lower() != ".safetensors":
        raise UserError(f"{path}: expected a .safetensors LoRA file")
    with SafetensorsFile(path) as file:
        grouped: dict[str, dict[str, TensorInfo]] = {}
        stray: list[str] = []
        for key, info in file.tensors.items():
            name, dot, param = key.partition(".")
            if not dot or not name.startswith("lora_"):
                stray.append(key)
                continue
            grouped.setdefault(name, {})[param] = info
        if not grouped:
            hint = ""
            if any(".lora_A." in key or ".lora_B." in key for key in file.tensors):
                hint = " (it is in diffusers/PEFT format: lora_A/lora_B)"
            raise UserError(
                f"{path}: no LoRA modules in sd-scripts naming (lora_unet_…, lora_te_…){hint}"
            )
        modules = {name: _module(file, name, params) for name, params in grouped.items()}
        return LoraFile(path, dict(file.metadata), modules, dict(file.tensors), stray)


def _module(file: SafetensorsFile, name: str, params: dict[str, TensorInfo]) -> LoraModule:
    kind = next((k for marker, k in _KIND_MARKERS if marker in params), "unknown")
    alpha = _scalar(file, f"{name}.alpha") if "alpha" in params else None
    shape = _target_shape(kind, params)
    rank, kernel = _rank_and_kernel(kind, params)
    if kind == "lokr" and rank is None:
        alpha = None  # LyCORIS: both factors full means scale 1 whatever alpha says
    tucker = any(p in params for p in ("lora_mid.weight", "hada_t1", "lokr_t2", "lokr_t1"))
    return LoraModule(
        name=name,
        kind=kind,
        params=params,
        rank=rank,
        alpha=alpha,
        out_features=shape[0],
        in_features=shape[1],
        kernel=kernel,
        dora="dora_scale" in params,
        tucker=tucker,
    )


def _scalar(file: SafetensorsFile, key: str) -> float:
    info = file.tensors[key]
    raw = file.read_bytes(key)
    if numel(info) != 1:
        raise UserError(f"{file.path}: {key} should hold one number, not {info.shape}")
    if info.dtype == "BF16":
        return float(struct.unpack("<f", b"\0\0" + bytes(raw))[0])
    if info.dtype not in _SCALARS:
        raise UserError(f"{file.path}: {key} has dtype {info.dtype}, not a number")
    return float(struct.unpack(_SCALARS[info.dtype], raw)[0])


def _flat(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:])


def _target_shape(kind: str, p: Mapping[str, TensorInfo]) -> tuple[int, int]:
    """(out, in·kernel) of the weight the module changes (0, 0 when not derivable)."""
    if kind == "lora":
        up, down = p["lora_up.weight"].shape, p["lora_down.weight"].shape
        if "lora_mid.weight" in p:
            mid = p["lora_mid.weight"].shape
            return up[0], down[1] * math.prod(mid[2:])
        return up[0], _flat(down)
    if kind == "loha":
        if "hada_t1" in p:  # Tucker: w_a (r, out), w_b (r, in), t (r, r, kh, kw)
            return p["hada_w1_a"].shape[1], p["hada_w1_b"].shape[1] * math.prod(
                p["hada_t1"].shape[2:]
            )
        return p["hada_w1_a"].shape[0], p["hada_w1_b"].shape[1]
    if kind == "lokr":
        w1 = _lokr_factor(p, "1")
        w2 = _lokr_factor(p, "2")
        return w1[0] * w2[0], w1[1] * w2[1]
    if kind in ("ia3", "norm"):  # one factor per feature; a conv's (IA)^3 is (1, n, 1, 1)
        weight = p.get("weight") or p.get("w_norm")
        return (numel(weight), 0) if weight else (0, 0)
    if kind == "full":
        diff = p["diff"].shape
        return diff[0], _flat(diff)
    return 0, 0


def _lokr_factor(p: Mapping[str, TensorInfo], which: str) -> tuple[int, int]:
    """(out, in·kernel) of LoKr factor w1 or w2, whole or decomposed (and Tucker)."""
    if f"lokr_w{which}" in p:
        shape = p[f"lokr_w{which}"].shape
        return shape[0], _flat(shape)
    a, b = p[f"lokr_w{which}_a"].shape, p[f"lokr_w{which}_b"].shape
    if f"lokr_t{which}" in p:  # Tucker: t (r, r, kh, kw), w_a (r, out), w_b (r, in)
        return a[1], b[1] * math.prod(p[f"lokr_t{which}"].shape[2:])
    return a[0], _flat(b)


def _rank_and_kernel(
    kind: str, p: Mapping[str, TensorInfo]
) -> tuple[int | None, tuple[int, ...] | None]:
    if kind == "lora":
        down = p["lora_down.weight"].shape
        kernel = p["lora_mid.weight"].shape[2:] if "lora_mid.weight" in p else down[2:]
        return down[0], tuple(kernel) or None
    if kind == "loha":
        kernel = p["hada_t1"].shape[2:] if "hada_t1" in p else ()
        return p["hada_w1_b"].shape[0], tuple(kernel) or None
    if kind == "lokr":
        if "lokr_w1_a" in p:
            return p["lokr_w1_a"].shape[1], None
        if "lokr_t2" in p:
            return p["lokr_t2"].shape[0], tuple(p["lokr_t2"].shape[2:]) or None
        if "lokr_w2_a" in p:
            return p["lokr_w2_a"].shape[1], None
        return None, None
    return None, None
