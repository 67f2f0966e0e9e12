"""What diagnose works from: a run directory, a config file, or a LoRA's metadata.

- A run directory (``config.toml`` + ``events.jsonl`` + snapshots): the config, the curves,
  the snapshots. Without ``config.toml`` the config the ``start`` event carries is used.
- A config alone (tuilora or sd-scripts TOML, via ``config.load_toml``): no curves, so only
  the user's observations speak.
- A ``.safetensors`` LoRA with sd-scripts' ``ss_*`` metadata: the config it records, its
  tag counts and steps per epoch.

When the config names a ``train_data_dir`` that exists, its captions are read (a small
reader of its own: ``.txt``-style captions beside images in ``<N>_<name>/`` folders) to
count how many mention a persistent object and how many images an epoch has.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from tuilora.advisor import steps
from tuilora.advisor.dataset_facts import DatasetFacts, bucket_views, dataset_facts
from tuilora.advisor.diagnose import Diagnosis, ObjectCounts, Observations, diagnose
from tuilora.advisor.diagnose_metrics import RunMetrics, metrics_from_file
from tuilora.advisor.lora_metadata import lora_training
from tuilora.config import TrainingConfig, load_toml
from tuilora.errors import UserError
from tuilora.parsing import loads_toml
from tuilora.runs.rundir import RunDir

IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_FOLDER: Final = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True)
class DiagnoseInput:
    config: TrainingConfig
    #: "run", "config" or "lora"
    kind: str
    source: str
    metrics: RunMetrics | None = None
    run: RunDir | None = None
    #: True when the config came from an sd-scripts TOML or LoRA (written back in that form).
    kohya: bool = False
    notes: tuple[str, ...] = ()
    #: Tag counts from a LoRA's ss_tag_frequency (tag -> captions).
    tags: Mapping[str, int] = field(default_factory=dict)
    steps_per_epoch: int | None = None
    #: Images in the LoRA's dataset, from its ss_dataset_dirs (0 when unknown).
    image_count: int = 0
    #: An sd-scripts TOML's own keys and values (flattened), so the next config keeps the
    #: keys tuilora does not use (xformers, ...) exactly as the user wrote them.
    raw: Mapping[str, Any] = field(default_factory=dict)


def load_input(
    run: str | None = None, config: str | None = None, lora: str | None = None
) -> DiagnoseInput:
    """Exactly one of a run directory, a config file or a LoRA file."""
    given = [value for value in (run, config, lora) if value]
    if len(given) != 1:
        raise UserError(
            "give one of: a run directory (tuilora diagnose runs/NAME), --config FILE.toml or"
            " --lora FILE.safetensors"
        )
    if run:
        path = Path(run)
        if path.is_file() and path.suffix == ".toml":
            return load_config_input(path)
        if path.is_file() and path.suffix == ".safetensors":
            return load_lora_input(path)
        return load_run_input(path)
    if config:
        return load_config_input(Path(config))
    return load_lora_input(Path(str(lora)))


def load_run_input(path: Path) -> DiagnoseInput:
    if not path.exists():
        raise UserError(f"{path}: no such run directory")
    if not path.is_dir():
        raise UserError(f"{path}: not a run directory (expected config.toml and events.jsonl)")
    metrics = metrics_from_file(path / "events.jsonl")
    notes: list[str] = []
    kohya = False
    if (path / "config.toml").is_file():
        loaded = load_toml(path / "config.toml")
        config, kohya = loaded.config, loaded.kohya
    elif metrics is not None and metrics.config:
        config = TrainingConfig.from_dict(dict(metrics.config), source=f"{path}/events.jsonl")
        notes.append("no config.toml in the run directory: used the config its start event holds")
    else:
        raise UserError(f"{path}: no config.toml and no events.jsonl; is this a run directory?")
    if metrics is None:
        what = (
            "events.jsonl holds no readable events"
            if (path / "events.jsonl").exists()
            else "no events.jsonl yet"
        )
        notes.append(f"{what}: findings come from your observations only")
    name = config.output_name or path.name
    return DiagnoseInput(
        config=config,
        kind="run",
        source=str(path),
        metrics=metrics,
        run=RunDir(root=path, name=name),
        kohya=kohya,
        notes=tuple(notes),
    )


def load_config_input(path: Path) -> DiagnoseInput:
    loaded = load_toml(path)
    notes: tuple[str, ...] = ()
    if loaded.ignored:
        notes = (f"sd-scripts keys tuilora does not use: {', '.join(loaded.ignored)}",)
    raw: dict[str, Any] = {}
    if loaded.kohya:
        # load_toml read it already, so it parses; flattened one level as sd-scripts does.
        for key, value in loads_toml(path.read_text(encoding="utf-8")).items():
            raw.update(value if isinstance(value, dict) else {key: value})
    return DiagnoseInput(
        config=loaded.config,
        kind="config",
        source=str(path),
        kohya=loaded.kohya,
        notes=notes,
        raw=raw,
    )


def load_lora_input(path: Path) -> DiagnoseInput:
    training = lora_training(path)
    return DiagnoseInput(
        config=training.config,
        kind="lora",
        source=str(path),
        kohya=True,
        notes=training.notes,
        tags=training.tags,
        steps_per_epoch=training.steps_per_epoch,
        image_count=training.image_count,
    )


# ------------------------------------------------------------------------------------------
# the dataset's captions


@dataclass(frozen=True)
class CaptionSet:
    """The captions of a ``train_data_dir``: one entry per image (None when it has none)."""

    captions: tuple[str | None, ...]


def read_captions(train_data_dir: str | Path, caption_extension: str) -> CaptionSet | None:
    """Captions beside the images of every ``<repeats>_<name>/`` folder; None if no dataset.

    Cached while the folders are unchanged (the checklist screen re-diagnoses on every key);
    the key is the absolute path and the folders' modification times.
    """
    root = Path(train_data_dir).resolve()
    try:
        folders = tuple(
            (entry.name, entry.stat().st_mtime_ns) for entry in root.iterdir() if entry.is_dir()
        )
    except OSError:
        return None
    return _read_captions(str(root), caption_extension, folders)


@lru_cache(maxsize=4)
def _read_captions(
    train_data_dir: str, caption_extension: str, _folders: tuple[tuple[str, int], ...]
) -> CaptionSet | None:
    root = Path(train_data_dir)
    if not root.is_dir():
        return None
    captions: list[str | None] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        match = _FOLDER.match(folder.name)
        if not match:
            continue  # sd-scripts skips folders without the repeats prefix as well
        for image in sorted(folder.iterdir()):
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            captions.append(_first_line(image.with_suffix(caption_extension)))
    if not captions:
        return None
    return CaptionSet(captions=tuple(captions))


def _first_line(path: Path) -> str | None:
    try:
        raw = path.read_bytes()[: 1024 * 1024]
    except OSError:
        return None
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    return text.splitlines()[0].strip() if text.strip() else None


def mentions(text: str, word: str) -> bool:
    """Whether a caption mentions ``word`` as a whole word ("shoulder bag" mentions "bag")."""
    pattern = r"(?<![\w])" + re.escape(word.strip().lower()) + r"(?![\w])"
    return re.search(pattern, text.lower()) is not None


def object_counts(source: DiagnoseInput, word: str | None) -> ObjectCounts | None:
    """How many captions mention ``word``: from the dataset, else from the LoRA's tags."""
    if not word:
        return None
    config = source.config
    if config.train_data_dir:
        captions = read_captions(config.train_data_dir, config.caption_extension)
        if captions is not None:
            hits = sum(1 for text in captions.captions if text and mentions(text, word))
            return ObjectCounts(word=word, mentioned=hits, total=len(captions.captions))
    if source.tags:
        # Counts per tag: a caption with two matching tags counts twice, hence the cap.
        hits = sum(count for tag, count in source.tags.items() if mentions(tag, word))
        images = source.image_count or max(source.tags.values(), default=0)
        return ObjectCounts(word=word, mentioned=min(hits, images), total=images)
    return None


