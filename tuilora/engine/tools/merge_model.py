"""``tuilora tools merge --base M --lora L:0.8 [--lora L2:0.5] --out M2``: LoRAs baked into
a checkpoint, written in the base's own format and layout.

As sd-scripts' ``networks/merge_lora.py``: W ← W + ratio·ΔW for each LoRA in turn, ΔW from
the module's factors and alpha/rank (LoHa and LoKr as LyCORIS computes them; (IA)^3 scales
W by 1 + ratio·weight). Unlike sd-scripts, a module with no weight in the model is an
error, not a log line: a LoRA for another base model would otherwise merge half-way.

The output is streamed tensor by tensor: every tensor of the base is copied in its order
and dtype (``--save-precision`` converts floating ones), the targeted ones with their
change added in float32. A single file gives a single file with the same keys (an original
layout stays original; a ``.ckpt`` gives a ``.safetensors`` of the same keys); a diffusers
folder gives a diffusers folder, its other files copied. Memory: one tensor at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuilora.engine.tools.loras import LoraInput, read_inputs, require_computable
from tuilora.engine.tools.outputs import check_output
from tuilora.engine.tools.sources import (
    PRECISIONS,
    ModelSource,
    open_model,
    tensor_bytes,
)
from tuilora.engine.weights import TORCH_DTYPES
from tuilora.errors import UserError
from tuilora.lorafile.deltas import delta, ia3_scale
from tuilora.lorafile.inspect_lora import fits_target
from tuilora.lorafile.lora import LoraModule
from tuilora.lorafile.modelkeys import Target
from tuilora.lorafile.safetensors_io import FLOAT_DTYPES, SafetensorsFile
from tuilora.lorafile.safetensors_write import PlannedTensor, write_safetensors
from tuilora.modelfile.family import FAMILY_NAMES

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Change:
    target: Target
    item: LoraInput
    module: LoraModule


@dataclass
class ModelMergeReport:
    out: Path
    family: str
    layout: str
    loras: list[tuple[Path, float, int]] = field(default_factory=list)
    weights_changed: int = 0


def merge_into_model(
    base: str | Path,
    lora_specs: list[str],
    out: str | Path,
    *,
    save_precision: str | None = None,
    allow_pickle: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> ModelMergeReport:
    base_path = Path(base)
    if base_path.is_dir() and Path(out).suffix.lower() == ".safetensors":
        raise UserError(
            f"--base {base_path} is a diffusers folder, so the merge writes a folder: give --out"
            " a folder name (or merge into a single-file model)"
        )
    out_path = check_output(out, force=force, folder=base_path.is_dir())
    if save_precision is not None and save_precision not in PRECISIONS:
        raise UserError(f"--save-precision {save_precision!r} is not one of: float, fp16, bf16")
    inputs = read_inputs(lora_specs)
    for item in inputs:
        require_computable(item, additive_only=False, tool="merge")
    with open_model(base_path, allow_pickle=allow_pickle, flag="--base") as model:
        changes = _plan(model, inputs)
        report = ModelMergeReport(out_path, model.family, model.keys.layout)
        report.loras = [(i.path, i.ratio, len(i.lora.modules)) for i in inputs]
        report.weights_changed = len(changes)
        files = {item.path: SafetensorsFile(item.path) for item in inputs}
        try:
            merger = _Merger(model, changes, files, save_precision, progress)
            recipe = [{"file": i.path.name, "ratio": i.ratio} for i in inputs]
            if model.keys.layout == "diffusers":
                merger.write_folder(base_path, out_path, recipe, force)
            else:
                merger.write_file(out_path, recipe, force)
        finally:
            for file in files.values():
                file.close()
    return report


def _plan(
    model: ModelSource, inputs: list[LoraInput]
) -> dict[tuple[Path | None, str], list[Change]]:
    """Changes grouped by stored tensor (file, key): a fused q/k/v weight gets three."""
    targets = model.keys.targets()
    changes: dict[tuple[Path | None, str], list[Change]] = {}
    for item in inputs:
        missing = [name for name in item.lora.modules if name not in targets]
        if missing:
            raise UserError(
                f"{item.path}: {len(missing)} of {len(item.lora.modules)} modules have no weight"
                f" in the {FAMILY_NAMES[model.family]} base (first: {missing[0]}); is it for"
                f" another base model? (tuilora tools inspect {item.path} --model BASE)"
            )
        for name, module in item.lora.modules.items():
            target = targets[name]
            if not fits_target(module, target):
                raise UserError(
                    f"{item.path}: {name} is {module.out_features}x{module.in_features}, the"
                    f" base's weight {target.out_features}x{target.in_features}; the LoRA is"
                    " for another model"
                )
            key = (target.slot.file, target.slot.key)
            changes.setdefault(key, []).append(Change(target, item, module))
    return changes


class _Merger:
    def __init__(
        self,
        model: ModelSource,
        changes: dict[tuple[Path | None, str], list[Change]],
        files: dict[Path, SafetensorsFile],
        save_precision: str | None,
        progress: Progress | None,
    ) -> None:
        self.model = model
        self.changes = changes
        self.files = files
        self.precision = PRECISIONS.get(save_precision or "")
        self.progress = progress
        self.done = 0

    def _dtype(self, stored: str) -> str:
        return self.precision if self.precision and stored in FLOAT_DTYPES else stored

    def _plan_file(
        self, file: Path | None, keys: list[tuple[str, str, tuple[int, ...]]]
    ) -> list[PlannedTensor]:
        planned = []
        for key, dtype, shape in keys:
            out_dtype = self._dtype(dtype)
            planned.append(
                PlannedTensor(
                    key, out_dtype, shape, self._producer(file, key, dtype, shape, out_dtype)
                )
            )
        return planned

    def _producer(
        self, file: Path | None, key: str, dtype: str, shape: tuple[int, ...], out_dtype: str
    ) -> Callable[[], Any]:
        def produce() -> Any:
            changes = self.changes.get((file, key))
            if file is not None and not changes and out_dtype == dtype:
                return self.model.file(file).read_bytes(key)  # untouched: copied as stored
            tensor = self.model.stored(file, key, dtype, shape)
            if changes:
                tensor = self._apply(tensor.float(), changes)
                self.done += 1
                if self.progress:
                    self.progress(key, self.done, len(self.changes))
            return tensor_bytes(tensor.to(TORCH_DTYPES[out_dtype]))

        return produce

    def _apply(self, weight: torch.Tensor, changes: list[Change]) -> torch.Tensor:
        for change in changes:
            rows = change.target.slot.rows
            part = weight if rows is None else weight[rows[0] : rows[1]]
            file = self.files[change.item.path]
            ratio = change.item.ratio
            if change.module.kind == "ia3":
                vector, on_input = ia3_scale(file, change.module)
                factor = 1.0 + ratio * torch.from_numpy(vector).float()
                axis = 1 if on_input else 0
                view = [1] * part.dim()
                view[axis] = -1
                part.mul_(factor.reshape(view))
            else:
                change_flat = torch.from_numpy(delta(file, change.module))
                part.add_(change_flat.reshape(part.shape), alpha=ratio)
        return weight

    def write_file(self, out: Path, recipe: list[dict[str, Any]], force: bool) -> None:
        keys = self.model.keys
        source = keys.source if keys.source.suffix.lower() == ".safetensors" else None
        if source is not None:
            stored = self.model.file(source)
            entries = [(name, i.dtype, i.shape) for name, i in stored.tensors.items()]
            metadata = dict(stored.metadata)
        else:
            entries = [(key, slot.dtype, slot.shape) for key, slot in keys.slots.items()]
            metadata = {"format": "pt"}
        metadata["tuilora_merged_loras"] = json.dumps(recipe)
        write_safetensors(out, self._plan_file(source, entries), metadata, overwrite=force)

    def write_folder(
        self, base: Path, out: Path, recipe: list[dict[str, Any]], force: bool
    ) -> None:
        """A copy of the diffusers folder with the changed weight files rewritten, built
        beside ``out`` and renamed into place when complete."""
        changed_files = {file for file, _ in self.changes}
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        try:
            for source in sorted(base.rglob("*")):
                target = staging / source.relative_to(base)
                if source.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if source in changed_files or (self.precision and source.suffix == ".safetensors"):
                    stored = self.model.file(source)
                    entries = [(name, i.dtype, i.shape) for name, i in stored.tensors.items()]
                    metadata = dict(stored.metadata)
                    metadata["tuilora_merged_loras"] = json.dumps(recipe)
                    write_safetensors(target, self._plan_file(source, entries), metadata)
                else:
                    shutil.copy2(source, target)
            _replace_folder(staging, out, force)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _replace_folder(staging: Path, out: Path, force: bool) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    if not force:
        raise UserError(f"--out {out} already exists; pass --force to overwrite it")
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)
