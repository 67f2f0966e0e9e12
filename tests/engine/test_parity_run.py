"""A whole run against train_network.py: which files it saves and keeps, the seed, the saved
dtypes, the model hashes and the metadata. One short run (9 steps) serves most tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w

torch = pytest.importorskip("torch")
from safetensors import safe_open  # noqa: E402

from tuilora.config import TrainingConfig, load_toml, to_toml_dict  # noqa: E402
from tuilora.engine import metadata  # noqa: E402
from tuilora.engine.loop import epoch_interval  # noqa: E402
from tuilora.engine.train import run_training  # noqa: E402
from tuilora.runs.events import read_events  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, shapes: Path) -> Path:
    """9 steps (3 per epoch) saving every 2 steps and every epoch, keeping the last 2 steps'
    and the last epoch's snapshots, with model-spec options, v2 set on an SD1 model and no
    seed."""
    folder = tmp_path_factory.mktemp("parity-run")
    thumbnail = folder / "thumb.png"
    from PIL import Image

    Image.new("RGB", (4, 4), "red").save(thumbnail)
    values: dict[str, Any] = {
        "pretrained_model_name_or_path": str(tiny_model),
        "train_data_dir": str(shapes),
        "output_dir": str(folder / "run"),
        "output_name": "p",
        "resolution": 64,
        "caption_extension": ".txt",
        "network_dim": 4,
        "network_alpha": 2.0,
        "learning_rate": 1e-3,
        "train_batch_size": 2,
        "max_train_steps": 9,
        "cache_latents": True,
        "network_train_unet_only": True,
        "save_every_n_steps": 2,
        "save_last_n_steps": 2,
        "save_every_n_epochs": 1,
        "save_last_n_epochs": 1,
        "save_state_on_train_end": True,
        "save_precision": "fp16",
        "v2": True,
        "min_timestep": 100,
        "max_timestep": 900,
        "training_comment": "parity",
        "metadata_title": "Shapes",
        "metadata_author": "tuilora tests",
        "metadata_description": "tiny shapes",
        "metadata_license": "CC0",
        "metadata_tags": "shapes,test",
        "metadata_usage_hint": "say tuidemo",
        "metadata_thumbnail": str(thumbnail),
        "metadata_merged_from": "nothing",
        "metadata_trigger_phrase": "tuidemo",
        "metadata_preprocessor": "none",
        "metadata_is_negative_embedding": "False",
    }
    path = folder / "p.toml"
    path.write_text(tomli_w.dumps(values), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    return folder / "run"


def meta_of(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


def test_snapshots_and_retention_follow_sd_scripts(run: Path) -> None:
    # train_network.py: step snapshots NAME-step{N:08d} every save_every_n_steps, the one
    # (N - save_last_n_steps - 1) rounded down to the interval removed; epoch snapshots
    # NAME-{E:06d} except after the last epoch, epoch - every x save_last_n_epochs removed;
    # save_state_on_train_end saves the state at the end.
    names = sorted(p.name for p in run.glob("p*.safetensors"))
    assert names == [
        "p-000002.safetensors",
        "p-step00000006.safetensors",
        "p-step00000008.safetensors",
        "p.safetensors",
    ]
    assert meta_of(run / "p-step00000006.safetensors")["ss_steps"] == "6"
    assert (run / "state").is_dir()
    # save_n_epoch_ratio: floor(epochs / ratio) or 1, winning over save_every_n_epochs
    ratio = TrainingConfig.from_dict({"save_n_epoch_ratio": 3, "save_every_n_epochs": 7})
    assert epoch_interval(ratio, 10) == 3 and epoch_interval(ratio, 2) == 1
    assert epoch_interval(TrainingConfig(save_every_n_epochs=2), 10) == 2


def test_an_unset_seed_is_random_and_recorded(run: Path) -> None:
    # train_network.py: seed None -> random.randint(0, 2**32), recorded as ss_seed; tuilora
    # also writes it into the run's config.toml so --resume continues with it.
    seed = load_toml(run / "config.toml").config.seed
    assert seed is not None and 0 <= seed <= 2**32
    assert meta_of(run / "p.safetensors")["ss_seed"] == str(seed)


def test_alpha_is_saved_in_the_save_dtype(run: Path) -> None:
    # LoRANetwork.save_weights casts every tensor of the state dict, .alpha included, to
    # the save dtype.
    with safe_open(str(run / "p.safetensors"), framework="pt") as handle:
        dtypes = {handle.get_tensor(key).dtype for key in handle.keys()}  # noqa: SIM118
        alpha = handle.get_tensor("lora_unet_down_blocks_0_attentions_0_proj_in.alpha")
    assert dtypes == {torch.float16} and float(alpha) == 2.0


def test_model_hashes_are_sd_scripts_hashes(run: Path, tmp_path: Path, tiny_model: Path) -> None:
    # train_network.py: for a path that exists, ss_sd_model_hash = model_hash (sha256 of
    # the 64 KiB at 1 MiB, 8 hex), ss_new_sd_model_hash = calculate_sha256 (whole file),
    # ss_sd_model_name its basename; a diffusers folder hashes to "IsADirectory" there.
    meta = meta_of(run / "p.safetensors")
    assert meta["ss_sd_model_name"] == tiny_model.name
    assert meta["ss_sd_model_hash"] == meta["ss_new_sd_model_hash"] == "IsADirectory"
    blob = bytes(range(256)) * 8192  # 2 MiB
    model = tmp_path / "model.safetensors"
    model.write_bytes(blob)
    config = TrainingConfig(pretrained_model_name_or_path=str(model), vae="hub/vae")
    keys = metadata.model_keys(config)
    assert keys["ss_sd_model_hash"] == hashlib.sha256(blob[0x100000:0x110000]).hexdigest()[:8]
    assert keys["ss_new_sd_model_hash"] == hashlib.sha256(blob).hexdigest()
    assert keys["ss_sd_model_name"] == "model.safetensors"
    assert keys["ss_vae_name"] == "hub/vae" and "ss_vae_hash" not in keys  # not a path


def test_modelspec_options_and_no_metadata(run: Path) -> None:
    # get_sai_model_spec: metadata_title (else output_name), author, description, license,
    # tags, the other metadata_* as modelspec.<name> (the thumbnail as a data URL),
    # timestep_range from min/max_timestep; no_metadata keeps SS_METADATA_MINIMUM_KEYS.
    meta = meta_of(run / "p.safetensors")
    assert meta["modelspec.title"] == "Shapes"
    assert meta["modelspec.author"] == "tuilora tests"
    assert meta["modelspec.license"] == "CC0" and meta["modelspec.tags"] == "shapes,test"
    assert meta["modelspec.usage_hint"] == "say tuidemo"
    assert meta["modelspec.trigger_phrase"] == "tuidemo"
    assert meta["modelspec.thumbnail"].startswith("data:image/png;base64,")
    assert meta["modelspec.timestep_range"] == "100,900"
    assert meta["ss_training_comment"] == "parity"
    loaded = load_toml(run / "config.toml").config
    facts = metadata.RunFacts("sd1", False, 3, 3, 9, 2)
    bare = metadata.finish(
        {"ss_network_dim": "4", "ss_seed": "1"},
        loaded.replace(no_metadata=True),
        facts,
        steps=1,
        epoch=1,
    )
    assert "ss_seed" not in bare and bare["ss_network_dim"] == "4"
    assert bare["modelspec.title"] == "Shapes"


def test_v2_is_checked_against_the_model(run: Path) -> None:
    # sd-scripts would load an SD1 model as SD2 with v2 set; tuilora reads the architecture
    # from the model and says so once.
    events = read_events(run / "events.jsonl")
    assert any(e["type"] == "warning" and e.get("id") == "v2-mismatch" for e in events)
    assert meta_of(run / "p.safetensors")["ss_v2"] == "False"


def test_full_bf16_trains_the_network_in_bf16(
    make_config: Any, tmp_path: Path, fresh_accelerator_state: Any
) -> None:
    # train_network.py: full_bf16 (with mixed_precision bf16) puts the network itself in
    # the weight dtype; without mixed_precision bf16 it is refused.
    from tuilora.engine.loop import Trainer
    from tuilora.runs.events import EventWriter
    from tuilora.runs.rundir import RunDir

    config = make_config(
        tmp_path / "run",
        mixed_precision="bf16",
        full_bf16=True,
        max_train_epochs=None,
        max_train_steps=2,
        save_every_n_epochs=None,
    )
    run = RunDir(tmp_path / "run", "t")
    run.root.mkdir(parents=True)
    dtypes: list[Any] = []
    original = Trainer.build

    def keep(self: Trainer) -> Any:
        built = original(self)
        dtypes.extend({p.dtype for p in built.network.parameters()})
        return built

    Trainer.build = keep  # type: ignore[method-assign]
    try:
        with EventWriter(run.events) as events:
            assert Trainer(config, run, events, progress=False).run() == "finished"
    finally:
        Trainer.build = original  # type: ignore[method-assign]
    assert dtypes == [torch.bfloat16]
    with pytest.raises(Exception, match="full_fp16 needs mixed_precision"):
        TrainingConfig.from_dict({"full_fp16": True})
    assert json.loads(json.dumps(to_toml_dict(config)))  # the config round-trips
