"""sd-scripts' LoRA module names as string rules (no torch): the prefixes, dots to
underscores, and the two spellings of a UNet's module paths.

A UNet weight has a diffusers path (``down_blocks.1.attentions.0.proj_in``) and an SGM /
original-layout path (``input_blocks.4.1.proj_in``, what LDM single files and sd-scripts'
own SDXL UNet use). sd-scripts names SD1/SD2 LoRA modules after the diffusers path and SDXL
ones after the SGM path; ``sgm_prefixes`` maps one to the other from the UNet's block layout
(a diffusers config, or the layout read back from an original-layout file's keys by
``layout_from_sgm_paths``). ``tuilora.engine.naming`` applies these rules to module trees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

UNET_PREFIX = "lora_unet"
TEXT_ENCODER_PREFIX = "lora_te"

#: Inside a ResNet block: diffusers' names → SGM's (``ResBlock`` of the original code).
SGM_RESNET_PARTS = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
)


def kohya_name(prefix: str, path: str) -> str:
    return f"{prefix}.{path}".replace(".", "_")


def _per_block(value: int | Sequence[int], blocks: int) -> list[int]:
    return [int(value)] * blocks if isinstance(value, int) else [int(v) for v in value]


def sgm_prefixes(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(diffusers, SGM) path prefixes for a UNet2DConditionModel config, longest first.

    The SGM UNet numbers its blocks flat: ``input_blocks.0`` is ``conv_in``; each down
    level adds one input block per ResNet (the ResNet at ``.0``, its transformer at ``.1``)
    and one for the downsampler (``.0.op``) unless it is the last level; the middle block
    is ResNet, transformer, ResNet; each up level adds ``layers + 1`` output blocks, the
    last of which also holds the upsampler after the ResNet and transformer.
    """
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    layers = _per_block(config["layers_per_block"], len(down_types))
    blocks: list[tuple[str, str]] = [
        ("conv_in.", "input_blocks.0.0."),
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("add_embedding.linear_1.", "label_emb.0.0."),
        ("add_embedding.linear_2.", "label_emb.0.2."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    index = 1
    for level, kind in enumerate(down_types):
        attention = "CrossAttn" in kind
        for j in range(layers[level]):
            blocks.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{index}.0."))
            if attention:
                blocks.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{index}.1."))
            index += 1
        if level < len(down_types) - 1:
            down = f"down_blocks.{level}.downsamplers.0.conv."
            blocks.append((down, f"input_blocks.{index}.0.op."))
            index += 1
    index = 0
    up_layers = list(reversed(layers))
    for level, kind in enumerate(up_types):
        attention = "CrossAttn" in kind
        count = up_layers[level] + 1
        for j in range(count):
            blocks.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{index}.0."))
            if attention:
                blocks.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{index}.1."))
            if j == count - 1 and level < len(up_types) - 1:
                slot = 2 if attention else 1  # after the ResNet (and the transformer)
                up = f"up_blocks.{level}.upsamplers.0."
                blocks.append((up, f"output_blocks.{index}.{slot}."))
            index += 1
    pairs: list[tuple[str, str]] = []
    for diffusers, sgm in blocks:
        if ".resnets." in diffusers:
            pairs.extend((diffusers + d, sgm + s) for d, s in SGM_RESNET_PARTS)
        else:
            pairs.append((diffusers, sgm))
    return tuple(sorted(pairs, key=lambda pair: len(pair[0]), reverse=True))


class PathMap:
    """Both directions of ``sgm_prefixes`` for one UNet layout."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        pairs = sgm_prefixes(config)
        self._to_sgm = pairs
        self._to_diffusers = tuple(sorted(((s, d) for d, s in pairs), key=lambda p: -len(p[0])))

    def to_sgm(self, path: str) -> str:
        return _swap(path, self._to_sgm)

    def to_diffusers(self, path: str) -> str:
        return _swap(path, self._to_diffusers)


def _swap(path: str, prefixes: tuple[tuple[str, str], ...]) -> str:
    dotted = path + "."
    for old, new in prefixes:
        if dotted.startswith(old):
            return (new + dotted[len(old) :]).rstrip(".")
    return path


_INPUT_BLOCK = re.compile(r"^input_blocks\.(\d+)\.(\d+)\.(.+)$")
_OUTPUT_BLOCK = re.compile(r"^output_blocks\.(\d+)\.(\d+)\.(.+)$")


def layout_from_sgm_paths(paths: Iterable[str]) -> dict[str, Any]:
    """The diffusers config fields ``sgm_prefixes`` needs, read from original-layout UNet
    weight paths (``input_blocks.4.1.proj_in.weight`` ...): one ``layers_per_block`` (as
    diffusers' own single-file loader assumes), the levels from the downsamplers, and which
    levels have attention from where the transformers sit."""
    inputs: dict[int, set[str]] = {}
    outputs: dict[int, set[str]] = {}
    for path in paths:
        if match := _INPUT_BLOCK.match(path):
            inputs.setdefault(int(match.group(1)), set()).add(f"{match.group(2)}.{match.group(3)}")
        elif match := _OUTPUT_BLOCK.match(path):
            outputs.setdefault(int(match.group(1)), set()).add(f"{match.group(2)}.{match.group(3)}")
    samplers = sorted(n for n, parts in inputs.items() if any(_is_op(p) for p in parts))
    if not samplers:
        raise ValueError("no downsampler (input_blocks.N.0.op) among the UNet weights")
    layers = samplers[0] - 1
    levels = len(samplers) + 1

    def has_attention(parts: set[str] | None) -> bool:
        return any(p.startswith("1.transformer_blocks.") for p in parts or ())

    down = [
        "CrossAttnDownBlock2D"
        if has_attention(inputs.get(1 + level * (layers + 1)))
        else "DownBlock2D"
        for level in range(levels)
    ]
    up = [
        "CrossAttnUpBlock2D" if has_attention(outputs.get(level * (layers + 1))) else "UpBlock2D"
        for level in range(levels)
    ]
    return {"down_block_types": down, "up_block_types": up, "layers_per_block": layers}


def _is_op(part: str) -> bool:
    return part == "0.op" or part.startswith("0.op.")


_SD_UP_DOWN = re.compile(
    r"^(up|down)_blocks_(\d+)_(resnets|attentions|upsamplers|downsamplers)_(\d+)_"
)
_SGM_BLOCK = re.compile(r"^(input_blocks|output_blocks)_(\d+)_")


def block_of(lora_name: str) -> str:
    """The block a module belongs to, named as sd-webui's block weights name them: ``TE``
    (``TE1``/``TE2`` on SDXL), ``IN01``..``IN11``, ``MID``, ``OUT00``..``OUT11`` (SD1/SD2
    with their two layers per level, as sd-scripts' ``get_block_index``), SDXL's SGM block
    numbers as they are, ``BASE`` for the rest (time embedding, conv_in)."""
    prefix, _, rest = lora_name.partition("_unet_")
    if not rest:
        head = lora_name.split("_text_model_", 1)[0].split("_")[-1]
        return head.upper() if head.startswith("te") else "OTHER"
    if match := _SGM_BLOCK.match(rest):
        side = "IN" if match.group(1) == "input_blocks" else "OUT"
        return f"{side}{int(match.group(2)):02d}"
    if rest.startswith(("middle_block_", "mid_block_")):
        return "MID"
    if match := _SD_UP_DOWN.match(rest):
        side, level, kind, index = (
            match.group(1),
            int(match.group(2)),
            match.group(3),
            int(match.group(4)),
        )
        if side == "down":
            number = 3 * (level + 1) if kind == "downsamplers" else 3 * level + index + 1
            return f"IN{number:02d}"
        number = 3 * level + 2 if kind == "upsamplers" else 3 * level + index
        return f"OUT{number:02d}"
    return "BASE"
