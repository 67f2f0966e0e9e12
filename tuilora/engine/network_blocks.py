"""Ranks and learning rates per UNet block, as sd-scripts' ``networks/lora.py`` reads them
from ``network_args``: ``block_dims`` / ``block_alphas`` / ``conv_block_dims`` /
``conv_block_alphas`` (one value per block) and ``down_lr_weight`` / ``mid_lr_weight`` /
``up_lr_weight`` (LR multipliers, or a preset curve), with ``block_lr_zero_threshold``.

Blocks are numbered as sd-scripts numbers them (``get_block_index``): SD1/SD2 have 25 (0 holds
no LoRA, 1-12 the down blocks, 12 the middle, 13-24 the up blocks), SDXL 23 (input blocks
1-9, middle 10-12, output blocks 13-21, 0 and 22 without LoRA).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tuilora.errors import UserError

SD_BLOCKS, SD_MID_BLOCKS = 12, 1
SDXL_BLOCKS, SDXL_MID_BLOCKS = 9, 3
_UPDOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")


def block_count(is_sdxl: bool) -> int:
    if is_sdxl:
        return 1 + SDXL_BLOCKS * 2 + SDXL_MID_BLOCKS + 1
    return SD_BLOCKS * 2 + SD_MID_BLOCKS


def block_index(lora_name: str, is_sdxl: bool) -> int:
    """sd-scripts' ``get_block_index`` of a module name (-1 when none applies)."""
    if not is_sdxl:
        match = _UPDOWN.search(lora_name)
        if match:
            side, level, kind, index = match.groups()
            within = 3 * int(level) + (2 if kind in ("upsamplers", "downsamplers") else int(index))
            return 1 + within if side == "down" else SD_BLOCKS + 1 + within
        return SD_BLOCKS if "mid_block_" in lora_name else -1
    if not lora_name.startswith("lora_unet_"):
        return -1
    name = lora_name[len("lora_unet_") :]
    if name.startswith(("time_embed_", "label_emb_")):
        return 0
    for prefix, first in (("input_blocks_", 1), ("middle_block_", 10), ("output_blocks_", 13)):
        if name.startswith(prefix):
            return first + int(name.split("_")[2])
    return 22 if name.startswith("out_") else -1


def _lr_preset(text: str, length: int) -> list[float]:
    name, _, base_text = text.partition("+")
    base = float(base_text) if base_text else 0.0
    steps = range(length)
    if name == "cosine":
        return [math.sin(math.pi * (i / (length - 1)) / 2) + base for i in reversed(steps)]
    if name == "sine":
        return [math.sin(math.pi * (i / (length - 1)) / 2) + base for i in steps]
    if name == "linear":
        return [i / (length - 1) + base for i in steps]
    if name == "reverse_linear":
        return [i / (length - 1) + base for i in reversed(steps)]
    return [base] * length  # zeros


def _floats(text: str) -> list[float]:
    return [float(part) if part else 0.0 for part in text.split(",")]


def block_lr_weights(args: Mapping[str, str], is_sdxl: bool) -> list[float] | None:
    """sd-scripts' ``get_block_lr_weight``: one LR multiplier per block, or None when no
    lr weight is given. Short lists are filled with 1, long ones cut (sd-scripts warns);
    weights at or below ``block_lr_zero_threshold`` become 0 (the block gets no LoRA)."""
    given = {key: args.get(key) for key in ("down_lr_weight", "mid_lr_weight", "up_lr_weight")}
    if all(value is None for value in given.values()):
        return None
    side = SDXL_BLOCKS if is_sdxl else SD_BLOCKS
    mid = SDXL_MID_BLOCKS if is_sdxl else SD_MID_BLOCKS
    threshold = float(args.get("block_lr_zero_threshold", 0.0))

    def weights(key: str, length: int) -> list[float]:
        text = given[key]
        if text is None:
            return [1.0] * length
        listed = key == "mid_lr_weight" or "," in text
        values = _floats(text) if listed else _lr_preset(text, length)
        values = (values + [1.0] * length)[:length]
        return [w if w > threshold else 0.0 for w in values]

    out = weights("down_lr_weight", side) + weights("mid_lr_weight", mid)
    out += weights("up_lr_weight", side)
    return [1.0, *out, 1.0] if is_sdxl else out


@dataclass(frozen=True)
class BlockRanks:
    """Rank and alpha per block for linear / 1x1 modules, and for 3x3 convs (None: none)."""

    dims: list[int]
    alphas: list[float]
    conv_dims: list[int] | None
    conv_alphas: list[float] | None

    def for_module(self, index: int, is_3x3: bool) -> tuple[int, float] | None:
        dims, alphas = (self.conv_dims, self.conv_alphas) if is_3x3 else (self.dims, self.alphas)
        if dims is None or alphas is None:
            return None
        return (dims[index], alphas[index]) if dims[index] else None


def block_ranks(
    args: Mapping[str, str],
    is_sdxl: bool,
    rank: int,
    alpha: float,
    conv_rank: int | None,
    conv_alpha: float | None,
    lr_weights: list[float] | None,
) -> BlockRanks | None:
    """sd-scripts' ``get_block_dims_and_alphas`` then ``remove_block_dims_and_alphas``: block
    mode is on when ``block_dims`` or an lr weight is given; missing lists repeat the
    network's rank and alpha (and ``conv_dim`` / ``conv_alpha``); blocks whose LR weight is 0
    get no LoRA."""
    if "block_dims" not in args and lr_weights is None:
        return None
    count = block_count(is_sdxl)

    def listed(key: str, parse: type, default: float | None) -> list[float] | None:
        if key not in args:
            return None if default is None else [default] * count
        values = [parse(part) for part in args[key].split(",")]
        if len(values) != count:
            raise UserError(
                f"network_args {key}: {len(values)} values, this model has {count} blocks"
                " (sd-scripts' numbering)"
            )
        return values

    dims = [int(v) for v in listed("block_dims", int, rank) or []]
    alphas = listed("block_alphas", float, alpha) or []
    conv_dims_f = listed("conv_block_dims", int, conv_rank)
    conv_dims = [int(v) for v in conv_dims_f] if conv_dims_f is not None else None
    conv_alphas = None
    if conv_dims is not None:
        default_alpha = conv_alpha if conv_alpha is not None else 1.0
        conv_alphas = listed("conv_block_alphas", float, default_alpha)
    for index, weight in enumerate(lr_weights or []):
        if weight == 0:
            dims[index] = 0
            if conv_dims is not None:
                conv_dims[index] = 0
    return BlockRanks(dims, [float(a) for a in alphas], conv_dims, conv_alphas)
