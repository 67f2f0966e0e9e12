"""Base models from one original-layout (LDM) file, loaded offline with a local config folder.

The tiny diffusers pipeline is written as an sd-webui style ``.safetensors`` by
``ldm_convert`` and loaded back through diffusers' ``from_single_file``: same weights, and a
LoRA trained on it loads into the folder model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch

from tuilora.config import to_toml_dict
from tuilora.engine.ldm_convert import ConversionError, save_ldm_checkpoint, unet_to_ldm
from tuilora.engine.models import load_base_model
from tuilora.errors import UserError


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Any attempt to reach the hub fails instead of downloading.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def ldm_file(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_ldm_checkpoint(tiny_model, tmp_path_factory.mktemp("ldm") / "tiny-sd15.safetensors")


def assert_same_weights(loaded: torch.nn.Module, reference: torch.nn.Module) -> None:
    got, want = loaded.state_dict(), reference.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.allclose(got[key], value), key


def test_file_has_the_original_layout(ldm_file: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(ldm_file), framework="pt") as handle:
        keys = set(handle.keys())
        q_weight = handle.get_slice("first_stage_model.encoder.mid.attn_1.q.weight").get_shape()
    prefixes = {key.split(".", 1)[0] for key in keys}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert "model.diffusion_model.input_blocks.2.0.op.weight" in keys  # level 0's downsampler
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in keys  # upsampler, no attn
    assert "model.diffusion_model.output_blocks.3.1.proj_in.weight" in keys
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in keys
    assert len(q_weight) == 4  # LDM's AttnBlock: 1x1 conv, not linear


def test_single_file_loads_the_same_weights(ldm_file: Path, tiny_model: Path) -> None:
    single = load_base_model(str(ldm_file), model_config=str(tiny_model))
    folder = load_base_model(str(tiny_model))
    assert single.family == "sd1" and single.source == str(ldm_file)
    assert single.vae_scale == folder.vae_scale == 2
    assert single.latent_scaling == folder.latent_scaling
    assert single.v_prediction is False
    assert_same_weights(single.unet, folder.unet)
    assert_same_weights(single.vae, folder.vae)
    assert_same_weights(single.text_encoders[0], folder.text_encoders[0])
    ids = single.tokenizers[0]("tuidemo, red circle").input_ids
    assert ids == folder.tokenizers[0]("tuidemo, red circle").input_ids


def test_model_config_needs_the_configs_not_the_weights(
    ldm_file: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import shutil

    configs = tmp_path / "configs"
    shutil.copytree(tiny_model, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    assert not list(configs.rglob("*.safetensors"))
    single = load_base_model(str(ldm_file), model_config=str(configs))
    assert_same_weights(single.unet, load_base_model(str(tiny_model)).unet)


@pytest.mark.slow
def test_train_from_single_file_and_load_the_lora_into_the_folder_model(
    make_config: Any, ldm_file: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    from tuilora.engine.train import run_training
    from tuilora.engine.verify import verify_lora

    out = tmp_path / "run"
    config = make_config(
        out,
        pretrained_model_name_or_path=str(ldm_file),
        model_config=str(tiny_model),
        max_train_epochs=1,
        unet_lr=1e-2,
        text_encoder_lr=1e-2,
    )
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    lora = out / "t.safetensors"
    with safe_open(str(lora), framework="pt") as handle:
        assert handle.metadata()["ss_sd_model_name"] == ldm_file.name
    report = verify_lora(tiny_model, lora, prompt="tuidemo, red circle")
    assert report.warnings == []
    assert report.injected == {"unet": 48, "text_encoder": 12}
    assert report.file_modules == report.injected_total
    assert report.output_change > 0


def test_ckpt_is_refused_without_allow_pickle(tmp_path: Path, tiny_model: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"never unpickled")
    with pytest.raises(UserError, match="--allow-pickle"):
        load_base_model(str(ckpt), model_config=str(tiny_model))


def test_train_with_a_ckpt_exits_2_naming_allow_pickle(
    make_config: Any, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuilora.cli import main

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"never unpickled")
    config = make_config(
        tmp_path / "run", pretrained_model_name_or_path=str(ckpt), model_config=str(tiny_model)
    )
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(path), "--no-progress"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--allow-pickle" in error and "Traceback" not in error


def test_ckpt_loads_with_allow_pickle(ldm_file: Path, tiny_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(ldm_file))}, ckpt)  # as sd-webui-era .ckpt files
    single = load_base_model(str(ckpt), model_config=str(tiny_model), allow_pickle=True)
    assert_same_weights(single.unet, load_base_model(str(tiny_model)).unet)


def test_missing_model_config_is_a_user_error(ldm_file: Path) -> None:
    with pytest.raises(UserError, match="set model_config to a diffusers folder"):
        load_base_model(str(ldm_file))


def test_model_config_that_is_not_a_diffusers_folder(ldm_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"model_config .*no model_index\.json"):
        load_base_model(str(ldm_file), model_config=str(tmp_path))


def test_model_config_of_another_architecture_is_one_line(
    ldm_file: Path, tiny_sdxl_model: Path
) -> None:
    with pytest.raises(UserError) as error:
        load_base_model(str(ldm_file), model_config=str(tiny_sdxl_model))
    message = str(error.value)
    assert "model_config" in message and "\n" not in message


def test_a_file_that_is_not_a_checkpoint(tmp_path: Path, tiny_model: Path) -> None:
    from safetensors.torch import save_file

    lora_like = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(lora_like))
    with pytest.raises(UserError) as error:
        load_base_model(str(lora_like), model_config=str(tiny_model))
    assert "\n" not in str(error.value)


def test_an_unknown_weight_is_an_error_not_dropped() -> None:
    with pytest.raises(ConversionError, match="extra_head.weight"):
        unet_to_ldm({"extra_head.weight": torch.zeros(1)}, {"layers_per_block": 1})


def test_sdxl_pipelines_are_refused(tiny_sdxl_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="SDXL"):
        save_ldm_checkpoint(tiny_sdxl_model, tmp_path / "xl.safetensors")
