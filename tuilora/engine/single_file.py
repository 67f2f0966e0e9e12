"""Build a base model from one original-layout checkpoint, offline, with no extra files.

The family comes from the file's header (``tuilora.modelfile``), the component configs and
CLIP tokenizers from the package (or from a ``model_config`` folder, which overrides them),
the modules are built on the meta device and filled from the file one tensor at a time in
the training dtype (``weights``). ``.ckpt`` files are read with ``weights_only=True`` and
only with the user's consent (``--allow-pickle``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuilora.engine.weights import (
    SafetensorsSource,
    StateDictSource,
    TensorSource,
    load_component,
    load_pickled_checkpoint,
)
from tuilora.errors import UserError
from tuilora.modelfile.clip_vocab import MODEL_MAX_LENGTH, clip_merges, clip_vocab
from tuilora.modelfile.configs import family_configs
from tuilora.modelfile.describe import ModelFile, read_json, refuse_pickle
from tuilora.modelfile.family import FAMILY_NAMES
from tuilora.modelfile.header import read_safetensors_header
from tuilora.modelfile.ldm_names import LAYOUTS, ConversionError, ldm_names

TEXT_COMPONENTS = ("text_encoder", "text_encoder_2")


@dataclass
class Components:
    """What a pipeline folder would hold, built: tokenizers, encoders, VAE, UNet, schedule."""

    tokenizers: list[Any]
    text_encoders: list[Any]
    vae: Any
    unet: Any
    scheduler_config: dict[str, Any]


def build_empty(component: str, config: Mapping[str, Any]) -> torch.nn.Module:
    """``component`` from its config on the meta device (parameters take no memory; the few
    buffers, e.g. CLIP's position ids, are real)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        if component == "unet":
            from diffusers import UNet2DConditionModel

            return UNet2DConditionModel.from_config(dict(config))
        if component == "vae":
            from diffusers import AutoencoderKL

            return AutoencoderKL.from_config(dict(config))
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

        fields = {k: v for k, v in config.items() if not k.startswith("_")}
        text_config = CLIPTextConfig(**fields)
        architectures = fields.get("architectures") or []
        if "CLIPTextModelWithProjection" in architectures:
            return CLIPTextModelWithProjection(text_config)
        return CLIPTextModel(text_config)


def clip_tokenizer(pad_token: str) -> Any:
    """CLIP's tokenizer from the shipped vocabulary; ``pad_token`` ``!`` for SD2 and SDXL's
    second tokenizer (sd-scripts sets pad id 0 there), EOS otherwise."""
    from transformers import CLIPTokenizer

    # tokenizers' BPE takes (left, right) pairs; transformers' annotation says list[str]
    merges: Any = [tuple(line.split(" ")) for line in clip_merges()]
    return CLIPTokenizer(
        vocab=clip_vocab(), merges=merges, pad_token=pad_token, model_max_length=MODEL_MAX_LENGTH
    )


def _override_configs(folder: Path, family: str) -> dict[str, Any]:
    """The configs and tokenizers of a ``model_config`` diffusers folder."""
    from transformers import CLIPTokenizer

    if not (folder / "model_index.json").is_file():
        raise UserError(
            f"model_config {folder}: not a diffusers model folder (no model_index.json);"
            " give a folder of the same architecture saved with save_pretrained"
        )
    components = [name for name, _, _ in LAYOUTS[family]]
    missing = [name for name in components if not (folder / name / "config.json").is_file()]
    if missing:
        raise UserError(
            f"model_config {folder}: has no {missing[0]}/config.json, which a"
            f" {FAMILY_NAMES[family]} model needs: another architecture than the model file"
        )
    configs: dict[str, Any] = {
        name: read_json(folder / name / "config.json") for name in components
    }
    configs["scheduler"] = read_json(folder / "scheduler" / "scheduler_config.json")
    tokenizers = []
    for index in range(len([c for c in components if c in TEXT_COMPONENTS])):
        sub = folder / ("tokenizer" if index == 0 else f"tokenizer_{index + 1}")
        tokenizers.append(CLIPTokenizer.from_pretrained(str(sub)))
    configs["tokenizer_objects"] = tokenizers
    return configs


def open_source(path: Path, allow_pickle: bool) -> SafetensorsSource | StateDictSource:
    refuse_pickle(path, allow_pickle)
    if path.suffix.lower() == ".safetensors":
        return SafetensorsSource(read_safetensors_header(path))
    return load_pickled_checkpoint(path)


def load_single_file(
    model: ModelFile,
    *,
    model_config: str | None,
    allow_pickle: bool,
    dtype: torch.dtype,
    vae_dtype: torch.dtype,
    skip_vae: bool = False,
) -> Components:
    """The components of the checkpoint ``model`` (described by ``describe_model``)."""
    source = open_source(model.path, allow_pickle)
    try:
        family = model.family or _family_of_loaded(source)
        if model_config:
            configs = _override_configs(Path(model_config).expanduser(), family)
            tokenizers = configs.pop("tokenizer_objects")
            origin = f"model_config {model_config}"
        else:
            configs = family_configs(family)
            tokenizers = [clip_tokenizer(t["pad_token"]) for t in configs["tokenizers"]]
            origin = f"the shipped {FAMILY_NAMES[family]} configs"
        if not skip_vae and not model.has_vae:
            raise UserError(
                f"{model.path}: has no VAE weights (first_stage_model.*): set vae = to a"
                " VAE file or folder"
            )
        built: dict[str, Any] = {}
        for component, prefix, style in LAYOUTS[family]:
            if component == "vae" and skip_vae:
                continue
            module = build_empty(component, configs[component])
            names = _names(module, style, configs[component], prefix, model.path)
            label = f"{component.replace('_', ' ')} of {origin}"
            load_component(
                module,
                names,
                source,
                dtype=vae_dtype if component == "vae" else dtype,
                label=label,
            )
            built[component] = module.eval()
    finally:
        source.close()
    return Components(
        tokenizers=tokenizers,
        text_encoders=[built[name] for name in TEXT_COMPONENTS if name in built],
        vae=built.get("vae"),
        unet=built["unet"],
        scheduler_config=dict(configs["scheduler"]),
    )


def _names(
    module: torch.nn.Module, style: str, config: Mapping[str, Any], prefix: str, path: Path
) -> dict[str, Any]:
    keys = [key for key, _ in module.named_parameters()]
    try:
        return ldm_names(style, keys, config, prefix)
    except ConversionError as exc:
        raise UserError(f"{path}: cannot map the model's configs to the file ({exc})") from None


def _family_of_loaded(source: TensorSource) -> str:
    """The family of an old (non-zip) ``.ckpt``, known only once it is loaded."""
    from tuilora.modelfile.family import detect_architecture

    return detect_architecture(source.names(), source.shape, source=source.label).family
