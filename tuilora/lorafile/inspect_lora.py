"""``tuilora tools inspect``: what a LoRA file is, from its header, tensors and metadata.

Type (LierLa / C3Lier / LoHa / LoKr / (IA)^3), ranks and alphas (per block when they
vary), module counts per part, the base family (names and shapes first, metadata second),
the ``ss_*`` training facts with the top tags, per-block ΔW norms, the file's hashes, and,
given a model, whether every module finds its weight there with the right shape.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuilora.lorafile.deltas import delta_norm
from tuilora.lorafile.lora import KIND_NAMES, LoraFile, LoraModule, read_lora
from tuilora.lorafile.modelkeys import ModelKeys, Target
from tuilora.lorafile.safetensors_io import SafetensorsFile, dtype_summary, file_hashes
from tuilora.lorafile.training import (
    dataset_folders,
    metadata_family,
    tag_counts,
    training_summary,
)
from tuilora.modelfile.family import CONTEXT_WIDTHS, FAMILY_NAMES

TOP_TAGS = 20


@dataclass(frozen=True)
class BlockRow:
    block: str
    modules: int
    ranks: str
    alphas: str
    #: Mean and largest ‖ΔW‖ (Frobenius, strength 1) of the block's modules.
    norm_mean: float | None
    norm_max: float | None


@dataclass(frozen=True)
class Fit:
    model: str
    model_family: str
    modules: int
    matched: int
    missing: list[str]
    #: (module, the LoRA's (out, in) , the model weight's (out, in)), flattened kernels.
    mismatched: list[tuple[str, tuple[int, int], tuple[int, int]]]

    @property
    def fits(self) -> bool:
        return not self.missing and not self.mismatched


@dataclass
class Inspection:
    file: str
    size_bytes: int
    dtype: str
    network_type: str
    modules: int
    counts: dict[str, int]
    rank: str
    alpha: str
    conv_rank: str | None
    conv_alpha: str | None
    ranks_vary: bool
    family: str | None
    family_evidence: str
    training: list[tuple[str, str]]
    datasets: list[dict[str, Any]]
    top_tags: list[tuple[str, int]]
    blocks: list[BlockRow]
    model_hash: str
    stored_model_hash: str | None
    sha256: str
    notes: list[str] = field(default_factory=list)
    fit: Fit | None = None

    @property
    def autov2(self) -> str:
        return self.sha256[:10]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["autov2"] = self.autov2
        data["family_name"] = FAMILY_NAMES.get(self.family or "", None)
        data["hash_matches_metadata"] = (
            None if self.stored_model_hash is None else self.stored_model_hash == self.model_hash
        )
        data["training"] = dict(self.training)
        data["top_tags"] = [{"tag": tag, "count": count} for tag, count in self.top_tags]
        if self.fit is not None:
            data["fit"]["fits"] = self.fit.fits
        return data


def inspect_lora(path: str | Path, model: ModelKeys | None = None) -> Inspection:
    lora = read_lora(path)
    hashes = file_hashes(lora.path)
    family, evidence, notes = lora_family(lora)
    with SafetensorsFile(lora.path) as file:
        norms = {name: delta_norm(file, module) for name, module in lora.modules.items()}
    linear = [m for m in lora.modules.values() if not m.is_conv3x3]
    convs = [m for m in lora.modules.values() if m.is_conv3x3]
    blocks = _blocks(lora.modules.values(), norms)
    if lora.stray:
        notes.append(f"{len(lora.stray)} tensors belong to no module (first: {lora.stray[0]})")
    tags = tag_counts(lora.metadata)
    return Inspection(
        file=str(lora.path),
        size_bytes=lora.path.stat().st_size,
        dtype=dtype_summary(lora.tensors),
        network_type=network_type(lora),
        modules=len(lora.modules),
        counts=dict(Counter(m.component for m in lora.modules.values())),
        rank=_values(m.rank for m in linear),
        alpha=_values(m.alpha for m in linear),
        conv_rank=_values(m.rank for m in convs) if convs else None,
        conv_alpha=_values(m.alpha for m in convs) if convs else None,
        ranks_vary=any("varies" in row.ranks + row.alphas for row in blocks)
        or len({(row.ranks, row.alphas) for row in blocks}) > 1,
        family=family,
        family_evidence=evidence,
        training=training_summary(lora.metadata),
        datasets=[asdict(folder) for folder in dataset_folders(lora.metadata)],
        top_tags=tags.most_common(TOP_TAGS),
        blocks=blocks,
        model_hash=hashes.model_hash,
        stored_model_hash=lora.metadata.get("sshs_model_hash"),
        sha256=hashes.sha256,
        notes=notes,
        fit=check_fit(lora, model) if model is not None else None,
    )


def network_type(lora: LoraFile) -> str:
    kinds = sorted(
        lora.kinds(), key=lambda kind: list(KIND_NAMES).index(kind) if kind in KIND_NAMES else 99
    )
    names = []
    for kind in kinds:
        if kind == "lora":
            convs = any(m.is_conv3x3 for m in lora.modules.values() if m.kind == "lora")
            name = "LoRA-C3Lier" if convs else "LoRA-LierLa"
            if lora.metadata.get("ss_network_module", "").startswith("lycoris"):
                name += " (LyCORIS LoCon)"
            names.append(name)
        else:
            names.append(KIND_NAMES.get(kind, f"unknown ({kind})"))
    extras = []
    if any(m.dora for m in lora.modules.values()):
        extras.append("DoRA")
    if any(m.tucker for m in lora.modules.values()):
        extras.append("Tucker")
    return " + ".join(names) + (f" ({', '.join(extras)})" if extras else "")


def _values(values: Iterable[float | int | None]) -> str:
    present = sorted({v for v in values if v is not None})
    if not present:
        return "-"
    shown = [_number(v) for v in present]
    return shown[0] if len(shown) == 1 else f"{shown[0]}-{shown[-1]} (varies)"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


_BLOCK_ORDER = re.compile(r"^(TE\d?|BASE|IN|MID|OUT|OTHER)(\d*)$")


def _block_key(block: str) -> tuple[int, int]:
    match = _BLOCK_ORDER.match(block)
    order = ("TE", "BASE", "IN", "MID", "OUT", "OTHER")
    if not match:
        return (len(order), 0)
    head = "TE" if match.group(1).startswith("TE") else match.group(1)
    number = int(match.group(2) or 0) if head != "TE" else int(match.group(1)[2:] or 0)
    return (order.index(head), number)


def _blocks(modules: Iterable[LoraModule], norms: dict[str, float | None]) -> list[BlockRow]:
    grouped: dict[str, list[LoraModule]] = {}
    for module in modules:
        grouped.setdefault(module.block, []).append(module)
    rows = []
    for block in sorted(grouped, key=_block_key):
        members = grouped[block]
        values = [n for m in members if (n := norms.get(m.name)) is not None]
        rows.append(
            BlockRow(
                block=block,
                modules=len(members),
                ranks=_values(m.rank for m in members),
                alphas=_values(m.alpha for m in members),
                norm_mean=sum(values) / len(values) if values else None,
                norm_max=max(values) if values else None,
            )
        )
    return rows


def lora_family(lora: LoraFile) -> tuple[str | None, str, list[str]]:
    """The base family from names and shapes, else metadata; with the evidence and a note
    when the two disagree."""
    notes: list[str] = []
    names = set(lora.modules)
    stated, stated_from = metadata_family(lora.metadata)
    found: str | None = None
    evidence = ""
    if any(n.startswith(("lora_te1_", "lora_te2_")) for n in names) or any(
        n.startswith(
            ("lora_unet_input_blocks_", "lora_unet_output_blocks_", "lora_unet_middle_block_")
        )
        for n in names
    ):
        found, evidence = "sdxl", "SDXL module names (lora_te1/lora_te2, SGM UNet blocks)"
    widths = Counter(
        m.in_features
        for m in lora.modules.values()
        if m.name.endswith("attn2_to_k")
        or (m.name.startswith("lora_te_") and m.name.endswith("q_proj"))
    )
    for width, _ in widths.most_common():
        if width in CONTEXT_WIDTHS and found in (None, CONTEXT_WIDTHS[width]):
            found = CONTEXT_WIDTHS[width]
            evidence = (evidence + "; " if evidence else "") + f"text width {width}"
            break
    if found is None and stated is not None:
        return stated, f"metadata ({stated_from})", notes
    if found is None:
        return None, "unknown (no family-specific names or widths, no metadata)", notes
    if stated is not None and stated != found:
        notes.append(
            f"the metadata ({stated_from}) says {FAMILY_NAMES[stated]}, the weights are"
            f" {FAMILY_NAMES[found]}'s"
        )
    return found, evidence, notes


def fits_target(module: LoraModule, target: Target) -> bool:
    """Does the module's change have the weight's shape? (Flattened kernels: a LoRA made on
    a 1x1 conv fits the same layer as a linear, as sd-scripts' merge allows.)"""
    if module.kind == "ia3":  # one factor per output (or, on_input, per input) feature
        return module.out_features in (target.out_features, target.slot.weight_shape[1])
    return (module.out_features, module.in_features) == (target.out_features, target.in_features)


def check_fit(lora: LoraFile, model: ModelKeys) -> Fit:
    """Does every module find its weight in ``model``, with matching shape?"""
    targets = model.targets()
    missing: list[str] = []
    mismatched: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
    for name, module in lora.modules.items():
        target = targets.get(name)
        if target is None:
            missing.append(name)
            continue
        if not fits_target(module, target):
            have = (module.out_features, module.in_features)
            mismatched.append((name, have, (target.out_features, target.in_features)))
    return Fit(
        model=str(model.source),
        model_family=model.family,
        modules=len(lora.modules),
        matched=len(lora.modules) - len(missing) - len(mismatched),
        missing=missing,
        mismatched=mismatched,
    )
