"""Which checkpoint weight each sd-scripts LoRA module changes, read from key names alone.

A model comes as an original-layout single file (LDM/SGM: ``model.diffusion_model.…``,
``cond_stage_model.…`` or SDXL's ``conditioner.embedders.N.…``) or as a diffusers folder
(``unet/``, ``text_encoder/``, ``text_encoder_2/``). Both are described here as one table of
keys (a diffusers folder's keys carry their component folder: ``unet/conv_in.weight``) and
mapped to the LoRA module names sd-scripts' ``create_network`` gives the same model:

- UNet: the targets inside transformer blocks (``proj_in``/``proj_out``, attention
  ``to_q/k/v/out.0``, ``ff.net.0.proj``/``ff.net.2``); with ``conv_dim`` (C3Lier) also the
  ResNet convs, ``time_emb_proj`` and the down/upsampler convs. SD1/SD2 modules are named
  after diffusers paths, SDXL ones after SGM paths (``names.PathMap`` converts).
- Text encoders: ``self_attn.{q,k,v,out}_proj`` and ``mlp.fc1/fc2`` of each layer, named
  ``lora_te_text_model_encoder_layers_N_…`` (``lora_te1``/``lora_te2`` on SDXL). OpenCLIP
  encoders in original files (SD2's, SDXL's second) fuse q/k/v into one ``in_proj_weight``:
  each of q, k, v is a third of its rows. SD2 drops OpenCLIP's last layer, as sd-scripts'
  conversion does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tuilora.errors import UserError
from tuilora.lorafile.names import TEXT_ENCODER_PREFIX, UNET_PREFIX, PathMap, kohya_name
from tuilora.lorafile.names import layout_from_sgm_paths as _layout_from_sgm_paths
from tuilora.lorafile.safetensors_io import SafetensorsFile
from tuilora.modelfile.describe import PICKLE_SUFFIXES, describe_model, read_json
from tuilora.modelfile.family import FAMILY_NAMES, detect_architecture
from tuilora.modelfile.family import UNET_PREFIX as LDM_UNET
from tuilora.modelfile.header import TensorInfo
from tuilora.modelfile.ldm_names import LAYOUTS

#: Original-layout text encoders per family: (prefix, "clip" or "open_clip"), in order.
LDM_TEXT_ENCODERS: Final = {
    family: tuple(
        (prefix, style)
        for component, prefix, style in layout
        if component.startswith("text_encoder")
    )
    for family, layout in LAYOUTS.items()
}
DIFFUSERS_COMPONENTS: Final = ("unet", "text_encoder", "text_encoder_2", "vae")
#: sd-scripts' SD2 text encoder keeps 23 of OpenCLIP-H's 24 layers (its conversion skips
#: ``resblocks.23``, as diffusers' does).
SD2_TEXT_LAYERS: Final = 23

_ATTENTION_TARGET = re.compile(
    r"(^|\.)(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)"
    r"|ff\.net\.(0\.proj|2)))$"
)
_CONV_TARGET = re.compile(
    r"(\.resnets\.\d+\.(conv1|conv2|conv_shortcut|time_emb_proj)"
    r"|\.downsamplers\.0\.conv|\.upsamplers\.0\.conv)$"
)
_HF_TARGET = re.compile(
    r"^text_model\.encoder\.layers\.(\d+)\.(self_attn\.[qkvo]\w*_proj|mlp\.fc[12])$"
)
_OPENCLIP = re.compile(
    r"^transformer\.resblocks\.(\d+)\.(attn\.in_proj_weight|attn\.out_proj\.weight"
    r"|mlp\.c_fc\.weight|mlp\.c_proj\.weight)$"
)
_CLIP_ROOTS: Final = ("encoder.", "embeddings.", "final_layer_norm.")
_OPENCLIP_NAMES: Final = {
    "attn.out_proj.weight": "self_attn.out_proj",
    "mlp.c_fc.weight": "mlp.fc1",
    "mlp.c_proj.weight": "mlp.fc2",
}


@dataclass(frozen=True)
class Slot:
    """Where a weight lives: the file and its key there (``file`` None for an in-memory
    state dict), and for a fused q/k/v weight the rows that belong to this module."""

    file: Path | None
    key: str
    shape: tuple[int, ...]
    dtype: str
    rows: tuple[int, int] | None = None

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.rows is None:
            return self.shape
        return (self.rows[1] - self.rows[0], *self.shape[1:])


#: Which networks target a weight: sd-scripts' LoRA (LierLa), C3Lier (with conv_dim) only,
#: or neither (conv_in, time embedding ...: only LyCORIS presets reach them).
LIERLA, C3LIER, OTHER = "lierla", "c3lier", "other"


@dataclass(frozen=True)
class Target:
    name: str
    slot: Slot
    role: str

    def in_network(self, *, conv: bool) -> bool:
        """Is this a module of sd-scripts' LoRA network (C3Lier when ``conv``)?"""
        return self.role == LIERLA or (conv and self.role == C3LIER)

    @property
    def out_features(self) -> int:
        return self.slot.weight_shape[0]

    @property
    def in_features(self) -> int:
        """Inputs times kernel size (how LoRA factors flatten a conv)."""
        return math.prod(self.slot.weight_shape[1:])

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.slot.weight_shape[2:]


