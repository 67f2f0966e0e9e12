"""Rough memory and file-size estimates (the project's own model, marked as such).

The numbers are calibrated on the two figures the guide gives: an SD1.5 LoRA at batch 1,
512x512 with D-Adaptation takes about 6.1 GB (G-OPT-DADAPT; taken as a rank-128 LoRA, the
sample scripts' rank of the time, CUDA context included), and a
LoRA file is about rank x 1.3 MB at fp16 (G-RANK). SDXL figures scale those by the model's
size. They decide whether gradient checkpointing is turned on; they are not measurements.
"""

from __future__ import annotations

from typing import Final

# fp16 weights of UNet + text encoder(s) + VAE, in GB.
_WEIGHTS_GB: Final = {"sd15": 2.0, "nai": 2.0, "sd2": 2.2, "sdxl": 6.9}
# The text encoders' share of those weights: with cached text-encoder outputs sd-scripts moves
# them off the GPU after caching (SDXL: CLIP-L 0.25 GB + OpenCLIP-bigG 1.4 GB).
_TEXT_ENCODERS_GB: Final = {"sd15": 0.25, "nai": 0.25, "sd2": 0.7, "sdxl": 1.6}
# Activations for batch 1 at the family's native resolution without checkpointing, in GB.
_ACTIVATIONS_GB: Final = {"sd15": 1.6, "nai": 1.6, "sd2": 1.8, "sdxl": 5.5}
_NATIVE_RES: Final = {"sd15": 512, "nai": 512, "sd2": 512, "sdxl": 1024}
# LoRA parameters per unit of rank (LierLa): SD1.5 rank 1 ~ 0.65 M parameters (1.3 MB fp16).
_PARAMS_PER_RANK: Final = {"sd15": 0.65e6, "nai": 0.65e6, "sd2": 0.7e6, "sdxl": 3.5e6}
# Optimizer state bytes per trainable parameter (fp32 weight + grad are added separately).
_STATE_BYTES: Final = {
    "AdamW": 8.0,
    "AdamW8bit": 2.0,
    "Lion": 4.0,
    "SGDNesterov": 4.0,
    "AdaFactor": 1.0,
    "DAdaptAdam": 12.0,
    "Prodigy": 16.0,
}
# What the CUDA context and allocator caches hold before any tensor, in GB.
_CUDA_CONTEXT_GB: Final = 0.8
# Gradient checkpointing keeps roughly a third of the activations.
_CHECKPOINTING_FACTOR: Final = 0.35
# Conv LoRA (C3Lier, LoCon) adds about half again as many parameters; LoHa doubles them.
_NETWORK_FACTOR: Final = {"lora": 1.0, "locon": 1.5, "loha": 2.0, "lokr": 0.5, "ia3": 0.02}


def lora_parameters(base: str, rank: int, network_type: str = "lora") -> float:
    return _PARAMS_PER_RANK[base] * rank * _NETWORK_FACTOR[network_type]


def vram_estimate(
    base: str,
    optimizer_type: str,
    batch_size: int,
    resolution: int | str,
    rank: int,
    network_type: str = "lora",
    gradient_checkpointing: bool = False,
    text_encoder_outputs_cached: bool = False,
) -> float:
    """Peak training memory in GB, rounded to 0.1."""
    scale = (_longest_side(resolution) / _NATIVE_RES[base]) ** 2
    activations = _ACTIVATIONS_GB[base] * batch_size * scale
    if gradient_checkpointing:
        activations *= _CHECKPOINTING_FACTOR
    params = lora_parameters(base, rank, network_type)
    state = _STATE_BYTES.get(optimizer_type, 8.0)
    trainable = params * (4 + 4 + state) / 1e9
    weights = _WEIGHTS_GB[base]
    if text_encoder_outputs_cached:
        weights -= _TEXT_ENCODERS_GB[base]
    return round(_CUDA_CONTEXT_GB + weights + activations + trainable, 1)


def file_size_mb(base: str, rank: int, network_type: str = "lora", precision: str = "fp16") -> int:
    """Size of the saved LoRA file in MB (fp16 or bf16: 2 bytes a weight; float: 4)."""
    bytes_per_weight = 4 if precision == "float" else 2
    return max(1, round(lora_parameters(base, rank, network_type) * bytes_per_weight / 1e6))


def mb_per_rank(base: str, network_type: str = "lora") -> float:
    """MB of an fp16 file per unit of rank, for the sentence that explains the file size."""
    return round(lora_parameters(base, 1, network_type) * 2 / 1e6, 1)


def memory_tips(
    base: str,
    optimizer_type: str,
    batch_size: int,
    gradient_checkpointing: bool,
    cache_latents: bool,
    resolution: int | str,
    unet_only: bool,
) -> str:
    """What still lowers memory, leaving out what the config already does (a reason must
    never tell the user to do what the advice did)."""
    tips = []
    if batch_size > 1:
        tips.append("batch 1")
    if not gradient_checkpointing:
        tips.append("gradient_checkpointing")
    if not cache_latents:
        tips.append("cache_latents")
    if _STATE_BYTES.get(optimizer_type, 8.0) > _STATE_BYTES["AdamW8bit"]:
        tips.append("AdamW8bit (or AdaFactor)")
    if base == "sdxl" and not unet_only:
        tips.append("network_train_unet_only with cache_text_encoder_outputs")
    if _longest_side(resolution) > _NATIVE_RES[base]:
        tips.append("a lower resolution")
    if not tips:
        return "a card with more memory"
    return ", ".join(tips[:-1]) + (" or " if len(tips) > 1 else "") + tips[-1]


def _longest_side(resolution: int | str) -> int:
    """512 or "512,768" (a pinned non-square resolution counts by its longer side)."""
    if isinstance(resolution, int):
        return resolution
    return max(int(part) for part in str(resolution).split(","))
