"""`tuilora tools resize`, and the `tuilora tools` commands as a user types them.

sd-scripts' resize_lora.py is the reference: SVD of up·down per module at the new rank,
no clamp, new alpha = old alpha / old rank × new rank (the strength stays), metadata
ss_network_dim / ss_network_alpha / ss_training_comment updated and the hashes recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tuilora.cli import main
from tuilora.engine.save import save_lora
from tuilora.engine.tools.resize import resize_lora
from tuilora.errors import UserError
from tuilora.lorafile.deltas import delta
from tuilora.lorafile.inspect_lora import inspect_lora
from tuilora.lorafile.lora import read_lora
from tuilora.lorafile.safetensors_io import SafetensorsFile


@pytest.fixture(scope="module")
def rank8_lora(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A C3Lier LoRA with random factors: rank 8 (conv rank 4), alpha 4 (conv alpha 1)."""
    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import SD1_NAMING
    from tuilora.engine.network_lora import LoRANetwork, RankPlan

    base = load_base_model(str(tiny_model))
    network = LoRANetwork(
        base.unet, base.text_encoders, SD1_NAMING, RankPlan(8, 4, conv_rank=4, conv_alpha=1)
    )
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    path = tmp_path_factory.mktemp("lora") / "r8.safetensors"
    metadata = {
        "ss_network_dim": "8",
        "ss_training_comment": "mine",
        "ss_base_model_version": "sd_v1",
    }
    return save_lora(path, network.kohya_state_dict(), metadata, "float")


def _deltas(path: Path) -> dict[str, Any]:
    lora = read_lora(path)
    with SafetensorsFile(path) as file:
        return {name: delta(file, module) for name, module in lora.modules.items()}


def test_resize_to_the_full_rank_is_lossless(rank8_lora: Path, tmp_path: Path) -> None:
    out = tmp_path / "same.safetensors"
    report = resize_lora(rank8_lora, out, dim=8)
    assert report.energy == pytest.approx(1.0, abs=1e-9)
    before, after = _deltas(rank8_lora), _deltas(out)
    for name, wanted in before.items():
        np.testing.assert_allclose(after[name], wanted, atol=1e-6, rtol=1e-5)
    resized = read_lora(out)
    conv = resized.modules["lora_unet_down_blocks_0_resnets_0_conv1"]
    assert conv.rank == 4 and conv.alpha == pytest.approx(1.0)  # its own rank and strength


def test_a_lower_rank_keeps_the_top_singular_values(rank8_lora: Path, tmp_path: Path) -> None:
    out = tmp_path / "r2.safetensors"
    report = resize_lora(rank8_lora, out, dim=2, conv_dim=1)
    before = _deltas(rank8_lora)
    results = {module.name: module for module in report.modules}
    for name, change in before.items():
        values = torch.linalg.svdvals(torch.from_numpy(change).double()) ** 2
        kept = (
            1
            if name.endswith(("conv1", "conv2", "downsamplers_0_conv", "upsamplers_0_conv"))
            else 2
        )
        assert results[name].rank == kept
        assert results[name].energy == pytest.approx(
            float(values[:kept].sum() / values.sum()), rel=1e-5
        )
    resized = read_lora(out)
    attn = resized.modules["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q"]
    assert attn.rank == 2 and attn.alpha == pytest.approx(4 / 8 * 2)  # scale 0.5 kept
    with safe_open(str(out), "pt") as handle:
        meta = handle.metadata()
    assert meta["ss_network_dim"] == "2"
    assert meta["ss_training_comment"] == "dimension is resized from 8 to 2 (conv: 1); mine"
    assert meta["ss_network_alpha"] == "Dynamic"  # 1.0 for linears, 0.25 for 3x3 convs
    report_file = inspect_lora(out)
    assert report_file.stored_model_hash == report_file.model_hash  # hashes recomputed


def test_resize_refuses_what_it_cannot_do(rank8_lora: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="already exists"):
        resize_lora(rank8_lora, rank8_lora, dim=2)
    ia3 = tmp_path / "ia3.safetensors"
    name = "lora_unet_mid_block_attentions_0_proj_in"
    save_lora(
        ia3, {f"{name}.weight": torch.ones(64), f"{name}.on_input": torch.tensor(0)}, {}, None
    )
    with pytest.raises(UserError, match="cannot resize"):
        resize_lora(ia3, tmp_path / "x.safetensors", dim=2)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as code:
        main(args)
    captured = capsys.readouterr()
    return int(code.value.code or 0), captured.out, captured.err


def test_the_tools_commands(
    tiny_model: Path, rank8_lora: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = tmp_path / "small.safetensors"
    code, out, _ = _run(
        ["tools", "resize", str(rank8_lora), "--dim", "3", "--out", str(small)], capsys
    )
    assert code == 0 and "rank 8/4 -> 3" in out and "kept energy" in out
    code, _, err = _run(
        ["tools", "resize", str(rank8_lora), "--dim", "3", "--out", str(small)], capsys
    )
    assert code == 2 and "pass --force" in err
    code, _, err = _run(["tools", "resize", str(rank8_lora), "--dim", "0", "--out", "x"], capsys)
    assert code == 2 and "--dim" in err and err.count("\n") == 1

    merged = tmp_path / "merged"
    code, out, _ = _run(
        [
            "tools",
            "merge",
            "--base",
            str(tiny_model),
            "--lora",
            f"{small}:0.5",
            "--out",
            str(merged),
        ],
        capsys,
    )
    assert code == 0 and "diffusers folder" in out and (merged / "model_index.json").is_file()
    code, _, err = _run(["tools", "merge", "--lora", str(small), "--out", "y.safetensors"], capsys)
    assert code == 2 and "two or more --lora" in err

    both = tmp_path / "both.safetensors"
    code, out, _ = _run(
        [
            "tools",
            "merge",
            "--lora",
            str(small),
            "--lora",
            f"{rank8_lora}:0.5",
            "--out",
            str(both),
            "--format",
            "json",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["mode"] == "concat"

    lora = tmp_path / "x.safetensors"
    code, out, err = _run(
        [
            "tools",
            "extract",
            "--base",
            str(tiny_model),
            "--tuned",
            str(merged),
            "--dim",
            "3",
            "--out",
            str(lora),
            "--clamp-quantile",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "text encoder: extracted" in out and "relative error of the saved LoRA (no clamp)" in out
    assert "extract" in err  # progress on stderr
    code, _, err = _run(
        [
            "tools",
            "extract",
            "--base",
            str(tiny_model),
            "--tuned",
            str(merged),
            "--out",
            "z.safetensors",
            "--device",
            "nonsense",
        ],
        capsys,
    )
    assert code == 2 and "--device" in err
