"""The shipped configs build the real SD1.5, SD2.1 and SDXL architectures (on the meta
device, no memory): their original-layout files have the reference releases' tensor names and
shapes, diffusers' own converters read every tensor back, and LoRA finds exactly the modules
and shapes sd-scripts' ``create_network`` makes on them."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import torch

from tuilora.engine.ldm_convert import ldm_shapes
from tuilora.engine.naming import naming_for
from tuilora.engine.network_lora import LoRANetwork, RankPlan
from tuilora.engine.single_file import build_empty
from tuilora.modelfile.configs import family_configs
from tuilora.modelfile.ldm_names import LAYOUTS


@pytest.fixture(scope="module")
def layouts() -> dict[str, dict[str, tuple[int, ...]]]:
    return {family: ldm_shapes(family, family_configs(family)) for family in LAYOUTS}


def built(family: str) -> dict[str, Any]:
    configs = family_configs(family)
    return {name: build_empty(name, configs[name]) for name, _, _ in LAYOUTS[family]}


def meta(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_tensor_counts_and_sizes_are_the_reference_releases(
    layouts: dict[str, dict[str, tuple[int, ...]]],
) -> None:
    def prefixes(shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
        return dict(Counter(".".join(k.split(".")[: 3 if "embedders" in k else 1]) for k in shapes))

    # SD1.5's file: 686 UNet, 248 VAE, 196 CLIP tensors (1,130; real files may add the
    # position_ids buffer); SD2.1 keeps 23 of OpenCLIP-H's 24 layers (the last is unused);
    # SDXL base: 1,680 UNet, 196 CLIP-L, 387 OpenCLIP-bigG (+ position_ids, logit_scale)
    assert prefixes(layouts["sd1"]) == {
        "model": 686,
        "first_stage_model": 248,
        "cond_stage_model": 196,
    }
    assert prefixes(layouts["sd2"]) == {
        "model": 686,
        "first_stage_model": 248,
        "cond_stage_model": 23 * 12 + 4,
    }
    assert prefixes(layouts["sdxl"]) == {
        "model": 1680,
        "first_stage_model": 248,
        "conditioner.embedders.0": 196,
        "conditioner.embedders.1": 32 * 12 + 5,
    }
    params = {f: sum(torch.Size(s).numel() for s in layouts[f].values()) for f in layouts}
    assert round(params["sd1"] / 1e6) == 1066  # 860M UNet + 123M CLIP-L + 84M VAE
    assert round(params["sdxl"] / 1e6) == 3469  # 2,567M UNet + 123M + 695M + 84M


@pytest.mark.parametrize(
    ("family", "key", "shape"),
    [
        ("sd1", "model.diffusion_model.input_blocks.1.1.proj_in.weight", (320, 320, 1, 1)),
        (
            "sd1",
            "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
            (320, 640, 1, 1),
        ),
        ("sd1", "first_stage_model.decoder.mid.attn_1.proj_out.weight", (512, 512, 1, 1)),
        (
            "sd1",
            "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight",
            (768, 3072),
        ),
        ("sd2", "model.diffusion_model.input_blocks.1.1.proj_in.weight", (320, 320)),
        (
            "sd2",
            "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
            (1280, 1024),
        ),
        (
            "sd2",
            "cond_stage_model.model.transformer.resblocks.22.attn.in_proj_weight",
            (3072, 1024),
        ),
        ("sd2", "cond_stage_model.model.positional_embedding", (77, 1024)),
        ("sdxl", "model.diffusion_model.label_emb.0.0.weight", (1280, 2816)),
        (
            "sdxl",
            "model.diffusion_model.input_blocks.8.1.transformer_blocks.9.ff.net.2.weight",
            (1280, 5120),
        ),
        ("sdxl", "model.diffusion_model.output_blocks.2.2.conv.weight", (1280, 1280, 3, 3)),
        (
            "sdxl",
            "conditioner.embedders.1.model.transformer.resblocks.31.mlp.c_fc.weight",
            (5120, 1280),
        ),
        ("sdxl", "conditioner.embedders.1.model.text_projection", (1280, 1280)),
        ("sdxl", "conditioner.embedders.1.model.token_embedding.weight", (49408, 1280)),
    ],
)
def test_landmark_tensors(
    layouts: dict[str, dict[str, tuple[int, ...]]], family: str, key: str, shape: tuple[int, ...]
) -> None:
    assert layouts[family][key] == shape


def test_diffusers_recognises_each_family(layouts: dict[str, dict[str, tuple[int, ...]]]) -> None:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    found = {f: infer_diffusers_model_type(meta(layouts[f])) for f in ("sd1", "sd2", "sdxl")}
    assert found == {"sd1": "v1", "sd2": "v2", "sdxl": "xl_base"}


def shapes_of(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key.removeprefix("text_model."): tuple(v.shape) for key, v in state.items()}


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_diffusers_converters_read_every_tensor_back(
    layouts: dict[str, dict[str, tuple[int, ...]]], family: str
) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    checkpoint = meta(layouts[family])
    modules = built(family)
    unet, vae = modules["unet"], modules["vae"]
    assert shapes_of(convert_ldm_unet_checkpoint(checkpoint, unet.config)) == shapes_of(
        unet.state_dict()
    )
    assert shapes_of(convert_ldm_vae_checkpoint(checkpoint, vae.config)) == shapes_of(
        vae.state_dict()
    )
    for name, prefix, style in LAYOUTS[family]:
        if not name.startswith("text_encoder"):
            continue
        encoder = modules[name]
        if style == "clip":
            converted = convert_ldm_clip_checkpoint(checkpoint, prefix.removesuffix("text_model."))
        else:
            converted = convert_open_clip_checkpoint(encoder, checkpoint, prefix=prefix)
        want = {k: v for k, v in encoder.state_dict().items() if not k.endswith("position_ids")}
        got = {k: v for k, v in converted.items() if not k.endswith("position_ids")}
        assert shapes_of(got) == shapes_of(want)


def sd_scripts_sdxl_targets(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, int]]:
    """What sd-scripts' ``create_network`` wraps on SDXL (LierLa), derived from the file's own
    layout: every Linear and 1x1 conv inside the UNet's transformer blocks, named by its SGM
    path; TE1's and TE2's q/k/v/out projections and MLP linears. Name → (out, in)."""
    targets: dict[str, tuple[int, int]] = {}
    unet = re.compile(
        r"^model\.diffusion_model\.((?:input|output)_blocks\.\d+\.1|middle_block\.1)\."
        r"(proj_in|proj_out|transformer_blocks\.\d+\.(?:attn[12]\.to_(?:q|k|v|out\.0)"
        r"|ff\.net\.(?:0\.proj|2)))\.weight$"
    )
    clip = re.compile(
        r"^conditioner\.embedders\.0\.transformer\.(text_model\.encoder\.layers\.\d+\.(?:self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12]))\.weight$"
    )
    open_clip = re.compile(
        r"^conditioner\.embedders\.1\.model\.transformer\.resblocks\.(\d+)\.(attn\.in_proj_weight|attn\.out_proj\.weight|mlp\.c_fc\.weight|mlp\.c_proj\.weight)$"
    )
    renamed = {
        "attn.out_proj.weight": ["self_attn_out_proj"],
        "mlp.c_fc.weight": ["mlp_fc1"],
        "mlp.c_proj.weight": ["mlp_fc2"],
        "attn.in_proj_weight": ["self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj"],
    }
    for key, shape in shapes.items():
        if match := unet.match(key):
            path = f"{match.group(1)}.{match.group(2)}"
            targets["lora_unet_" + path.replace(".", "_")] = (shape[0], shape[1])
        elif match := clip.match(key):
            targets["lora_te1_" + match.group(1).replace(".", "_")] = (shape[0], shape[1])
        elif match := open_clip.match(key):
            layer, kind = match.groups()
            parts = renamed[kind]
            for part in parts:
                name = f"lora_te2_text_model_encoder_layers_{layer}_{part}"
                targets[name] = (shape[0] // len(parts), shape[1])
    return targets


def lora_shapes(network: LoRANetwork) -> dict[str, tuple[int, int]]:
    shapes = {}
    for name, module in network.modules_by_name().items():
        down, up = module.lora_down.weight.shape, module.lora_up.weight.shape
        assert down[0] == up[1] == 4  # the rank
        shapes[name] = (up[0], down[1])
    return shapes


def test_sdxl_lierla_names_and_shapes_are_sd_scripts(
    layouts: dict[str, dict[str, tuple[int, ...]]],
) -> None:
    modules = built("sdxl")
    encoders = [modules["text_encoder"], modules["text_encoder_2"]]
    with torch.device("meta"):
        network = LoRANetwork(
            modules["unet"],
            encoders,
            naming_for("sdxl", modules["unet"], 2),
            RankPlan(4, 1.0, is_sdxl=True),
        )
    counts = network.counts()
    assert (counts.unet, counts.text_encoders) == (722, (72, 192))
    assert lora_shapes(network) == sd_scripts_sdxl_targets(layouts["sdxl"])


def test_sd15_lierla_names_and_shapes_are_sd_scripts() -> None:
    """sd-scripts names SD1.x UNet modules by diffusers' paths (its UNet mirrors them):
    LierLa wraps Transformer2DModel's Linears and 1x1 proj convs, CLIP's attention and MLP."""
    from tuilora.engine.naming import SD1_NAMING

    modules = built("sd1")
    unet, encoder = modules["unet"], modules["text_encoder"]
    with torch.device("meta"):
        network = LoRANetwork(unet, [encoder], SD1_NAMING, RankPlan(4, 1.0))
    assert (len(network.unet_loras), len(network.te_loras)) == (192, 72)
    expected = {}
    for path, module in unet.named_modules():
        inside = re.search(r"attentions\.\d+\.(proj_in|proj_out|transformer_blocks\.)", path)
        if inside and isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
            expected["lora_unet_" + path.replace(".", "_")] = tuple(module.weight.shape[:2])
    for path, module in encoder.named_modules():
        if isinstance(module, torch.nn.Linear):
            name = path if path.startswith("text_model.") else f"text_model.{path}"
            expected["lora_te_" + name.replace(".", "_")] = tuple(module.weight.shape[:2])
    assert lora_shapes(network) == expected
