"""The layout of a run directory (DESIGN §6 "Runs").

``output_dir`` (default ``runs/<output_name>/``) holds the LoRA files as sd-scripts names
them (``NAME-000001.safetensors`` snapshots, ``NAME.safetensors`` final) and the run's own
files: ``config.toml``, ``events.jsonl``, ``tb/``, ``state/``, ``samples/``, ``train.log``,
``pid``, ``lock``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path
    name: str

    @classmethod
    def for_output(cls, output_dir: str | Path | None, output_name: str) -> RunDir:
        root = Path(output_dir) if output_dir else Path("runs") / output_name
        return cls(root=root, name=output_name)

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def pid(self) -> Path:
        return self.root / "pid"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    def snapshot(self, epoch: int) -> Path:
        """sd-scripts' six-digit epoch snapshots: NAME-000001.safetensors."""
        return self.root / f"{self.name}-{epoch:06d}.safetensors"

    def step_snapshot(self, step: int) -> Path:
        """sd-scripts' step-named file (NAME-step00000123), used for a stopped run's LoRA."""
        return self.root / f"{self.name}-step{step:08d}.safetensors"

    @property
    def final(self) -> Path:
        return self.root / f"{self.name}.safetensors"

    def snapshots(self) -> list[Path]:
        return sorted(self.root.glob(f"{self.name}-[0-9][0-9][0-9][0-9][0-9][0-9].safetensors"))
