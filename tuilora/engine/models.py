"""Load a base model: a diffusers folder, or one original-layout ``.safetensors`` / ``.ckpt``.

The result is a ``BaseModel`` with lists of tokenizers and text encoders (one for SD1/SD2,
two for SDXL), the VAE, the UNet, a DDPM training scheduler with the model's betas, and the
facts the loop needs (v-prediction, the VAE's downsampling factor and scaling factor) read
from the model's own configs — no SD1.5 constants.

The API the engine and the tools build on:

- ``load_base_model(path, dtype=..., ...)``: everything, frozen weights already in the
  training dtype (a single file is read tensor by tensor, never as a second full copy);
- ``describe_model(path)`` (``tuilora.modelfile``): what the path is, without torch;
- ``vae_dtype_for(family, dtype, no_half_vae)``: the VAE's dtype rule.

Nothing is ever fetched from a hub, and nothing is unpickled without ``allow_pickle``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuilora.engine.single_file import (
    Components,
    build_empty,
    load_single_file,
    open_source,
)
from tuilora.engine.weights import load_component
from tuilora.errors import UserError
from tuilora.modelfile.checks import prediction_warnings
from tuilora.modelfile.configs import family_configs
from tuilora.modelfile.describe import (
    PICKLE_SUFFIXES,
    ModelFile,
    describe_model,
    read_json,
    refuse_pickle,
)
from tuilora.modelfile.family import FAMILY_NAMES
from tuilora.modelfile.ldm_names import LdmName, ldm_names


@dataclass
class BaseModel:
    family: str  # "sd1", "sd2" or "sdxl"
    tokenizers: list[Any]
    text_encoders: list[Any]
    vae: Any
    unet: Any
    noise_scheduler: Any
    v_prediction: bool
    #: How many pixels one latent cell covers (8 for real SD, 2 for the tiny test models).
    vae_scale: int
    #: The latent scaling factor from the VAE config (0.18215 for SD1/SD2).
    latent_scaling: float
    source: str
    #: Where the file and the config disagree (prediction type, v2): warnings for the run.
    notes: list[str] = field(default_factory=list)
    #: What ``describe_model`` found (family, size, precision, hints).
    file: ModelFile | None = None


def _offline() -> None:
    # Nothing may be fetched from a hub at run time; fail fast instead of hanging.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def vae_dtype_for(family: str, dtype: torch.dtype, no_half_vae: bool) -> torch.dtype:
    """SDXL's fp16 VAE overflows to NaN: it always encodes in fp32 (DESIGN §6), as does any
    VAE with ``no_half_vae``; otherwise the VAE is frozen in the training dtype."""
    return torch.float32 if no_half_vae or family == "sdxl" else dtype


def load_base_model(
    source: str,
    *,
    model_config: str | None = None,
    allow_pickle: bool = False,
    force_v_prediction: bool = False,
    vae_path: str | None = None,
    dtype: torch.dtype = torch.float32,
    no_half_vae: bool = False,
    v2: bool = False,
) -> BaseModel:
    """Load ``source`` (folder or file) with its frozen weights in ``dtype`` (the VAE per
    ``vae_dtype_for``); errors a user can fix are UserError naming the file."""
    _offline()
    refuse_pickle(Path(source).expanduser(), allow_pickle)  # consent before reading anything
    model = describe_model(source)
    family_hint = model.family or "sd1"
    vae_dtype = vae_dtype_for(family_hint, dtype, no_half_vae)
    if model.format == "diffusers":
        components = _from_folder(model, allow_pickle, dtype, vae_dtype)
        notes: list[str] = []
    else:
        components = load_single_file(
            model,
            model_config=model_config,
            allow_pickle=allow_pickle,
            dtype=dtype,
            vae_dtype=vae_dtype,
            skip_vae=bool(vae_path),
        )
        notes = prediction_warnings(model, force_v_prediction, v2)
    family = model.family or ("sdxl" if len(components.text_encoders) > 1 else "sd1")
    if vae_path:
        components.vae = load_vae(
            Path(vae_path).expanduser(),
            family=family,
            model_config=model_config,
            allow_pickle=allow_pickle,
            dtype=vae_dtype_for(family, dtype, no_half_vae),
        )
    return _assemble(components, family, str(model.path), force_v_prediction, notes, model)


def _refuse_pickled_parts(model: ModelFile, allow_pickle: bool) -> None:
    if model.pickled_parts and not allow_pickle:
        refuse_pickle(Path(model.pickled_parts[0]), allow_pickle)


def _from_folder(
    model: ModelFile, allow_pickle: bool, dtype: torch.dtype, vae_dtype: torch.dtype
) -> Components:
    _refuse_pickled_parts(model, allow_pickle)
    try:
        return _load_folder(model.path, model.family == "sdxl", dtype, vae_dtype)
    except (OSError, ValueError) as exc:  # diffusers' and transformers' loading errors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{model.path}: cannot load this diffusers folder ({reason})") from None


def _load_folder(path: Path, sdxl: bool, dtype: torch.dtype, vae_dtype: torch.dtype) -> Components:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    def safetensors(component: str) -> bool:
        # safetensors wherever a component has them; its pickle only with consent (checked)
        return any((path / component).glob("*.safetensors"))

    tokenizers = [CLIPTokenizer.from_pretrained(str(path / "tokenizer"))]
    encoders: list[Any] = [
        CLIPTextModel.from_pretrained(
            str(path / "text_encoder"), dtype=dtype, use_safetensors=safetensors("text_encoder")
        )
    ]
    if sdxl:
        tokenizers.append(CLIPTokenizer.from_pretrained(str(path / "tokenizer_2")))
        encoders.append(
            CLIPTextModelWithProjection.from_pretrained(
                str(path / "text_encoder_2"),
                dtype=dtype,
                use_safetensors=safetensors("text_encoder_2"),
            )
        )
    return Components(
        tokenizers=tokenizers,
        text_encoders=encoders,
        vae=AutoencoderKL.from_pretrained(
            str(path / "vae"), torch_dtype=vae_dtype, use_safetensors=safetensors("vae")
        ),
        unet=UNet2DConditionModel.from_pretrained(
            str(path / "unet"), torch_dtype=dtype, use_safetensors=safetensors("unet")
        ),
        scheduler_config=read_json(path / "scheduler" / "scheduler_config.json"),
    )


def load_vae(
    path: Path,
    *,
    family: str,
    model_config: str | None,
    allow_pickle: bool,
    dtype: torch.dtype,
) -> Any:
    """``vae = PATH``: a diffusers VAE folder (or a pipeline folder's ``vae/``), or one file
    in the original layout (with or without ``first_stage_model.``) or diffusers' own."""
    if not path.exists():
        raise UserError(f"vae {path}: no such file or folder")
    if path.is_dir():
        return _vae_from_folder(path, allow_pickle, dtype)
    if path.suffix.lower() not in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
        raise UserError(f"vae {path}: expected a .safetensors file or a diffusers VAE folder")
    refuse_pickle(path, allow_pickle, what="vae")
    if model_config:
        config = read_json(Path(model_config).expanduser() / "vae" / "config.json")
        origin = f"model_config {model_config}"
    else:
        config = family_configs(family)["vae"]
        origin = f"the shipped {FAMILY_NAMES[family]} configs"
    source = open_source(path, allow_pickle)
    try:
        module = build_empty("vae", config)
        keys = [key for key, _ in module.named_parameters()]
        load_component(
            module,
            _vae_names(source.names(), keys, config, path),
            source,
            dtype=dtype,
            label=f"VAE of {origin}",
        )
    finally:
        source.close()
    return module.eval()


def _vae_names(
    available: set[str], keys: list[str], config: dict[str, Any], path: Path
) -> dict[str, LdmName]:
    if any(name.startswith("first_stage_model.") for name in available):
        return ldm_names("vae", keys, config, "first_stage_model.")
    if any(name.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for name in available):
        return {key: LdmName(key) for key in keys}  # diffusers' own layout
    if any(name.startswith(("encoder.down.", "decoder.up.")) for name in available):
        return ldm_names("vae", keys, config)
    raise UserError(f"vae {path}: no VAE weights in it (encoder.* / decoder.*)")


def _vae_from_folder(path: Path, allow_pickle: bool, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderKL

    if (path / "model_index.json").is_file():
        path = path / "vae"
    if not (path / "config.json").is_file():
        raise UserError(f"vae {path}: not a diffusers VAE folder (no config.json)")
    pickled = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
    has_safetensors = any(p.suffix == ".safetensors" for p in path.iterdir())
    if pickled and not has_safetensors:
        refuse_pickle(pickled[0], allow_pickle, what="vae")
    try:
        return AutoencoderKL.from_pretrained(
            str(path), torch_dtype=dtype, use_safetensors=has_safetensors
        )
    except (OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"vae {path}: cannot load this VAE folder ({reason})") from None


def _assemble(
    components: Components,
    family: str,
    source: str,
    force_v: bool,
    notes: list[str],
    model: ModelFile,
) -> BaseModel:
    from diffusers import DDPMScheduler

    scheduler_config = components.scheduler_config
    v_prediction = force_v or scheduler_config.get("prediction_type") == "v_prediction"
    # Training noise: DDPM with the model's own betas (as sd-scripts builds it).
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=int(scheduler_config.get("num_train_timesteps", 1000)),
        beta_start=float(scheduler_config.get("beta_start", 0.00085)),
        beta_end=float(scheduler_config.get("beta_end", 0.012)),
        beta_schedule=str(scheduler_config.get("beta_schedule", "scaled_linear")),
        prediction_type="v_prediction" if v_prediction else "epsilon",
        clip_sample=False,
    )
    vae = components.vae
    return BaseModel(
        family=family,
        tokenizers=components.tokenizers,
        text_encoders=components.text_encoders,
        vae=vae,
        unet=components.unet,
        noise_scheduler=noise_scheduler,
        v_prediction=v_prediction,
        vae_scale=2 ** (len(vae.config.block_out_channels) - 1),
        latent_scaling=float(vae.config.scaling_factor),
        source=source,
        notes=notes,
        file=model,
    )
