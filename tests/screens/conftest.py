"""Shared fixtures for the wizard's tests: no real config dir, a fixed GPU, tiny datasets.

Everything machine-dependent is frozen here so Pilot runs and 80x24 snapshots are the same
on every machine: VRAM detection returns 12 GB, ``tuilora train`` is a recorded fake, and
paths are relative to a temporary working directory.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from stub_models import header_only_model

from tuilora.screens.app import WizardApp


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _private_config_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Remembered answers go to a temporary XDG config dir, never the user's."""
    config = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory, so saved files and run folders land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_model_file(path: Path) -> Path:
    """A file ``tuilora train``'s torch-free checks accept as an SD1.5 model (its header)."""
    return header_only_model(path)


@pytest.fixture
def model_file(workdir: Path) -> Path:
    """``model.safetensors`` in the working directory, as the tests type it."""
    return make_model_file(workdir / "model.safetensors")


def make_dataset(root: Path, images: int = 6, uncaptioned: int = 1) -> Path:
    """``root/10_aria`` with small PNGs and booru captions; the first ``uncaptioned`` lack one."""
    folder = root / "10_aria"
    folder.mkdir(parents=True)
    sizes = [(512, 512), (512, 768), (768, 512)]
    for index in range(images):
        width, height = sizes[index % 3]
        colour = (40 * index % 256, 90, 160)
        Image.new("RGB", (width, height), colour).save(folder / f"img{index:02d}.png")
        if index >= uncaptioned:
            tags = "aria, 1girl, wings, armor" + (", smile" if index % 2 else "")
            (folder / f"img{index:02d}.txt").write_text(tags, encoding="utf-8")
    return root


@pytest.fixture
def dataset(workdir: Path) -> Path:
    make_dataset(workdir / "data")
    return Path("data")


class FakeTrain:
    """Records ``tuilora train`` calls and answers like the real one (or fails)."""

    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode
        self.stderr = stderr

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(command))
        return subprocess.CompletedProcess(command, self.returncode, "", self.stderr)


@pytest.fixture
def fake_train() -> FakeTrain:
    return FakeTrain()


@pytest.fixture
def make_app(fake_train: FakeTrain) -> Callable[..., WizardApp]:
    def build(**options: Any) -> WizardApp:
        options.setdefault("detect_vram", lambda: 12.0)
        options.setdefault("runner", fake_train)
        return WizardApp(**options)

    return build
