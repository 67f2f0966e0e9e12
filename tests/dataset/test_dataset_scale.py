"""50,000 files in one folder: the scan finishes and reports them all (its time is measured
in benchmarks/dataset_worst_cases.py, not asserted here)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from tuilora.dataset.scan import scan_dataset

COUNT = 50_000


@pytest.mark.slow
def test_fifty_thousand_files(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "PNG")
    pixels = buffer.getvalue()
    folder = tmp_path / "1_many"
    folder.mkdir()
    for index in range(COUNT):
        # Bytes after IEND keep the picture but change the content hash: every file is a
        # near-duplicate of the first, not an exact one, the costlier path.
        (folder / f"{index:05d}.png").write_bytes(pixels + index.to_bytes(4, "big"))
        if index % 2:
            (folder / f"{index:05d}.txt").write_bytes(b"many, red")
    os.link(folder / "00000.png", folder / "copy.png")
    report = scan_dataset(str(tmp_path), subject="style", resolution=64)
    assert report.total_images == COUNT + 1
    counts: dict[str, int] = {}
    for item in report.problems:
        counts[item.id] = counts.get(item.id, 0) + 1
    assert counts["near-duplicate"] == COUNT - 1
    assert counts["duplicate-image"] == 1
    assert counts["missing-caption"] == COUNT // 2 + 1
    assert counts["too-many-images"] == 1
