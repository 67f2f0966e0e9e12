"""Base models from one original-layout file: the tiny SD1.x, SD2.x and SDXL pipelines are
written as sd-webui style ``.safetensors`` (``ldm_convert``) and loaded back with the same
weights, in the training dtype, offline; pickles never run without --allow-pickle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch

from tuilora.config import to_toml_dict
from tuilora.engine.ldm_convert import component_to_ldm, save_ldm_checkpoint
from tuilora.engine.models import load_base_model
from tuilora.errors import UserError
from tuilora.modelfile.ldm_names import ConversionError, ldm_names


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Any attempt to reach the hub fails instead of downloading.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_sd2_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline with SD2's text encoder kind (GELU, as OpenCLIP) and its padding."""
    folder = tmp_path_factory.mktemp("sd2") / "tiny-sd2"
    shutil.copytree(tiny_model, folder)
    config_path = folder / "text_encoder" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "hidden_act": "gelu"}))
    tokenizer_path = folder / "tokenizer" / "tokenizer_config.json"
    tokenizer = json.loads(tokenizer_path.read_text())
    tokenizer_path.write_text(json.dumps({**tokenizer, "pad_token": "!"}))
    return folder


@pytest.fixture(scope="module")
def folders(tiny_model: Path, tiny_sd2_model: Path, tiny_sdxl_model: Path) -> dict[str, Path]:
    return {"sd1": tiny_model, "sd2": tiny_sd2_model, "sdxl": tiny_sdxl_model}


@pytest.fixture(scope="module")
def ldm_files(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ldm")
    return {
        family: save_ldm_checkpoint(folder, root / f"tiny-{family}.safetensors")
        for family, folder in folders.items()
    }


def assert_same_weights(loaded: torch.nn.Module, reference: torch.nn.Module) -> None:
    got, want = loaded.state_dict(), reference.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key].to(value.dtype), value), key


