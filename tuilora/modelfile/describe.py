"""What a base model path is, without torch: family, size, precision, prediction hints.

``describe_model`` is the one check every caller shares: ``tuilora advise --model`` and the
wizard show it and advise for its family, ``tuilora train`` runs it before it touches the run
folder, and the engine loads what it found. It reads a safetensors header, the names inside a
``.ckpt`` (without unpickling), or a diffusers folder's JSON files — never the weights.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tuilora.errors import UserError
from tuilora.modelfile.family import FAMILY_NAMES, UNET_PREFIX, detect_architecture
from tuilora.modelfile.header import SafetensorsHeader, read_safetensors_header
from tuilora.modelfile.pickled import pickled_tensor_names
from tuilora.parsing import loads_json

#: Suffixes of files that are Python pickles (loading one can run code).
PICKLE_SUFFIXES: Final = (".ckpt", ".pt", ".pth", ".bin")
#: safetensors dtype → the name people use.
PRECISIONS: Final = {
    "F16": "fp16",
    "BF16": "bf16",
    "F32": "fp32",
    "F8_E4M3": "fp8",
    "F8_E5M2": "fp8",
}
#: The advisor's ``--base`` for each family (``nai`` is an SD1.x model too).
ADVISOR_BASES: Final = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl"}
BASE_FAMILIES: Final = {"sd15": "sd1", "nai": "sd1", "sd2": "sd2", "sdxl": "sdxl"}
#: SDXL-derived families people name their files after (shown, never decisive).
_LINEAGES: Final = (
    (re.compile(r"pony", re.I), "Pony"),
    (re.compile(r"illustrious|(?<![a-z])ilxl|(?<![a-z])il[-_ ]?xl", re.I), "Illustrious"),
    (re.compile(r"noob", re.I), "NoobAI"),
)
_V_NAME = re.compile(r"(?<![a-z])v[-_ ]?pred(iction)?|vpred", re.I)
_EPS_NAME = re.compile(r"eps(ilon)?[-_ ]?pred", re.I)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    #: "safetensors", "pickle" (.ckpt & co.) or "diffusers" (a folder).
    format: str
    #: "sd1", "sd2" or "sdxl"; None for an old pickle whose names cannot be read safely.
    family: str | None
    size_bytes: int
    #: "fp16", "bf16", "fp32" or "fp8" (the UNet's weights); None when unknown.
    precision: str | None
    has_vae: bool = True
    v_pred_key: bool = False
    ztsnr_key: bool = False
    #: "Pony", "Illustrious" or "NoobAI" when the name or metadata says so.
    lineage: str | None = None
    #: ("v" or "epsilon", why) from the file's name, metadata or scheduler config.
    prediction_hint: tuple[str, str] | None = None
    #: Weight files of a diffusers folder that are pickles (no .safetensors beside them).
    pickled_parts: tuple[str, ...] = ()

    @property
    def family_name(self) -> str:
        if self.family is None:
            return "unknown family"
        name = FAMILY_NAMES[self.family]
        return f"{name} ({self.lineage})" if self.lineage else name

    @property
    def prediction_hint_text(self) -> str:
        return "" if self.prediction_hint is None else self.prediction_hint[1]

    @property
    def advisor_base(self) -> str | None:
        return None if self.family is None else ADVISOR_BASES[self.family]

    def summary(self) -> str:
        """One line for people: ``SDXL (Pony), 6.9 GB, fp16``."""
        parts = [self.family_name, _size(self.size_bytes)]
        if self.precision:
            parts.append(self.precision)
        if self.format == "pickle":
            parts.append("pickle")
        if self.v_pred_key or (self.prediction_hint and self.prediction_hint[0] == "v"):
            parts.append("v-prediction")
        return ", ".join(parts)


def describe_model(path: str | Path, *, what: str = "pretrained_model_name_or_path") -> ModelFile:
    """Read what ``path`` is; UserError (one line naming the path) if it is not a model."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{what} {path}: no such file or folder")
    if path.is_dir():
        return _describe_folder(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return _describe_pickle(path)
    if suffix != ".safetensors":
        raise UserError(
            f"{path}: expected a .safetensors (or .ckpt) model file or a diffusers folder"
        )
    header = read_safetensors_header(path)
    arch = detect_architecture(header.tensors.keys(), header.shape, source=str(path))
    return ModelFile(
        path=path,
        format="safetensors",
        family=arch.family,
        size_bytes=header.file_size,
        precision=_precision(header),
        has_vae=arch.has_vae,
        v_pred_key=arch.v_pred_key,
        ztsnr_key=arch.ztsnr_key,
        lineage=_lineage(path.name, header.metadata),
        prediction_hint=_prediction_hint(path.name, header.metadata, arch.family),
    )


def refuse_pickle(path: str | Path, allow_pickle: bool, *, what: str = "") -> None:
    """The consent rule for every pickle a run would load (models, VAEs, folder weights)."""
    path = Path(path)
    if allow_pickle or path.suffix.lower() not in PICKLE_SUFFIXES:
        return
    label = f"{what} {path}" if what else str(path)
    raise UserError(
        f"{label}: {path.suffix.lower()} files are Python pickles that can run code when"
        " loaded; convert it to .safetensors, or pass --allow-pickle if you trust its source"
    )


def _describe_pickle(path: Path) -> ModelFile:
    names = pickled_tensor_names(path)
    arch = None
    if names:
        arch = detect_architecture(names, None, source=str(path))
    return ModelFile(
        path=path,
        format="pickle",
        family=arch.family if arch else None,
        size_bytes=path.stat().st_size,
        precision=None,
        has_vae=arch.has_vae if arch else True,
        v_pred_key=bool(arch and arch.v_pred_key),
        ztsnr_key=bool(arch and arch.ztsnr_key),
        lineage=_lineage(path.name, {}),
        prediction_hint=_prediction_hint(path.name, {}, arch.family if arch else None),
    )


def _describe_folder(path: Path) -> ModelFile:
    index = path / "model_index.json"
    if not index.is_file():
        raise UserError(
            f"{path}: not a diffusers model folder (no model_index.json); give the folder"
            " saved by diffusers or a single .safetensors file"
        )
    components = read_json(index)
    if "text_encoder_2" in components and "text_encoder" in components:
        family = "sdxl"
    else:
        text_config = read_json(path / "text_encoder" / "config.json")
        family = "sd2" if text_config.get("hidden_act") == "gelu" else "sd1"
    scheduler = path / "scheduler" / "scheduler_config.json"
    prediction = read_json(scheduler).get("prediction_type") if scheduler.is_file() else None
    hint = None
    if prediction in ("v_prediction", "epsilon"):
        hint = ("v" if prediction == "v_prediction" else "epsilon", "its scheduler config")
    weights = [file for file in path.rglob("*") if file.is_file() and _is_weight_file(file.name)]
    return ModelFile(
        path=path,
        format="diffusers",
        family=family,
        size_bytes=sum(file.stat().st_size for file in weights),
        precision=_folder_precision(path / "unet"),
        lineage=_lineage(path.name, {}),
        prediction_hint=hint,
        pickled_parts=tuple(str(p) for p in pickled_folder_weights(path)),
    )


def pickled_folder_weights(path: Path) -> list[Path]:
    """The weight files a diffusers folder would be loaded from that are pickles: those of
    every component folder that has no ``.safetensors`` weights."""
    found: list[Path] = []
    for component in sorted(p for p in path.iterdir() if p.is_dir()):
        names = [file.name for file in component.iterdir() if file.is_file()]
        if any(name.endswith(".safetensors") for name in names):
            continue
        found.extend(component / name for name in sorted(names) if name.endswith(PICKLE_SUFFIXES))
    return found


def _is_weight_file(name: str) -> bool:
    return name.endswith((".safetensors", *PICKLE_SUFFIXES))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a model folder; UserError naming the file otherwise."""
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (is this a complete diffusers model folder?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _precision(header: SafetensorsHeader) -> str | None:
    """The dtype holding most of the UNet's bytes (a few fp32 norms do not make it fp32)."""
    weight: Counter[str] = Counter()
    unet = [info for name, info in header.tensors.items() if name.startswith(UNET_PREFIX)]
    for info in unet or header.tensors.values():
        weight[info.dtype] += info.nbytes
    if not weight:
        return None
    return PRECISIONS.get(weight.most_common(1)[0][0])


def _folder_precision(unet: Path) -> str | None:
    for file in sorted(unet.glob("*.safetensors")):
        return _precision(read_safetensors_header(file))
    return None


def _lineage(name: str, metadata: dict[str, str] | Any) -> str | None:
    text = " ".join([name, str(metadata.get("modelspec.title", ""))])
    for pattern, lineage in _LINEAGES:
        if pattern.search(text):
            return lineage
    return None


def _prediction_hint(
    name: str, metadata: dict[str, str] | Any, family: str | None
) -> tuple[str, str] | None:
    spec = str(metadata.get("modelspec.prediction_type", "")).lower()
    if spec in ("v", "epsilon"):
        return spec, "its modelspec.prediction_type metadata"
    if str(metadata.get("modelspec.architecture", "")).endswith("-768-v"):
        return "v", "its modelspec.architecture metadata"
    if _V_NAME.search(name):
        return "v", "its name"
    if _EPS_NAME.search(name):
        return "epsilon", "its name"
    if family == "sd2" and "768" in name:
        return "v", "its name (SD2's 768 models are v-prediction)"
    if family == "sd2" and ("512" in name or "base" in name.lower()):
        return "epsilon", "its name (SD2's 512 base models are epsilon-prediction)"
    return None


def _size(size: int) -> str:
    if size >= 1_000_000_000:
        return f"{size / 1e9:.1f} GB"
    return f"{size / 1e6:.0f} MB"
