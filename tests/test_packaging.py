"""The built wheel, installed into a fresh venv (not editable), runs `tuilora advise`.

This catches packaging slips a checkout hides: rules/ missing from the wheel, a module left
out of the package list, a dependency not declared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_advises(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("tuilora-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    # Run from outside the checkout so nothing can be read from the source tree.
    result = subprocess.run(
        [
            str(env_dir / "bin" / "tuilora"),
            "advise",
            "--category",
            "C",
            "--images",
            "40",
            "--vram",
            "12",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout)["config"]["network_dim"] == 32
    where = subprocess.run(
        [str(python), "-c", "from tuilora.advisor.rules import rules_dir; print(rules_dir())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(env_dir)), where
    # the shipped model configs and CLIP merges (single-file models offline) are in the wheel
    shipped = subprocess.run(
        [
            str(python),
            "-c",
            "from tuilora.modelfile.configs import family_configs;"
            " from tuilora.modelfile.clip_vocab import clip_vocab;"
            " print(len(clip_vocab()), family_configs('sdxl')['unet']['cross_attention_dim'])",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shipped == ["49408", "2048"]