def file_keys(path: Path) -> dict[str, list[int]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118


def test_files_have_each_familys_original_layout(ldm_files: dict[str, Path]) -> None:
    sd1, sd2, xl = (file_keys(ldm_files[f]) for f in ("sd1", "sd2", "sdxl"))
    assert {k.split(".", 1)[0] for k in sd1} == {"model", "first_stage_model", "cond_stage_model"}
    assert "model.diffusion_model.input_blocks.2.0.op.weight" in sd1  # level 0's downsampler
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in sd1  # upsampler, no attn
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in sd1
    assert len(sd1["first_stage_model.encoder.mid.attn_1.q.weight"]) == 4  # 1x1 conv
    # OpenCLIP: q, k and v fused, the projection stored as P (x @ P)
    assert sd2["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"] == [96, 32]
    assert "cond_stage_model.model.ln_final.weight" in sd2
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in xl
    assert xl["conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_bias"] == [96]
    assert xl["conditioner.embedders.1.model.text_projection"] == [32, 32]
    assert "model.diffusion_model.label_emb.0.0.weight" in xl


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_single_file_loads_the_folders_weights(
    family: str, ldm_files: dict[str, Path], folders: dict[str, Path]
) -> None:
    single = load_base_model(str(ldm_files[family]), model_config=str(folders[family]))
    folder = load_base_model(str(folders[family]))
    assert single.family == folder.family == family
    assert single.source == str(ldm_files[family])
    assert single.vae_scale == folder.vae_scale == 2
    assert single.latent_scaling == folder.latent_scaling and not single.v_prediction
    assert_same_weights(single.unet, folder.unet)
    assert_same_weights(single.vae, folder.vae)
    assert len(single.text_encoders) == len(folder.text_encoders) == (2 if family == "sdxl" else 1)
    for ours, theirs in zip(single.text_encoders, folder.text_encoders, strict=True):
        assert_same_weights(ours, theirs)
    for ours, theirs in zip(single.tokenizers, folder.tokenizers, strict=True):
        assert ours("tuidemo, red circle").input_ids == theirs("tuidemo, red circle").input_ids
        assert ours.pad_token_id == theirs.pad_token_id


def test_the_transposed_projection_matches_openclip_math(
    ldm_files: dict[str, Path], tiny_sdxl_model: Path
) -> None:
    """OpenCLIP computes ``x @ text_projection``; the loaded Linear must give the same."""
    from safetensors import safe_open

    with safe_open(str(ldm_files["sdxl"]), framework="pt") as handle:
        projection = handle.get_tensor("conditioner.embedders.1.model.text_projection")
    model = load_base_model(str(ldm_files["sdxl"]), model_config=str(tiny_sdxl_model))
    x = torch.randn(3, 32)
    assert torch.allclose(model.text_encoders[1].text_projection(x), x @ projection, atol=1e-6)


@pytest.mark.parametrize(
    ("family", "dtype", "vae_dtype"),
    [("sd1", torch.bfloat16, torch.bfloat16), ("sdxl", torch.float16, torch.float32)],
)
def test_frozen_weights_load_in_the_training_dtype(
    family: str,
    dtype: torch.dtype,
    vae_dtype: torch.dtype,
    ldm_files: dict[str, Path],
    folders: dict[str, Path],
) -> None:
    model = load_base_model(str(ldm_files[family]), model_config=str(folders[family]), dtype=dtype)
    assert {p.dtype for p in model.unet.parameters()} == {dtype}
    assert {p.dtype for e in model.text_encoders for p in e.parameters()} == {dtype}
    # SDXL's VAE stays fp32 (its fp16 overflows), others follow the training dtype
    assert {p.dtype for p in model.vae.parameters()} == {vae_dtype}
    kept = load_base_model(
        str(ldm_files[family]), model_config=str(folders[family]), dtype=dtype, no_half_vae=True
    )
    assert kept.vae.dtype == torch.float32


def test_model_config_needs_the_configs_not_the_weights(
    ldm_files: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(tiny_model, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    assert not list(configs.rglob("*.safetensors"))
    single = load_base_model(str(ldm_files["sd1"]), model_config=str(configs))
    assert_same_weights(single.unet, load_base_model(str(tiny_model)).unet)


def test_without_model_config_the_shipped_configs_are_used(ldm_files: dict[str, Path]) -> None:
    # A tiny file is not SD1.5's size: the shipped SD1.5 configs refuse it by its shapes,
    # in one line, before any weight is read.
    with pytest.raises(UserError) as error:
        load_base_model(str(ldm_files["sd1"]))
    message = str(error.value)
    assert "has shape [" in message and "the shipped SD1.x configs" in message
    assert "\n" not in message


@pytest.mark.slow
def test_train_from_single_file_and_load_the_lora_into_the_folder_model(
    make_config: Any, ldm_files: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    from tuilora.engine.train import run_training
    from tuilora.engine.verify import verify_lora

    out = tmp_path / "run"
    ldm_file = ldm_files["sd1"]
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


def test_model_config_that_is_not_a_diffusers_folder(
    ldm_files: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(UserError, match=r"model_config .*no model_index\.json"):
        load_base_model(str(ldm_files["sd1"]), model_config=str(tmp_path))


def test_model_config_of_another_architecture_is_one_line(
    ldm_files: dict[str, Path], tiny_sdxl_model: Path, tiny_model: Path
) -> None:
    for file, config in ((ldm_files["sd1"], tiny_sdxl_model), (ldm_files["sdxl"], tiny_model)):
        with pytest.raises(UserError) as error:
            load_base_model(str(file), model_config=str(config))
        message = str(error.value)
        assert "model_config" in message and "\n" not in message


def test_a_file_that_is_not_a_checkpoint(tmp_path: Path, tiny_model: Path) -> None:
    from safetensors.torch import save_file

    lora_like = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(lora_like))
    with pytest.raises(UserError) as error:
        load_base_model(str(lora_like), model_config=str(tiny_model))
    assert "a LoRA" in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_weight_is_an_error_not_dropped() -> None:
    with pytest.raises(ConversionError, match="extra_head.weight"):
        ldm_names("unet", ["extra_head.weight"], {"layers_per_block": 1})
    with pytest.raises(ConversionError, match="not all there"):
        component_to_ldm(
            "open_clip", {"encoder.layers.0.self_attn.q_proj.weight": torch.zeros(2, 2)}, {}, ""
        )


def test_a_file_without_its_vae_asks_for_one(
    ldm_files: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(ldm_files["sd1"]))
    no_vae = tmp_path / "novae.safetensors"
    save_file({k: v for k, v in state.items() if not k.startswith("first_stage_model.")}, no_vae)
    with pytest.raises(UserError, match="has no VAE weights .* set vae ="):
        load_base_model(str(no_vae), model_config=str(tiny_model))
    model = load_base_model(str(no_vae), model_config=str(tiny_model), vae_path=str(tiny_model))
    assert_same_weights(model.vae, load_base_model(str(tiny_model)).vae)


@pytest.mark.parametrize("layout", ["checkpoint", "ldm", "diffusers", "folder"])
def test_vae_from_a_file_or_folder(
    layout: str, ldm_files: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    reference = load_base_model(str(tiny_model)).vae
    if layout == "checkpoint":  # a whole model file given as vae: its first_stage_model.*
        vae_path = ldm_files["sd1"]
    elif layout == "folder":
        vae_path = tiny_model / "vae"
    else:
        state = load_file(str(ldm_files["sd1"]))
        if layout == "ldm":  # vae-ft-mse-840000-ema-pruned.safetensors: bare LDM names
            vae = {
                k.removeprefix("first_stage_model."): v
                for k, v in state.items()
                if k.startswith("first_stage_model.")
            }
        else:  # sdxl_vae.safetensors: diffusers' own names
            vae = reference.state_dict()
        vae_path = tmp_path / f"{layout}.safetensors"
        save_file(vae, vae_path)
    model = load_base_model(
        str(ldm_files["sd1"]), model_config=str(tiny_model), vae_path=str(vae_path)
    )
    assert_same_weights(model.vae, reference)


# -- pickles: nothing is unpickled without --allow-pickle, and never a payload ----------------


class SideEffect:
    """Unpickling this touches a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def payload_pickle(path: Path, marker: Path) -> Path:
    # SD1.x names, so that with consent the loader gets as far as unpickling (weights-only)
    names = ("model.diffusion_model.x", "cond_stage_model.transformer.text_model.y")
    torch.save({"state_dict": {name: SideEffect(marker) for name in names}}, path)
    return path


def test_pickled_files_never_run_without_consent(
    ldm_files: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    base = payload_pickle(tmp_path / "model.ckpt", marker)
    vae = payload_pickle(tmp_path / "vae.pt", marker)
    folder = tmp_path / "folder"
    shutil.copytree(tiny_model, folder)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    payload_pickle(folder / "vae" / "diffusion_pytorch_model.bin", marker)
    attempts = [
        lambda allow: load_base_model(str(base), model_config=str(tiny_model), allow_pickle=allow),
        lambda allow: load_base_model(
            str(ldm_files["sd1"]),
            model_config=str(tiny_model),
            vae_path=str(vae),
            allow_pickle=allow,
        ),
        lambda allow: load_base_model(
            str(ldm_files["sd1"]),
            model_config=str(tiny_model),
            vae_path=str(folder),
            allow_pickle=allow,
        ),
        lambda allow: load_base_model(str(folder), allow_pickle=allow),
    ]
    for attempt in attempts:
        with pytest.raises(UserError, match="--allow-pickle"):
            attempt(False)
        # with consent the file is read weights-only: the payload is refused, still not run
        with pytest.raises(UserError, match="weights-only loader|cannot load"):
            attempt(True)
    assert not marker.exists()


def test_ckpt_loads_with_allow_pickle(
    ldm_files: dict[str, Path], tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(ldm_files["sd1"]))}, ckpt)  # as sd-webui-era files
    single = load_base_model(str(ckpt), model_config=str(tiny_model), allow_pickle=True)
    assert single.family == "sd1"
    assert_same_weights(single.unet, load_base_model(str(tiny_model)).unet)


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


def test_v_prediction_stays_the_users_choice_with_a_warning(
    ldm_files: dict[str, Path], tiny_sdxl_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(ldm_files["sdxl"]))
    marked = tmp_path / "noob-vpred.safetensors"
    save_file({**state, "v_pred": torch.zeros(0), "ztsnr": torch.zeros(0)}, marked)
    as_is = load_base_model(str(marked), model_config=str(tiny_sdxl_model))
    assert not as_is.v_prediction  # as sd-scripts: the file does not switch it on
    (note,) = as_is.notes
    assert "v_pred key" in note and "v_parameterization = true" in note
    chosen = load_base_model(
        str(marked), model_config=str(tiny_sdxl_model), force_v_prediction=True
    )
    assert chosen.v_prediction and chosen.notes == []
    assert chosen.noise_scheduler.config.prediction_type == "v_prediction"
