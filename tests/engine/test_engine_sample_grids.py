"""`tuilora sample RUN`: epoch × strength and Unet × TE grids of a trained tiny run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tuilora.engine.cli_sample import choose_prompt, find_run, grid_job, lora_files, run_sample
from tuilora.engine.grids import epoch_strength_grid, render_grid, unet_te_grid
from tuilora.engine.sample import generate, inference_mode, resolve
from tuilora.errors import UserError


def pixels(image: Any) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(pixels(a), pixels(b)))


@pytest.fixture(scope="module")
def job(sampled_run: Path) -> Any:
    run, config = find_run(str(sampled_run))
    prompt = choose_prompt(None, config)  # the run's sample prompt: seed 11, 3 steps
    item = resolve(prompt, default_size=config.resolution_wh(), sampler="ddim", steps=2)
    return grid_job(config, item)


def test_epoch_strength_grid_rows_are_files_and_strength_zero_is_the_base(
    sampled_run: Path, job: Any
) -> None:
    run, _ = find_run(str(sampled_run))
    files = lora_files(run)
    assert [f.name for f in files] == ["t-000001.safetensors", "t.safetensors"]
    with inference_mode([job.model.unet, *job.model.text_encoders]):
        base = generate(job.model, job.item, job.text)  # no LoRA on the model at all
    grid = epoch_strength_grid(job, files, [0.0, 1.0])
    assert (grid.row_labels, grid.col_labels) == (["t-000001", "t"], ["0", "1"])
    assert [len(row) for row in grid.cells] == [2, 2]
    (early_off, early_on), (final_off, final_on) = grid.cells
    assert same(early_off, base) and same(final_off, base)  # strength 0 is really off
    assert not same(early_on, base) and not same(final_on, base)
    assert not same(early_on, final_on)  # the epochs differ
    # The network is taken off the model afterwards: the base image again.
    with inference_mode([job.model.unet, *job.model.text_encoders]):
        assert same(generate(job.model, job.item, job.text), base)
    image = render_grid(grid)
    assert image.width >= 2 * 64 and image.height >= 2 * 64 + 40


def test_unet_and_te_strengths_are_applied_separately(sampled_run: Path, job: Any) -> None:
    run, _ = find_run(str(sampled_run))
    grid, has_te = unet_te_grid(job, run.final, [0.0, 1.0], [0.0, 1.0])
    assert has_te
    assert grid.col_labels == ["unet 0", "unet 1"] and grid.row_labels == ["te 0", "te 1"]
    (off, unet_only), (te_only, both) = grid.cells
    with inference_mode([job.model.unet, *job.model.text_encoders]):
        base = generate(job.model, job.item, job.text)
    assert same(off, base)
    assert not same(unet_only, off) and not same(te_only, off)
    assert not same(unet_only, te_only) and not same(both, unet_only) and not same(both, te_only)


def test_run_sample_writes_both_labelled_grids(
    sampled_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = {
        "run": str(sampled_run),
        "grid": "both",
        "steps": "2",
        "strengths": "0,1",
        "unet_strengths": "0,1",
        "te_strengths": "0,0.5,1",
        "snapshot": "t-000001",
    }
    assert run_sample(options) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2
    epoch_grid, unet_te = (Path(p) for p in printed)
    assert epoch_grid.parent == sampled_run / "samples" / "grids"
    assert epoch_grid.name.startswith("t_epoch-strength_") and epoch_grid.suffix == ".png"
    assert unet_te.name.startswith("t-000001_unet-te_")
    with Image.open(epoch_grid) as first, Image.open(unet_te) as second:
        # Cells are 64 px; labels and the caption strip come on top and at the left.
        assert first.width > 2 * 64 and first.height > 2 * 64
        assert second.width > 2 * 64 and second.height > 3 * 64


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grid": "epochs"}, r"--grid 'epochs': choose one of"),
        ({"strengths": "0.5,high"}, r"--strengths '0.5,high': give comma-separated numbers"),
        ({"steps": "0"}, r"--steps 0: must be at least 1"),
        ({"snapshot": "t-000009"}, r"--snapshot t-000009: no such file .*t-000001"),
        ({"sampler": "magic"}, r"--sampler 'magic': choose one of"),
        ({"prompt": "x --w wide"}, r"--prompt: --w 'wide' must be a whole number"),
    ],
)
def test_mistakes_are_user_errors(sampled_run: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        run_sample({"run": str(sampled_run), **changes})


def test_a_run_without_lora_files_is_a_user_error(sampled_run: Path, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes((sampled_run / "config.toml").read_bytes())
    with pytest.raises(UserError, match="no LoRA files yet"):
        run_sample({"run": str(tmp_path)})
    with pytest.raises(UserError, match="no such run folder"):
        run_sample({"run": str(tmp_path / "nope")})


def test_lycoris_runs_get_grids_too(make_config: Any, tmp_path: Path) -> None:
    pytest.importorskip("lycoris")
    import tomli_w

    from tuilora.config import to_toml_dict
    from tuilora.engine.train import run_training

    out = tmp_path / "run"
    config = make_config(
        out,
        max_train_epochs=1,
        network_module="lycoris.kohya",
        network_args=["algo=loha"],
        unet_lr=1e-2,
        text_encoder_lr=1e-2,
    )
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    run, config = find_run(str(out))
    item = resolve(
        choose_prompt("tuidemo, red circle --d 3", config),
        default_size=(64, 64),
        sampler="ddim",
        steps=2,
    )
    job = grid_job(config, item)
    grid, has_te = unet_te_grid(job, run.final, [0.0, 1.0], [0.0, 1.0])
    (off, unet_only), (te_only, _) = grid.cells
    with inference_mode([job.model.unet, *job.model.text_encoders]):
        base = generate(job.model, job.item, job.text)
    assert has_te and same(off, base)
    assert not same(unet_only, off) and not same(te_only, off)
