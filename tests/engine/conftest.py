"""Tiny models and datasets built once per test session (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tuilora.engine.tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def tiny_v_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tuilora.engine.tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("vmodel") / "tiny-v", v_prediction=True)


@pytest.fixture(scope="session")
def tiny_sdxl_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tuilora.engine.tiny import build_tiny_sdxl_pipeline

    return build_tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.fixture()
def fresh_accelerator_state() -> Any:
    """For a test that trains in bf16: accelerate keeps the first mixed precision of a
    process for good, so it is cleared before the test and again after it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tuilora.engine.tiny import build_shapes_dataset

    return build_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", images=6)


@pytest.fixture()
def make_config(tiny_model: Path, shapes: Path) -> Any:
    """A factory of small, fast, valid configs for the tiny model."""

    def build(out: Path, **changes: Any) -> Any:
        return _tiny_config(tiny_model, shapes, out, **changes)

    return build


def _tiny_config(model: Path, data: Path, out: Path, **changes: Any) -> Any:
    from tuilora.config import TrainingConfig

    values: dict[str, Any] = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(data),
        "output_dir": str(out),
        "output_name": "t",
        "resolution": 64,
        "enable_bucket": True,
        "min_bucket_reso": 32,
        "max_bucket_reso": 128,
        "bucket_reso_steps": 32,
        "network_dim": 4,
        "network_alpha": 2.0,
        "optimizer_type": "AdamW",
        "learning_rate": 1e-3,
        "unet_lr": 1e-3,
        "text_encoder_lr": 5e-4,
        "train_batch_size": 2,
        "max_train_epochs": 2,
        "seed": 7,
        "cache_latents": True,
        "caption_extension": ".txt",
        "shuffle_caption": True,
        "keep_tokens": 1,
        "max_token_length": 150,
        "save_every_n_epochs": 1,
        "save_precision": "fp16",
    }
    values.update(changes)
    return TrainingConfig.from_dict(values)


@pytest.fixture(scope="session")
def sampled_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, shapes: Path) -> Path:
    """A finished two-epoch run (``t-000001`` and ``t``) with a sample prompt file, trained
    once per session for the grid tests."""
    import tomli_w

    from tuilora.config import to_toml_dict
    from tuilora.engine.train import run_training

    folder = tmp_path_factory.mktemp("sampled")
    prompts = folder / "prompts.txt"
    prompts.write_text("tuidemo, red circle --n blurry --s 3 --d 11\n", encoding="utf-8")
    config = _tiny_config(
        tiny_model,
        shapes,
        folder / "run",
        sample_prompts=str(prompts),
        unet_lr=1e-2,
        text_encoder_lr=1e-2,
    )
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    return folder / "run"
