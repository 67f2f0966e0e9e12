"""Load a base model: a diffusers folder, or one ``.safetensors`` / ``.ckpt`` file, offline.

The result is a ``BaseModel`` with lists of tokenizers and text encoders (one for SD1/SD2,
two for SDXL), the VAE, the UNet, a DDPM training scheduler with the model's betas, and the
facts the loop needs (v-prediction, the VAE's downsampling factor and scaling factor) read
from the model's own configs — no SD1.5 constants.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuilora.errors import UserError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


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


def _offline() -> None:
    # Nothing may be fetched from a hub at run time; fail fast instead of hanging.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_base_model(
    source: str,
    *,
    model_config: str | None = None,
    allow_pickle: bool = False,
    force_v_prediction: bool = False,
    vae_path: str | None = None,
) -> BaseModel:
    """Load ``source`` (folder or file); errors a user can fix are UserError naming it."""
    _offline()
    path = Path(source)
    if not path.exists():
        raise UserError(f"pretrained_model_name_or_path {source}: no such file or folder")
    if path.is_dir():
        components = _from_folder(path)
    else:
        components = _from_single_file(path, model_config, allow_pickle)
    if vae_path:
        components["vae"] = _load_vae(Path(vae_path))
    return _assemble(components, str(path), force_v_prediction)


def _from_folder(path: Path) -> dict[str, Any]:
    if not (path / "model_index.json").is_file():
        raise UserError(
            f"{path}: not a diffusers model folder (no model_index.json); give the folder"
            " saved by diffusers or a single .safetensors file"
        )
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    tokenizers = [CLIPTokenizer.from_pretrained(str(path / "tokenizer"))]
    encoders: list[Any] = [CLIPTextModel.from_pretrained(str(path / "text_encoder"))]
    if "text_encoder_2" in index:
        tokenizers.append(CLIPTokenizer.from_pretrained(str(path / "tokenizer_2")))
        encoders.append(CLIPTextModelWithProjection.from_pretrained(str(path / "text_encoder_2")))
    return {
        "tokenizers": tokenizers,
        "text_encoders": encoders,
        "vae": AutoencoderKL.from_pretrained(str(path / "vae")),
        "unet": UNet2DConditionModel.from_pretrained(str(path / "unet")),
        "scheduler_config": _read_json(path / "scheduler" / "scheduler_config.json"),
    }


def _from_single_file(path: Path, model_config: str | None, allow_pickle: bool) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise UserError(
            f"{path}: {suffix} files are Python pickles that can run code when loaded;"
            " convert it to .safetensors, or pass --allow-pickle if you trust its source"
        )
    if suffix not in (".safetensors", *PICKLE_SUFFIXES):
        raise UserError(f"{path}: expected a .safetensors (or .ckpt) model file or a folder")
    if model_config is None:
        raise UserError(
            f"{path}: loading a single-file model offline needs its configs: set model_config"
            " to a diffusers folder of the same architecture (e.g. one saved with"
            " save_pretrained)"
        )
    if not (Path(model_config) / "model_index.json").is_file():
        raise UserError(
            f"model_config {model_config}: not a diffusers model folder (no model_index.json);"
            " give a folder of the same architecture saved with save_pretrained"
        )
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    index = _read_json(Path(model_config) / "model_index.json")
    pipeline_class = (
        StableDiffusionXLPipeline if "text_encoder_2" in index else StableDiffusionPipeline
    )
    try:
        pipeline = pipeline_class.from_single_file(
            str(path), config=str(model_config), local_files_only=True
        )
    except (OSError, ValueError, KeyError, SingleFileComponentError) as exc:
        # A missing key or a shape mismatch usually means the file and model_config are
        # different architectures; diffusers' messages run over several lines, keep the first.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"{path}: cannot load as a Stable Diffusion checkpoint with the configs of"
            f" model_config {model_config} ({reason})"
        ) from None
    tokenizers = [pipeline.tokenizer]
    encoders = [pipeline.text_encoder]
    if getattr(pipeline, "text_encoder_2", None) is not None:
        tokenizers.append(pipeline.tokenizer_2)
        encoders.append(pipeline.text_encoder_2)
    return {
        "tokenizers": tokenizers,
        "text_encoders": encoders,
        "vae": pipeline.vae,
        "unet": pipeline.unet,
        "scheduler_config": dict(pipeline.scheduler.config),
    }


def _load_vae(path: Path) -> Any:
    from diffusers import AutoencoderKL

    if path.is_dir():
        return AutoencoderKL.from_pretrained(str(path))
    return AutoencoderKL.from_single_file(str(path))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (is this a complete diffusers model folder?)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _assemble(components: dict[str, Any], source: str, force_v: bool) -> BaseModel:
    from diffusers import DDPMScheduler

    scheduler_config = components["scheduler_config"]
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
    vae = components["vae"]
    encoders = components["text_encoders"]
    family = "sdxl" if len(encoders) > 1 else ("sd2" if _is_sd2(encoders[0]) else "sd1")
    return BaseModel(
        family=family,
        tokenizers=components["tokenizers"],
        text_encoders=encoders,
        vae=vae,
        unet=components["unet"],
        noise_scheduler=noise_scheduler,
        v_prediction=v_prediction,
        vae_scale=2 ** (len(vae.config.block_out_channels) - 1),
        latent_scaling=float(vae.config.scaling_factor),
        source=source,
    )


def _is_sd2(encoder: Any) -> bool:
    """SD2's OpenCLIP text encoder uses GELU where SD1's CLIP uses quick_gelu."""
    return str(getattr(encoder.config, "hidden_act", "quick_gelu")) == "gelu"