def dataset_steps_per_epoch(source: DiagnoseInput) -> int | None:
    """Steps per epoch from the LoRA's metadata, or from the config's dataset counted with
    the advisor's arithmetic (``steps.epoch_plan``: buckets, regularization, accumulation)."""
    if source.steps_per_epoch:
        return source.steps_per_epoch
    config = source.config
    if not config.train_data_dir:
        return None
    facts = _scanned(config.train_data_dir, config.reg_data_dir, config.caption_extension)
    train = [image for image in facts.images_seen if not image.is_reg] if facts else []
    if not train:
        return None
    regularization = config.reg_data_dir is not None
    views = bucket_views(
        facts.images_seen if facts else None,
        config.resolution,
        config.enable_bucket,
        config.min_bucket_reso,
        config.max_bucket_reso,
        config.bucket_reso_steps,
        config.bucket_no_upscale,
        regularization,
    )
    return steps.steps_per_epoch(
        sum(image.repeats for image in train),
        config.train_batch_size,
        1,  # a config does not say how many processes trained it; a run's start event does
        config.gradient_accumulation_steps,
        regularization,
        views,
    )


def _scanned(train_dir: str, reg_dir: str | None, caption_extension: str) -> DatasetFacts | None:
    """The dataset's image sizes, scanned once while its folders are unchanged (the
    checklist screen re-diagnoses on every key)."""
    stamps: list[tuple[str, int]] = []
    for root in (train_dir, reg_dir):
        if root is None:
            continue
        try:
            stamps.extend((entry.path, entry.stat().st_mtime_ns) for entry in os.scandir(root))
        except OSError:
            return None
    return _scan(train_dir, reg_dir, caption_extension, tuple(stamps))


@lru_cache(maxsize=4)
def _scan(
    train_dir: str, reg_dir: str | None, caption_extension: str, _stamps: tuple[Any, ...]
) -> DatasetFacts | None:
    try:
        return dataset_facts(train_dir, caption_extension=caption_extension, reg_dir=reg_dir)
    except UserError:
        return None


# ------------------------------------------------------------------------------------------
# where the next run goes


def next_output_dir(source: DiagnoseInput) -> str | None:
    """A fresh sibling folder for the next run: runs/aria -> runs/aria-r2 (-r3, ...)."""
    configured = Path(source.config.output_dir) if source.config.output_dir else None
    if source.run is not None:
        base = source.run.root
        # Keep the config's own spelling (absolute or relative) when it names this run.
        if configured is not None and configured.resolve() == base.resolve():
            base = configured
    elif configured is not None:
        base = configured
    else:
        return None
    match = re.match(r"^(.*)-r(\d+)$", base.name)
    stem, number = (match.group(1), int(match.group(2)) + 1) if match else (base.name, 2)
    while True:
        candidate = base.with_name(f"{stem}-r{number}")
        if not candidate.exists():
            return str(candidate)
        number += 1


def run_diagnosis(source: DiagnoseInput, observations: Observations) -> Diagnosis:
    """diagnose() with everything the input offers: curves, counts, the next folder."""
    return diagnose(
        source.config,
        observations,
        source.metrics,
        run=source.run,
        object_counts=object_counts(source, observations.object),
        dataset_steps_per_epoch=dataset_steps_per_epoch(source),
        next_output_dir=next_output_dir(source),
    )
