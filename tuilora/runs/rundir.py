"""The layout of a run directory (DESIGN §6 "Runs") and which files in it are the run's.

``output_dir`` (default ``runs/<output_name>/``) holds the LoRA files as sd-scripts names
them (``NAME-000001.safetensors`` snapshots, ``NAME.safetensors`` final,
``NAME-step00000123.safetensors`` for a stopped run) and the run's own files:
``config.toml``, ``events.jsonl``, ``pid``, ``lock``, ``train.log``, ``state/``, ``tb/``,
``samples/``, ``cache/``. That list is everything a run may ever write or delete; anything
else in the folder (other LoRAs, the user's notes, a ComfyUI ``models/loras`` collection) is
never touched, with or without ``--force`` (issue 12).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

#: The run's own files. ``lock`` is opened in append mode and never written, ``train.log`` is
#: only appended to, so a foreign file of either name loses nothing.
RUN_FILES: Final = ("config.toml", "events.jsonl", "pid", "lock", "train.log")
#: The run's own folders (``state.new`` / ``state.old``: the layout before numbered states).
RUN_FOLDERS: Final = ("state", "tb", "samples", "cache", "state.new", "state.old")
#: Names a new run would write into or over: found in a folder that holds no run, they
#: belong to someone else and the run refuses to start there.
RESERVED: Final = ("config.toml", "events.jsonl", "pid", "state", "tb", "samples", "cache")
#: ``fileio.write_atomic``'s temporary files: ``.TARGET.<8 random chars>.tmp``.
_TEMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


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

    def step_of(self, path: Path) -> int | None:
        """The step of one of this run's ``NAME-stepNNNNNNNN`` files (None for other files)."""
        match = re.fullmatch(rf"{re.escape(self.name)}-step(\d{{8}})\.safetensors", path.name)
        return int(match.group(1)) if match and path.parent == self.root else None

    @property
    def final(self) -> Path:
        return self.root / f"{self.name}.safetensors"

    def snapshots(self) -> list[Path]:
        return sorted(self.root.glob(f"{glob_quote(self.name)}-{'[0-9]' * 6}.safetensors"))

    # -- ownership ---------------------------------------------------------------------
    def is_lora_name(self, file_name: str) -> bool:
        """``file_name`` is one of the names this run's LoRA files take (whoever wrote it)."""
        pattern = rf"{re.escape(self.name)}(-\d{{6}}|-step\d{{8}})?\.safetensors"
        return re.fullmatch(pattern, file_name) is not None

    def lora_files(self) -> list[Path]:
        """Files in the folder named as this run's LoRAs (not necessarily written by it)."""
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return []
        return sorted(p for p in entries if self.is_lora_name(p.name) and p.is_file())

    def foreign_items(self) -> list[str]:
        """Reserved names present in the folder (only meaningful when it holds no run)."""
        return [name for name in RESERVED if (self.root / name).exists()]

    def leftover_temp_files(self) -> list[Path]:
        """Temporary files of a killed atomic write of one of this run's files."""
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return []
        found = []
        for path in entries:
            match = _TEMP.match(path.name)
            if match and path.is_file():
                target = match.group("target")
                if target in RUN_FILES or self.is_lora_name(target):
                    found.append(path)
        return sorted(found)


def glob_quote(text: str) -> str:
    """``text`` with glob's special characters escaped (names are checked, but folders of old
    runs and paths from elsewhere are not)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def written_loras(run: RunDir, events: Iterable[dict[str, Any]]) -> list[Path]:
    """The LoRA files ``run``'s events say it wrote (snapshots and final files), in order.
    Only these are the run's to delete (``--force``, ``save_last_n_epochs``). Events may hold
    paths relative to another working directory: only the file name counts, and only when it
    is one of the run's LoRA names, inside the run's own folder."""
    written: list[Path] = []
    for event in events:
        kind = event.get("type")
        path = event.get("snapshot") if kind == "epoch_end" else None
        if kind == "info" and event.get("id") == "step-snapshot":  # save_every_n_steps
            path = event.get("snapshot")
        if kind == "end":
            path = event.get("final")
        if not isinstance(path, str) or not path:
            continue
        name = Path(path).name
        if run.is_lora_name(name) and run.root / name not in written:
            written.append(run.root / name)
    return written
