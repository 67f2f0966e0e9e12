"""The torch-free model-file reader: safetensors headers, names in a .ckpt without unpickling,
family detection, the one-line description and the checks against the config."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tuilora.errors import UserError
from tuilora.modelfile import base_for_model, describe_model, prediction_warnings
from tuilora.modelfile.family import detect_architecture
from tuilora.modelfile.header import read_safetensors_header
from tuilora.modelfile.pickled import pickled_tensor_names

from .conftest import LANDMARKS, HeaderFile


def test_header_gives_names_shapes_offsets_and_metadata(header_file: HeaderFile) -> None:
    path = header_file("m.safetensors", "sd1", metadata={"modelspec.title": "x"})
    header = read_safetensors_header(path)
    assert set(header.tensors) == set(LANDMARKS["sd1"])
    info = header.tensors["model.diffusion_model.input_blocks.0.0.weight"]
    assert info.shape == (320, 4, 3, 3) and info.dtype == "F16"
    assert info.nbytes == 320 * 4 * 9 * 2
    assert header.metadata == {"modelspec.title": "x"}
    assert header.file_size == path.stat().st_size


def _raw(path: Path, header: bytes, length: int | None = None, tail: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + tail)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"abc") and p, "shorter than a header"),
        (lambda p: _raw(p, b"not json"), "not JSON"),
        (lambda p: _raw(p, b"{}", length=10**6), "past the end"),
        (lambda p: _raw(p, b"[1, 2]"), "not a JSON object"),
        (
            lambda p: _raw(
                p,
                json.dumps({"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}).encode(),
            ),
            "does not fit",
        ),
        (
            lambda p: _raw(
                p, json.dumps({"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}).encode()
            ),
            "unknown dtype",
        ),
        (lambda p: _raw(p, json.dumps({"a": {"shape": [1]}}).encode()), "no dtype"),
    ],
)
def test_broken_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, make: Any, reason: str
) -> None:
    path = make(tmp_path / "broken.safetensors")
    with pytest.raises(UserError) as error:
        read_safetensors_header(path)
    message = str(error.value)
    assert str(path) in message and reason in message and "\n" not in message


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_each_family_is_recognised(header_file: HeaderFile, family: str) -> None:
    model = describe_model(header_file(f"{family}.safetensors", family))
    assert model.family == family and model.format == "safetensors"
    assert model.precision == "fp16" and model.has_vae


@pytest.mark.parametrize(("width", "family"), [(768, "sd1"), (1024, "sd2"), (2048, "sdxl")])
def test_without_text_encoders_the_cross_attention_width_decides(
    header_file: HeaderFile, width: int, family: str
) -> None:
    unet_only = {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight": (
            1280,
            width,
        ),
    }
    assert describe_model(header_file("u.safetensors", unet_only)).family == family


@pytest.mark.parametrize(
    ("tensors", "words"),
    [
        ({"lora_unet_x.lora_down.weight": (4, 8)}, "a LoRA"),
        ({"encoder.down.0.block.0.conv1.weight": (8, 8, 3, 3)}, "a VAE file"),
        ({"first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3)}, "a VAE file"),
        ({"down_blocks.0.resnets.0.conv1.weight": (8, 8, 3, 3)}, "diffusers-layout UNet"),
        ({"text_model.final_layer_norm.weight": (8,)}, "a text encoder file"),
        ({"model.diffusion_model.joint_blocks.0.x.weight": (8, 8)}, "Stable Diffusion 3"),
        ({"model.diffusion_model.double_blocks.0.x.weight": (8, 8)}, "FLUX"),
        ({"something.else": (1,)}, "no Stable Diffusion UNet"),
        (
            {
                "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
                "conditioner.embedders.0.model.ln_final.weight": (1280,),
            },
            "SDXL refiner",
        ),
        (
            {
                **LANDMARKS["sd1"],
                "model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3),
            },
            "9 input channels",
        ),
        (
            {
                **LANDMARKS["sdxl"],
                "cond_stage_model.transformer.text_model.x.weight": (8,),
                "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (
                    640,
                    768,
                ),
            },
            "merged-across-families",
        ),
    ],
)
def test_files_that_are_not_trainable_base_models_say_what_they_are(
    header_file: HeaderFile, tensors: dict[str, tuple[int, ...]], words: str
) -> None:
    path = header_file("x.safetensors", tensors)
    with pytest.raises(UserError) as error:
        describe_model(path)
    assert words in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_the_summary_line_reads_as_people_name_models(header_file: HeaderFile) -> None:
    # SDXL 1.0 base in fp16 is 6.94 GB; the data is sparse, only the header is real.
    big = {**LANDMARKS["sdxl"], "model.diffusion_model.out.2.weight": (3_470_000_000,)}
    assert describe_model(header_file("sd_xl_base_1.0.safetensors", big)).summary() == (
        "SDXL, 6.9 GB, fp16"
    )
    pony = describe_model(header_file("ponyDiffusionV6XL.safetensors", "sdxl"))
    assert pony.family_name == "SDXL (Pony)" and pony.advisor_base == "sdxl"
    noob = describe_model(
        header_file("noobaiXLNAIXL_vPred10.safetensors", "sdxl", extra={"v_pred": (0,)})
    )
    assert noob.v_pred_key and noob.lineage == "NoobAI"
    assert noob.summary().endswith("v-prediction")
    titled = describe_model(
        header_file("model.safetensors", "sdxl", metadata={"modelspec.title": "Illustrious XL"})
    )
    assert titled.lineage == "Illustrious"


def test_precision_is_the_unets_not_its_few_fp32_norms(header_file: HeaderFile) -> None:
    tensors = {**LANDMARKS["sd1"], "model.diffusion_model.out.0.weight": (320,)}
    dtypes = {name: "BF16" for name in tensors}
    dtypes["model.diffusion_model.out.0.weight"] = "F32"
    from .conftest import write_header_file

    path = write_header_file(
        header_file("p.safetensors", "sd1").with_name("q.safetensors"), tensors, dtypes=dtypes
    )
    assert describe_model(path).precision == "bf16"


def test_paths_that_are_not_models(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"pretrained_model_name_or_path .*no such file"):
        describe_model(tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="no model_index.json"):
        describe_model(tmp_path)
    other = tmp_path / "model.gguf"
    other.write_bytes(b"x")
    with pytest.raises(UserError, match="expected a .safetensors"):
        describe_model(other)


def _diffusers_folder(root: Path, *, xl: bool, gelu: bool, prediction: str) -> Path:
    index: dict[str, Any] = {"_class_name": "StableDiffusionPipeline", "text_encoder": ["x", "y"]}
    if xl:
        index["text_encoder_2"] = ["x", "y"]
    (root / "text_encoder").mkdir(parents=True)
    (root / "scheduler").mkdir()
    (root / "unet").mkdir()
    (root / "model_index.json").write_text(json.dumps(index))
    act = "gelu" if gelu else "quick_gelu"
    (root / "text_encoder" / "config.json").write_text(json.dumps({"hidden_act": act}))
    (root / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"prediction_type": prediction})
    )
    (root / "text_encoder" / "pytorch_model.bin").write_bytes(b"pickle")
    return root


def test_diffusers_folders_are_described_from_their_json(tmp_path: Path) -> None:
    sd2 = describe_model(
        _diffusers_folder(tmp_path / "a", xl=False, gelu=True, prediction="v_prediction")
    )
    assert sd2.family == "sd2" and sd2.format == "diffusers"
    assert sd2.prediction_hint == ("v", "its scheduler config")
    assert sd2.pickled_parts == (str(tmp_path / "a" / "text_encoder" / "pytorch_model.bin"),)
    xl = describe_model(
        _diffusers_folder(tmp_path / "b", xl=True, gelu=False, prediction="epsilon")
    )
    assert xl.family == "sdxl"


class SideEffect:
    """Unpickling this touches a file: proof that something ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def write_ckpt(path: Path, names: dict[str, Any]) -> Path:
    """A torch-style zip checkpoint whose data.pkl is an ordinary pickle of ``names``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"state_dict": names}, protocol=2))
        archive.writestr("archive/version", "3\n")
    return path


def test_ckpt_names_are_read_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    names = {name: SideEffect(marker) for name in LANDMARKS["sd2"]}
    ckpt = write_ckpt(tmp_path / "v2-1_768-ema-pruned.ckpt", names)
    assert set(LANDMARKS["sd2"]) <= (pickled_tensor_names(ckpt) or set())
    model = describe_model(ckpt)
    assert model.family == "sd2" and model.format == "pickle"
    assert model.prediction_hint is not None and model.prediction_hint[0] == "v"
    assert not marker.exists()
    legacy = tmp_path / "legacy.ckpt"
    legacy.write_bytes(pickle.dumps({"a": 1}))
    assert pickled_tensor_names(legacy) is None
    assert describe_model(legacy).family is None


def test_detection_needs_no_shapes_when_the_text_encoders_are_there() -> None:
    arch = detect_architecture(LANDMARKS["sdxl"], None, source="x")
    assert arch.family == "sdxl" and arch.in_channels is None


def _model(header_file: HeaderFile, name: str, family: str, **extra: Any) -> Any:
    return describe_model(header_file(name, family, extra=extra))


def test_prediction_warnings_name_the_evidence(header_file: HeaderFile) -> None:
    noob = _model(header_file, "noob.safetensors", "sdxl", v_pred=(0,), ztsnr=(0,))
    (warning,) = prediction_warnings(noob, v_parameterization=False)
    assert "v_pred key" in warning and "v_parameterization = true" in warning
    assert "zero_terminal_snr" in warning
    assert prediction_warnings(noob, v_parameterization=True) == []
    # sd-scripts never guesses: the file only warns, v_parameterization stays the user's
    sd2_768 = _model(header_file, "v2-1_768-ema-pruned.safetensors", "sd2")
    (warning,) = prediction_warnings(sd2_768, v_parameterization=False)
    assert "its name" in warning
    sd2_base = _model(header_file, "v2-1_512-ema-pruned.safetensors", "sd2")
    assert prediction_warnings(sd2_base, v_parameterization=False) == []
    (warning,) = prediction_warnings(sd2_base, v_parameterization=True)
    assert "epsilon-prediction" in warning
    plain_xl = _model(header_file, "sd_xl_base_1.0.safetensors", "sdxl")
    assert prediction_warnings(plain_xl, v_parameterization=False) == []
    (warning,) = prediction_warnings(plain_xl, v_parameterization=True)
    assert "nothing in sd_xl_base_1.0.safetensors says v-prediction" in warning
    (warning,) = prediction_warnings(plain_xl, v_parameterization=False, v2=True)
    assert warning.startswith("v2 = true but sd_xl_base_1.0.safetensors is SDXL")


def test_the_file_decides_the_advisor_base(header_file: HeaderFile) -> None:
    xl = _model(header_file, "xl.safetensors", "sdxl")
    assert base_for_model(xl, None).base == "sdxl" and base_for_model(xl, None).warning is None
    choice = base_for_model(xl, "sd15")
    assert choice.base == "sdxl"
    assert choice.warning == (
        "--base sd15 but xl.safetensors is SDXL: advising for sdxl (the model decides)"
    )
    sd1 = _model(header_file, "anything.safetensors", "sd1")
    assert base_for_model(sd1, "nai") == base_for_model(sd1, "nai").__class__("nai", None)
