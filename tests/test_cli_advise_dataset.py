"""`tuilora advise --dataset DIR`: real counts and repeats, folders in the plan, problems as
warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tuilora.cli import main


def make_dataset(root: Path) -> Path:
    for folder, count, repeats in (("aria", 12, 10), ("aria_alt", 3, 10)):
        sub = root / f"{repeats}_{folder}"
        sub.mkdir(parents=True)
        for index in range(count):
            image = Image.new("RGB", (512 + 8 * index, 640), (index * 20 % 255, 80, 120))
            image.save(sub / f"{index:02d}.png")
            if index != 0:
                (sub / f"{index:02d}.txt").write_text(f"aria, pose {index}", encoding="utf-8")
    (root / "10_aria" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    return root


def test_advise_uses_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "data")
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "advise",
                "--category",
                "C",
                "--vram",
                "12",
                "--dataset",
                str(data),
                "--format",
                "json",
            ]
        )
    assert exited.value.code == 0
    result = json.loads(capsys.readouterr().out)
    plan = result["plan"]
    # 12 loadable images in 10_aria (its 13th file is broken: sd-scripts would stop on it,
    # tuilora skips it, so it is not counted) + 3 in 10_aria_alt
    assert plan["images"] == 15
    assert plan["repeats"] == 10
    assert plan["steps_per_epoch"] == 150  # ceil(15 x 10 / batch 1)
    assert plan["epochs"] == 7 and plan["total_steps"] == 1050
    assert [f["name"] for f in plan["folders"]] == ["aria", "aria_alt"]
    ids = {w["id"] for w in result["warnings"]}
    assert any(i.startswith("dataset-") for i in ids)
    assert result["config"]["train_data_dir"] == str(data)
    assert "dataset-repeats" in {r["rule"] for r in result["reasons"]["repeats"]}
