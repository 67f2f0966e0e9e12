"""XY grids of a finished run: the guide's test procedure as labelled PNGs (DESIGN §9).

- ``epoch-strength`` (G-TEST-OVERFIT): a row per LoRA file of the run (``NAME-000001`` …
  and the final ``NAME``), a column per strength. Natural progress goes from "no effect"
  in early rows to growing likeness; a row that breaks at 1.0 is overfit.
- ``unet-te`` (G-TEST-UNETTE): one file, a column per Unet strength and a row per text
  encoder strength, applied separately (sd-webui's ``<lora:NAME:te=B:unet=A>``; the guide
  writes the two numbers in the reverse order, so tuilora always names them).

Every cell uses the same prompt, seed, steps and sampler, so cells differ only by the
axis. The LoRA is applied with the engine's own network, built from the run's config as
training built it (``build_network``): its modules wrap the model's layers, so a strength
is a per-module multiplier, the Unet and TE modules take theirs apart, and strength 0 is
the base model exactly.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuilora.config import TrainingConfig
from tuilora.engine.models import BaseModel
from tuilora.engine.naming import TEXT_ENCODER_PREFIX, UNET_PREFIX
from tuilora.engine.network import NetworkBase, build_network
from tuilora.engine.sample import Resolved, TextSettings, generate, inference_mode, save_png
from tuilora.errors import UserError

GAP = 2  # pixels between cells
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)


@dataclass
class Grid:
    """Rows × columns of images with their labels and a caption (what was held fixed)."""

    kind: str
    row_title: str
    col_title: str
    row_labels: list[str]
    col_labels: list[str]
    caption: list[str]
    cells: list[list[Any]] = field(default_factory=list)  # PIL images, rows of columns


def strength_label(value: float) -> str:
    return f"{value:g}"


# -- the LoRA, with separate Unet / TE multipliers ---------------------------------------
def _read(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise UserError(f"{path}: cannot read as a LoRA .safetensors file ({exc})") from None


class LoRAStrengths:
    """The run's network (built from its config, so LoRA, C3Lier and LyCORIS files all
    load) on the model; load a file, then set Unet and TE strengths apart."""

    def __init__(self, model: BaseModel, config: TrainingConfig, device: torch.device) -> None:
        self.model = model
        self.config = config
        self.device = device
        self.network: NetworkBase | None = None
        self.loaded: set[str] = set()

    @property
    def has_te(self) -> bool:
        return any(name.startswith(TEXT_ENCODER_PREFIX) for name in self.loaded)

    def load(self, path: Path) -> None:
        weights = _read(path)
        names = {key.partition(".")[0] for key in weights}
        if self.network is None:
            self.network = self._build(names)
        try:
            unknown = self.network.load_kohya_state_dict(weights)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
        if unknown:
            raise UserError(
                f"{path}: {len(unknown)} keys match no module of the run's network, e.g."
                f" {unknown[0]} (a file from another run, model family or network type?)"
            )
        self.loaded = names

    def _build(self, names: set[str]) -> NetworkBase:
        model = self.model
        network = build_network(
            self.config,
            model.unet,
            model.text_encoders,
            model.family,
            train_unet=any(name.startswith(UNET_PREFIX) for name in names),
            train_text_encoder=any(name.startswith(TEXT_ENCODER_PREFIX) for name in names),
        )
        network.to(self.device, dtype=torch.float32)
        network.apply_to()
        return network

    def set(self, unet: float, te: float) -> None:
        """Unet modules at ``unet``, text-encoder modules at ``te`` (0 = exactly off); a
        module the loaded file lacks stays off, whatever an earlier file held."""
        assert self.network is not None, "load a file first"
        for name, module in self.network.modules_by_name().items():
            value = unet if name.startswith(UNET_PREFIX) else te
            setattr(module, "multiplier", value if name in self.loaded else 0.0)  # noqa: B010

    def remove(self) -> None:
        if self.network is not None:
            self.network.remove()
            self.network = None


# -- making the grids ----------------------------------------------------------------------
@dataclass
class GridJob:
    model: BaseModel
    config: TrainingConfig
    item: Resolved
    text: TextSettings
    device: torch.device
    autocast: Callable[[], Any]
    report: Callable[[str], None] = lambda message: None

    def cell(self, lora: LoRAStrengths, unet: float, te: float) -> Any:
        lora.set(unet, te)
        modules = [self.model.unet, *self.model.text_encoders, *filter(None, [lora.network])]
        with inference_mode(modules):
            return generate(self.model, self.item, self.text, autocast=self.autocast)

    def caption(self, extra: str) -> list[str]:
        lines = [f"prompt: {self.item.prompt}"]
        if self.item.negative:
            lines.append(f"negative: {self.item.negative}")
        lines.append(self.item.caption())
        lines.append(extra)
        return lines


def epoch_strength_grid(job: GridJob, files: Sequence[Path], strengths: Sequence[float]) -> Grid:
    """A row per LoRA file (oldest first), a column per strength (Unet and TE together)."""
    grid = Grid(
        kind="epoch-strength",
        row_title="file",
        col_title="strength",
        row_labels=[path.stem for path in files],
        col_labels=[strength_label(s) for s in strengths],
        caption=job.caption("rows: LoRA files (epochs), columns: strength (Unet and TE)"),
    )
    lora = LoRAStrengths(job.model, job.config, job.device)
    total = len(files) * len(strengths)
    try:
        for row, path in enumerate(files):
            lora.load(path)
            cells = []
            for col, strength in enumerate(strengths):
                job.report(
                    f"cell {row * len(strengths) + col + 1}/{total}: {path.name} × {strength:g}"
                )
                cells.append(job.cell(lora, strength, strength))
            grid.cells.append(cells)
    finally:
        lora.remove()
    return grid


def unet_te_grid(
    job: GridJob, file: Path, unet: Sequence[float], te: Sequence[float]
) -> tuple[Grid, bool]:
    """Columns of Unet strengths, rows of TE strengths, for one file; and whether the file
    has text-encoder modules at all (without them the rows cannot differ)."""
    grid = Grid(
        kind="unet-te",
        row_title="TE",
        col_title="Unet",
        row_labels=[f"te {strength_label(s)}" for s in te],
        col_labels=[f"unet {strength_label(s)}" for s in unet],
        caption=job.caption(f"{file.name}; rows: TE strength, columns: Unet strength"),
    )
    lora = LoRAStrengths(job.model, job.config, job.device)
    total = len(unet) * len(te)
    try:
        lora.load(file)
        for row, te_strength in enumerate(te):
            cells = []
            for col, unet_strength in enumerate(unet):
                job.report(
                    f"cell {row * len(unet) + col + 1}/{total}: unet {unet_strength:g}"
                    f" te {te_strength:g}"
                )
                cells.append(job.cell(lora, unet_strength, te_strength))
            grid.cells.append(cells)
        has_te = lora.has_te
    finally:
        lora.remove()
    return grid, has_te


# -- drawing -------------------------------------------------------------------------------
def _font(cell_height: int) -> Any:
    from PIL import ImageFont

    # Pillow's own default font, scaled with the cells so labels stay readable at 1024 px.
    return ImageFont.load_default(size=max(11, cell_height // 20))


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """Wrap ``text`` to lines no wider than ``width`` pixels."""
    average = max(1.0, draw.textlength("abcdefghij", font=font) / 10)
    columns = max(10, int(width / average))
    while True:
        lines = textwrap.wrap(text, columns) or [""]
        if columns <= 10 or all(draw.textlength(line, font=font) <= width for line in lines):
            return lines
        columns -= 2


def render_grid(grid: Grid) -> Any:
    """The grid as one PIL image: caption strip, column labels, row labels, cells."""
    from PIL import Image, ImageDraw

    cell_w = max(image.width for row in grid.cells for image in row)
    cell_h = max(image.height for row in grid.cells for image in row)
    font = _font(cell_h)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = int(font.getbbox("Hg")[3]) + 4
    pad = max(4, line_h // 3)
    corner = f"{grid.row_title} \\ {grid.col_title}"
    label_w = pad * 2 + int(
        max(probe.textlength(text, font=font) for text in [*grid.row_labels, corner])
    )
    width = label_w + len(grid.col_labels) * (cell_w + GAP)
    min_col = int(max(probe.textlength(text, font=font) for text in grid.col_labels)) + 2 * pad
    width = max(width, label_w + len(grid.col_labels) * (min_col + GAP))
    step_x = (width - label_w) // len(grid.col_labels)
    caption = [line for text in grid.caption for line in _wrap(probe, text, font, width - 2 * pad)]
    caption_h = pad * 2 + line_h * len(caption)
    header_h = pad * 2 + line_h
    height = caption_h + header_h + len(grid.row_labels) * (cell_h + GAP)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for index, line in enumerate(caption):
        draw.text((pad, pad + index * line_h), line, fill=INK, font=font)
    top = caption_h
    draw.line([(0, top - 1), (width, top - 1)], fill=MUTED)
    draw.text((pad, top + pad), corner, fill=MUTED, font=font)
    for col, label in enumerate(grid.col_labels):
        x = label_w + col * step_x + (step_x - probe.textlength(label, font=font)) / 2
        draw.text((x, top + pad), label, fill=INK, font=font)
    for row, (label, images) in enumerate(zip(grid.row_labels, grid.cells, strict=True)):
        y = top + header_h + row * (cell_h + GAP)
        draw.text((pad, y + (cell_h - line_h) // 2), label, fill=INK, font=font)
        for col, image in enumerate(images):
            x = label_w + col * step_x + (step_x - GAP - image.width) // 2
            canvas.paste(image, (x, y))
    return canvas


def grid_path(folder: Path, stem: str) -> Path:
    """``folder/STEM_<time>.png``, never replacing an earlier grid."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime())
    path = folder / f"{stem}_{stamp}.png"
    number = 2
    while path.exists():
        path = folder / f"{stem}_{stamp}_{number}.png"
        number += 1
    return path


def save_grid(grid: Grid, folder: Path, stem: str) -> Path:
    return save_png(render_grid(grid), grid_path(folder, stem))