@dataclass
class ModelKeys:
    """A model's weights by key, with where each one is stored."""

    source: Path
    layout: str  # "ldm" or "diffusers"
    family: str  # "sd1", "sd2", "sdxl"
    slots: dict[str, Slot]
    #: A diffusers folder's UNet config (SDXL's SGM names need its block layout).
    unet_config: dict[str, Any] | None = None

    @property
    def family_name(self) -> str:
        return FAMILY_NAMES[self.family]

    def targets(self) -> dict[str, Target]:
        return lora_targets(self)


def open_model_keys(path: str | Path, *, what: str = "--model") -> ModelKeys:
    """Describe a model (single .safetensors file or diffusers folder) from its headers;
    the family is ``modelfile.describe_model``'s (a LoRA, VAE or refiner is refused there)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(
            f"{what} {path}: a pickle; only .safetensors models and diffusers folders are read here"
        )
    described = describe_model(path, what=what)
    assert described.family is not None  # only old pickles have no family
    if path.is_dir():
        return _diffusers_keys(path, described.family)
    with SafetensorsFile(path) as file:
        slots = {key: _slot(path, key, info) for key, info in file.tensors.items()}
    return ModelKeys(path, "ldm", described.family, slots)


def keys_from_slots(source: Path, slots: dict[str, Slot]) -> ModelKeys:
    """An original-layout model's table from its tensors' names and shapes (a state dict
    loaded from a .ckpt, or shapes alone)."""
    shapes = {key: slot.shape for key, slot in slots.items()}
    family = detect_architecture(shapes.keys(), shapes.get, source=str(source)).family
    return ModelKeys(source, "ldm", family, slots)


def _slot(file: Path | None, key: str, info: TensorInfo) -> Slot:
    return Slot(file, key, info.shape, info.dtype)


def _diffusers_keys(folder: Path, family: str) -> ModelKeys:
    slots: dict[str, Slot] = {}
    for component in DIFFUSERS_COMPONENTS:
        for weights in _component_files(folder / component):
            with SafetensorsFile(weights) as file:
                for key, info in file.tensors.items():
                    slots[f"{component}/{key}"] = _slot(weights, key, info)
    if not any(key.startswith("unet/") for key in slots):
        raise UserError(f"{folder}: no unet/*.safetensors weights")
    unet_config = read_json(folder / "unet" / "config.json")
    return ModelKeys(folder, "diffusers", family, slots, unet_config)


def _component_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    for name in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
        if (folder / name).is_file():
            return [folder / name]
    for index in sorted(folder.glob("*.safetensors.index.json")):
        shards = read_json(index).get("weight_map", {}).values()
        return [folder / str(name) for name in dict.fromkeys(shards)]
    return []


def lora_targets(model: ModelKeys) -> dict[str, Target]:
    """Every weight a LoRA module can change, by module name, with its role (``Target.
    in_network`` picks sd-scripts' LierLa / C3Lier modules)."""
    targets: dict[str, Target] = {}
    for target in _unet_targets(model):
        targets[target.name] = target
    for target in _text_encoder_targets(model):
        targets[target.name] = target
    return targets


def _weights(slots: Mapping[str, Slot], prefix: str) -> dict[str, Slot]:
    """Module path (no ``.weight``) -> slot, for the ``.weight`` keys under ``prefix``."""
    return {
        key[len(prefix) : -len(".weight")]: slot
        for key, slot in slots.items()
        if key.startswith(prefix) and key.endswith(".weight")
    }


def _unet_targets(model: ModelKeys) -> Iterable[Target]:
    if model.layout == "ldm":
        weights = _weights(model.slots, LDM_UNET)
        try:
            paths = PathMap(_layout_from_sgm_paths(weights))
        except ValueError as exc:
            raise UserError(f"{model.source}: an unknown UNet layout ({exc})") from None
        for sgm, slot in weights.items():
            diffusers = paths.to_diffusers(sgm)
            name_path = sgm if model.family == "sdxl" else diffusers
            yield from _unet_target(diffusers, name_path, slot)
        return
    weights = _weights(model.slots, "unet/")
    to_sgm = PathMap(model.unet_config or {}).to_sgm if model.family == "sdxl" else None
    for diffusers, slot in weights.items():
        yield from _unet_target(diffusers, to_sgm(diffusers) if to_sgm else diffusers, slot)


def _unet_target(diffusers: str, name_path: str, slot: Slot) -> Iterable[Target]:
    if len(slot.shape) not in (2, 4):
        return
    if _ATTENTION_TARGET.search(diffusers) and ".attentions." in diffusers:
        role = LIERLA
    elif _CONV_TARGET.search(diffusers):
        role = C3LIER
    else:
        role = OTHER
    yield Target(kohya_name(UNET_PREFIX, name_path), slot, role)


def _text_encoder_targets(model: ModelKeys) -> Iterable[Target]:
    if model.layout == "ldm":
        encoders = LDM_TEXT_ENCODERS[model.family]
    else:
        encoders = (("text_encoder/", "clip"), ("text_encoder_2/", "clip"))
    for index, (prefix, kind) in enumerate(encoders):
        lora_prefix = TEXT_ENCODER_PREFIX if model.family != "sdxl" else f"lora_te{index + 1}"
        slots = {k[len(prefix) :]: s for k, s in model.slots.items() if k.startswith(prefix)}
        if kind == "clip":
            yield from _hf_targets(slots, lora_prefix)
        else:
            layers = SD2_TEXT_LAYERS if model.family == "sd2" else None
            yield from _openclip_targets(slots, lora_prefix, layers=layers)


def _hf_targets(slots: Mapping[str, Slot], lora_prefix: str) -> Iterable[Target]:
    for key, slot in slots.items():
        if not key.endswith(".weight"):
            continue
        path = key[: -len(".weight")]
        if path.startswith(_CLIP_ROOTS):
            path = f"text_model.{path}"  # transformers >= 5.6 saves CLIPTextModel without it
        if path.startswith("text_model.") and len(slot.shape) == 2:
            role = LIERLA if _HF_TARGET.match(path) else OTHER
            yield Target(kohya_name(lora_prefix, path), slot, role)


def _openclip_targets(
    slots: Mapping[str, Slot], lora_prefix: str, *, layers: int | None
) -> Iterable[Target]:
    for key, slot in slots.items():
        match = _OPENCLIP.match(key)
        if match is None:
            continue
        layer, part = int(match.group(1)), match.group(2)
        if layers is not None and layer >= layers:
            continue
        base = f"text_model.encoder.layers.{layer}."
        if part == "attn.in_proj_weight":
            width = slot.shape[0] // 3
            for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
                fused = Slot(
                    slot.file, slot.key, slot.shape, slot.dtype, (i * width, (i + 1) * width)
                )
                yield Target(kohya_name(lora_prefix, base + "self_attn." + proj), fused, LIERLA)
        else:
            yield Target(kohya_name(lora_prefix, base + _OPENCLIP_NAMES[part]), slot, LIERLA)
