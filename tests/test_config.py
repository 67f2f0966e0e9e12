"""TrainingConfig: TOML in and out, validation naming the key and the range."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from tuilora.config import TrainingConfig, load_toml, to_toml_dict
from tuilora.errors import UserError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_round_trip_through_tuilora_toml(tmp_path: Path) -> None:
    config = TrainingConfig(
        network_dim=32,
        network_alpha=16.0,
        optimizer_type="prodigy",
        optimizer_args=["decouple=True", "betas=0.9,0.999"],
        resolution="576,576",
        max_token_length=225,
        base_type="nai",
    )
    config.validate()
    assert config.optimizer_type == "Prodigy"  # canonical sd-scripts spelling
    assert config.resolution == 576
    path = write(tmp_path, tomli_w.dumps(to_toml_dict(config)))
    loaded = load_toml(path)
    assert loaded.config == config
    assert not loaded.kohya
    assert loaded.ignored == ()


def test_sd_scripts_toml_is_accepted_with_its_quirks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[model]
pretrained_model_name_or_path = "/m/nai.safetensors"
[train]
network_dim = 16
network_alpha = 8
resolution = "512,768"
text_encoder_lr = [5e-5]
xformers = true
max_data_loader_n_workers = 2
""",
    )
    loaded = load_toml(path)
    assert loaded.kohya
    assert loaded.config.resolution_wh() == (512, 768)
    assert loaded.config.text_encoder_lr == 5e-5
    assert loaded.config.network_alpha == 8.0
    assert set(loaded.ignored) == {"xformers", "max_data_loader_n_workers"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("network_dimm = 8", "unknown key 'network_dimm' (did you mean network_dim?)"),
        ("network_dim = 0", "network_dim 0 is out of range: allowed >= 1"),
        ("network_dim = 32.0", "network_dim must be a whole number"),
        ("network_dim = 1000", "network_dim 1000 is out of range: LoRA ranks go from 1 to 768"),
        ("min_snr_gamma = 0", "min_snr_gamma 0 is out of range: allowed > 0 and <= 20"),
        ('learning_rate = "1e-4"', "learning_rate must be a number"),
        ('flip_aug = "false"', "flip_aug must be true or false"),
        ('optimizer_type = "Prodigyy"', "did you mean Prodigy?"),
        ('optimizer_args = "decouple=True"', "optimizer_args must be a list"),
        ('optimizer_args = ["decouple = True"]', "no spaces around ="),
        (
            "max_token_length = 100",
            "max_token_length 100 is not allowed: choose one of 75, 150, 225",
        ),
        ('mixed_precision = "fp32"', "mixed_precision 'fp32' is not allowed"),
        ("resolution = 32", "resolution 32 is out of range"),
        ("lr_warmup_steps = 1.5", "lr_warmup_steps 1.5 is out of range"),
        (
            "network_train_unet_only = true\nnetwork_train_text_encoder_only = true",
            "choose one",
        ),
        ("noise_offset = -0.1", "noise_offset -0.1 is out of range: allowed >= 0 and <= 1"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_toml(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such config file"):
        load_toml(tmp_path / "missing.toml")
    with pytest.raises(UserError, match="not valid TOML"):
        load_toml(write(tmp_path, "network_dim = ["))
    bad = tmp_path / "latin.toml"
    bad.write_bytes('output_name = "caf\xe9"'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_toml(bad)


def test_defaults_are_sd_scripts_defaults() -> None:
    config = TrainingConfig()
    assert config.network_dim == 4
    assert config.network_alpha == 1.0
    assert config.learning_rate == 2e-6
    assert config.lr_scheduler == "constant"
    assert config.max_train_steps == 1600
    assert config.caption_extension == ".caption"
    assert not config.is_adaptive()
    assert TrainingConfig(optimizer_type="DAdaptAdam").is_adaptive()


def test_save_state_every_n_minutes_is_tuilora_own_and_stays_out_of_sd_scripts_exports() -> None:
    from tuilora.advisor.export import kohya_values
    from tuilora.config import config_field_names, to_toml_dict
    from tuilora.kohya_options import OPTIONS

    config = TrainingConfig.from_dict({"output_name": "x"})
    assert config.save_state_every_n_minutes == 10.0  # on by default: a kill loses minutes
    assert "save_state_every_n_minutes" not in OPTIONS  # sd-scripts has no such option
    assert to_toml_dict(config)["tuilora"]["save_state_every_n_minutes"] == 10.0
    assert "save_state_every_n_minutes" not in kohya_values(config, config_field_names())
    assert (
        TrainingConfig.from_dict({"save_state_every_n_minutes": 0}).save_state_every_n_minutes == 0
    )
    with pytest.raises(UserError, match="save_state_every_n_minutes"):
        TrainingConfig.from_dict({"save_state_every_n_minutes": -1})
