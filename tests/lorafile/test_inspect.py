"""``tuilora tools inspect`` reports what was written, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuilora.cli import main
from tuilora.errors import UserError
from tuilora.lorafile.inspect_lora import inspect_lora
from tuilora.lorafile.lora import read_lora
from tuilora.lorafile.names import block_of

SD1_Q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
SD1_ATTN = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
SD1_CONV = "lora_unet_down_blocks_0_resnets_0_conv1"
SD1_MID = "lora_unet_mid_block_attentions_0_proj_in"


def _sd1_lora(rng: np.random.Generator, lora_module: Any) -> dict[str, dict[str, Any]]:
    return {
        SD1_Q: lora_module(rng, 768, 768, 8, 4.0),
        SD1_ATTN: lora_module(rng, 320, 768, 8, 4.0),
        SD1_MID: lora_module(rng, 1280, 1280, 16, 4.0, kernel=1),
        SD1_CONV: lora_module(rng, 320, 320, 4, 1.0, kernel=3),
    }


TRAINING = {
    "ss_network_module": "networks.lora",
    "ss_optimizer": "prodigyopt.prodigy.Prodigy(decouple=True)",
    "ss_learning_rate": "1.0",
    "ss_unet_lr": "1.0",
    "ss_text_encoder_lr": "None",
    "ss_num_epochs": "10",
    "ss_max_train_steps": "1600",
    "ss_resolution": "(512, 512)",
    "ss_base_model_version": "sd_v1",
    "ss_dataset_dirs": json.dumps({"10_aria": {"n_repeats": 10, "img_count": 16}}),
    "ss_tag_frequency": json.dumps(
        {"10_aria": {"aria": 16, "smile": 9, "red hair": 12}, "1_extra": {"smile": 2}}
    ),
    "ss_training_started_at": "1000",
    "ss_training_finished_at": "4660",
}


def test_inspect_reports_what_was_written(write_file, lora_module, flatten) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    modules = _sd1_lora(rng, lora_module)
    path = write_file("c3lier.safetensors", flatten(modules), TRAINING)
    report = inspect_lora(path)
    assert report.network_type == "LoRA-C3Lier"
    assert report.modules == 4 and report.counts == {"te": 1, "unet": 3}
    assert report.rank == "8-16 (varies)" and report.alpha == "4"
    assert report.conv_rank == "4" and report.conv_alpha == "1"
    assert report.ranks_vary
    assert report.family == "sd1" and "text width 768" in report.family_evidence
    assert report.dtype == "fp16"
    training = dict(report.training)
    assert training["optimizer"] == "prodigyopt.prodigy.Prodigy(decouple=True)"
    assert training["unet lr / te lr"] == "1.0 / -"
    assert training["epochs (saved at / planned)"] == "- / 10"
    assert training["training time"] == "1 h 01 min"
    assert report.top_tags == [("aria", 16), ("red hair", 12), ("smile", 11)]
    assert report.datasets == [{"name": "10_aria", "images": 16, "repeats": 10}]
    # per-block norms are ‖up·down‖·alpha/rank, computed here the long way
    blocks = {row.block: row for row in report.blocks}
    assert set(blocks) == {"TE", "IN01", "MID"}
    assert blocks["IN01"].modules == 2 and blocks["IN01"].ranks == "4-8 (varies)"

    def norm(name: str) -> float:
        params = modules[name]
        up = params["lora_up.weight"].astype(np.float64)
        down = params["lora_down.weight"].astype(np.float64)
        full = up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)
        return float(np.linalg.norm(full)) * float(params["alpha"]) / down.shape[0]

    assert blocks["TE"].norm_max == pytest.approx(norm(SD1_Q), rel=1e-5)
    assert blocks["MID"].norm_mean == pytest.approx(norm(SD1_MID), rel=1e-5)
    assert blocks["IN01"].norm_max == pytest.approx(max(norm(SD1_ATTN), norm(SD1_CONV)), rel=1e-5)
    assert report.stored_model_hash is None and len(report.model_hash) == 64


def test_lycoris_kinds_and_their_ranks(write_file) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)

    def f16(*shape: int) -> Any:
        return rng.normal(size=shape).astype(np.float16)

    alpha = np.array(2.0, np.float32)
    loha = {
        f"{SD1_ATTN}.hada_w1_a": f16(320, 4),
        f"{SD1_ATTN}.hada_w1_b": f16(4, 768),
        f"{SD1_ATTN}.hada_w2_a": f16(320, 4),
        f"{SD1_ATTN}.hada_w2_b": f16(4, 768),
        f"{SD1_ATTN}.alpha": alpha,
    }
    report = inspect_lora(write_file("loha.safetensors", loha))
    assert report.network_type == "LoHa" and report.rank == "4" and report.alpha == "2"
    w1, w2 = loha[f"{SD1_ATTN}.hada_w1_a"].astype(np.float32), loha[f"{SD1_ATTN}.hada_w2_a"]
    full = (w1 @ loha[f"{SD1_ATTN}.hada_w1_b"].astype(np.float32)) * (
        w2.astype(np.float32) @ loha[f"{SD1_ATTN}.hada_w2_b"].astype(np.float32)
    )
    assert report.blocks[0].norm_max == pytest.approx(float(np.linalg.norm(full)) / 2, rel=1e-4)

    lokr = {
        f"{SD1_ATTN}.lokr_w1": f16(16, 32),
        f"{SD1_ATTN}.lokr_w2_a": f16(20, 4),
        f"{SD1_ATTN}.lokr_w2_b": f16(4, 24),
        f"{SD1_ATTN}.alpha": alpha,
    }
    lokr_file = read_lora(write_file("lokr.safetensors", lokr))
    module = lokr_file.modules[SD1_ATTN]
    assert (module.kind, module.rank, module.out_features, module.in_features) == (
        "lokr",
        4,
        320,
        768,
    )
    ia3 = {f"{SD1_ATTN}.weight": f16(320), f"{SD1_ATTN}.on_input": np.array(0, np.int64)}
    report = inspect_lora(write_file("ia3.safetensors", ia3))
    assert report.network_type == "(IA)^3" and report.rank == "-"


@pytest.mark.parametrize(
    ("names", "width", "metadata", "family"),
    [
        (["lora_te1_text_model_encoder_layers_0_self_attn_q_proj"], 768, {}, "sdxl"),
        (["lora_unet_input_blocks_4_1_proj_in"], 640, {}, "sdxl"),
        ([SD1_Q], 1024, {}, "sd2"),
        ([SD1_Q], 32, {"ss_base_model_version": "sdxl_base_v1-0"}, "sdxl"),
        ([SD1_Q], 32, {"modelspec.architecture": "stable-diffusion-v2-512/lora"}, "sd2"),
        ([SD1_Q], 32, {}, None),
    ],
)
def test_family_from_names_widths_then_metadata(
    write_file,
    names: list[str],
    width: int,
    metadata: dict[str, str],
    family: str | None,  # type: ignore[no-untyped-def]
) -> None:
    tensors: dict[str, Any] = {}
    for name in names:
        tensors[f"{name}.lora_down.weight"] = np.zeros((2, width), np.float16)
        tensors[f"{name}.lora_up.weight"] = np.zeros((width, 2), np.float16)
    report = inspect_lora(write_file("f.safetensors", tensors, metadata))
    assert report.family == family


def test_metadata_that_disagrees_with_the_weights_is_a_note(
    write_file, lora_module, flatten
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    tensors = flatten({SD1_Q: lora_module(rng, 768, 768, 2, 1.0)})
    report = inspect_lora(write_file("x.safetensors", tensors, {"ss_v2": "True"}))
    assert report.family == "sd1"
    assert any("says SD2.x" in note for note in report.notes)


@pytest.mark.parametrize(
    ("name", "block"),
    [
        ("lora_unet_down_blocks_0_attentions_1_proj_in", "IN02"),
        ("lora_unet_down_blocks_1_downsamplers_0_conv", "IN06"),
        ("lora_unet_mid_block_attentions_0_proj_out", "MID"),
        ("lora_unet_up_blocks_1_attentions_2_proj_out", "OUT05"),
        ("lora_unet_up_blocks_0_upsamplers_0_conv", "OUT02"),
        ("lora_unet_input_blocks_7_1_proj_in", "IN07"),
        ("lora_unet_output_blocks_0_1_proj_in", "OUT00"),
        ("lora_te2_text_model_encoder_layers_3_mlp_fc1", "TE2"),
        ("lora_unet_time_embedding_linear_1", "BASE"),
    ],
)
def test_blocks_are_named_as_sd_webui_block_weights(name: str, block: str) -> None:
    # sd-scripts' get_block_index: down_blocks_i_attentions_j -> IN(3i+j+1), up -> OUT(3i+j)
    assert block_of(name) == block


def test_a_model_or_other_file_is_a_clear_error(write_file) -> None:  # type: ignore[no-untyped-def]
    path = write_file(
        "model.safetensors", {"model.diffusion_model.x.weight": np.zeros(2, np.float16)}
    )
    with pytest.raises(UserError, match="no LoRA modules"):
        read_lora(path)
    peft = write_file("peft.safetensors", {"unet.a.lora_A.weight": np.zeros((2, 2), np.float16)})
    with pytest.raises(UserError, match="diffusers/PEFT"):
        read_lora(peft)


UNET_K = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
TE_Q = "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"


def _ldm_header_model(write_file: Any, attn_rows: int) -> Path:
    """A stand-in original-layout SD1 model with only the weights the check needs."""
    tensors = {
        UNET_K: np.zeros((attn_rows, 768), np.float16),
        "model.diffusion_model.input_blocks.3.0.op.weight": np.zeros((1, 1, 1, 1), np.float16),
        TE_Q: np.zeros((768, 768), np.float16),
    }
    return write_file(f"model{attn_rows}.safetensors", tensors)


def test_cli_json_and_the_fit_check(  # type: ignore[no-untyped-def]
    write_file, lora_module, flatten, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    tensors = flatten(
        {SD1_Q: lora_module(rng, 768, 768, 4, 4.0), SD1_ATTN: lora_module(rng, 320, 768, 4, 4.0)}
    )
    lora = write_file("l.safetensors", tensors, TRAINING)
    model = _ldm_header_model(write_file, 320)
    with pytest.raises(SystemExit) as code:
        main(["tools", "inspect", str(lora), "--model", str(model), "--format", "json"])
    assert code.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fit"]["fits"] and data["fit"]["matched"] == 2
    assert data["network_type"] == "LoRA-LierLa" and data["family_name"] == "SD1.x"
    assert data["top_tags"][0] == {"tag": "aria", "count": 16}
    assert data["autov2"] == data["sha256"][:10]
    # a model whose cross-attention has another shape: exit 1, the module named
    wrong = _ldm_header_model(write_file, 640)
    with pytest.raises(SystemExit) as code:
        main(["tools", "inspect", str(lora), "--model", str(wrong)])
    assert code.value.code == 1
    out = capsys.readouterr().out
    assert "does not fit" in out and "attn2_to_k" in out
    with pytest.raises(SystemExit) as code:
        main(["tools", "inspect", str(lora)])
    assert code.value.code == 0
    assert "LoRA-LierLa" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as code:
        main(["tools", "inspect", str(tmp_path / "missing.safetensors")])
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


@pytest.mark.slow
def test_inspect_imports_no_torch(write_file, lora_module, flatten) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    lora = write_file("l.safetensors", flatten({SD1_Q: lora_module(rng, 768, 768, 4, 4.0)}))
    model = _ldm_header_model(write_file, 320)
    probe = (
        "import sys\n"
        "from tuilora.cli import main\n"
        "try:\n"
        f"    main(['tools', 'inspect', {str(lora)!r}, '--model', {str(model)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'torch', 'diffusers', 'transformers', 'textual', 'accelerate', 'safetensors'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert "fits" in result.stdout
