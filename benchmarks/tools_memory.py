"""Peak memory of `tuilora tools extract` and `merge` on a full-size checkpoint, in one run.

Builds an SD1.5-shaped original-layout checkpoint (real shapes, random fp16 weights, ~2.1 GB)
and a "tuned" copy with a known rank-8 change on every UNet LoRA target (the text encoder
unchanged), then runs, each in its own process, with that process's peak RSS (its VmHWM:
``ru_maxrss`` would keep the parent's peak across fork and exec):

- `tuilora tools extract --dim 8` (base vs tuned), and how much of the known change the
  extracted LoRA recovers (its kept energy and relative error, as the tool reports them);
- `tuilora tools merge` of that LoRA back into the base (a new 2.1 GB file, checked to
  have the base's keys, order, dtypes and shapes and to read back as the same family);
- both files read whole into memory as stored (fp16; what a script holding both models
  needs at the least: sd-scripts' extract holds two full models), for the ratio. (Not
  safetensors' ``load_file``: its tensors are memory-mapped, so its RSS counts only pages
  touched.)

Goal: extract and merge within a few GB (they read one layer at a time). `--family sdxl`
does the same on an SDXL-shaped file (~6.9 GB each, ~21 GB of disk; no plain-load baseline:
two SDXL models would need ~14 GB). Files are written under --dir (default: a temporary
folder) and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import torch

RANK = 8
CHILD = """
import json, resource, sys, time
start = time.perf_counter()
code = 0
if sys.argv[1] == "load":  # every tensor of both files held in memory, as stored
    from tuilora.engine.tools.sources import tensor_from_bytes
    from tuilora.lorafile.safetensors_io import SafetensorsFile
    held = []
    for path in sys.argv[2:]:
        with SafetensorsFile(path) as file:
            held.append({name: tensor_from_bytes(file.read_bytes(name), info.dtype, info.shape)
                         for name, info in file.tensors.items()})
else:
    from tuilora.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code or 0
try:  # this process's own high-water mark: ru_maxrss keeps the parent's across fork + exec
    with open("/proc/self/status") as status:
        peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) * 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak, "seconds": time.perf_counter() - start, "code": code}),
      file=sys.stderr)
"""


def measured(args: list[str]) -> tuple[dict[str, float], str]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False
    )
    figures = json.loads(result.stderr.strip().splitlines()[-1])
    if figures["code"] or result.returncode:
        raise SystemExit(f"{args[:2]} failed:\n{result.stdout}\n{result.stderr}")
    return figures, result.stdout


def build(family: str, folder: Path) -> tuple[Path, Path]:
    """The base file (random weights, std 0.02) and the tuned one: the same weights plus a
    rank-8 change on every UNet LoRA target, streamed tensor by tensor."""
    from tuilora.engine.ldm_convert import ldm_shapes, write_safetensors
    from tuilora.lorafile.modelkeys import Slot, keys_from_slots
    from tuilora.modelfile.configs import family_configs

    shapes = ldm_shapes(family, family_configs(family))
    slots = {key: Slot(None, key, shape, "F16") for key, shape in shapes.items()}
    targets = keys_from_slots(folder / "x", slots).targets()
    changed = {
        target.slot.key
        for name, target in targets.items()
        if name.startswith("lora_unet_") and target.in_network(conv=False)
    }
    entries = [(name, torch.float16, shape) for name, shape in shapes.items()]

    def weights(name: str, shape: tuple[int, ...], tuned: bool) -> torch.Tensor:
        generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        value = torch.randn(shape, generator=generator) * 0.02
        if tuned and name in changed:
            rows, cols = shape[0], int(torch.Size(shape[1:]).numel())
            up = torch.randn(rows, RANK, generator=generator)
            down = torch.randn(RANK, cols, generator=generator)
            value += ((up @ down) * (0.01 / RANK)).reshape(shape)  # a fine-tune-sized change
        return value

    base = write_safetensors(
        folder / "base.safetensors", entries, lambda n, _, s: weights(n, s, tuned=False)
    )
    tuned = write_safetensors(
        folder / "tuned.safetensors", entries, lambda n, _, s: weights(n, s, tuned=True)
    )
    return base, tuned


def same_layout(base: Path, merged: Path) -> str:
    """The merge writes the base's own layout back: the same keys in the same order, dtypes
    and shapes, and modelfile reads it as the same family."""
    from tuilora.modelfile.describe import describe_model
    from tuilora.modelfile.family import FAMILY_NAMES
    from tuilora.modelfile.header import read_safetensors_header

    def table(path: Path) -> list[tuple[str, str, tuple[int, ...]]]:
        tensors = read_safetensors_header(path).tensors
        return [(key, info.dtype, info.shape) for key, info in tensors.items()]

    wanted, found = table(base), table(merged)
    if found != wanted:
        raise SystemExit(f"{merged}: not the base's layout ({len(found)} vs {len(wanted)} keys)")
    family = FAMILY_NAMES[describe_model(merged, what="merged").family or ""]
    return f"written in the base's layout: {len(found)} keys, read back as {family}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["sd1", "sdxl"], default="sd1")
    parser.add_argument("--dir", default=None, help="where the big files go")
    parser.add_argument("--clamp-quantile", default="0.99", help="passed to extract")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tuilora-tools-", dir=args.dir))
    try:
        started = time.perf_counter()
        base, tuned = build(args.family, folder)
        built = time.perf_counter() - started
        size = base.stat().st_size / 1e9
        lora = folder / "extracted.safetensors"
        extract, report = measured(
            [
                "tools",
                "extract",
                "--base",
                str(base),
                "--tuned",
                str(tuned),
                "--dim",
                str(RANK),
                "--out",
                str(lora),
                "--clamp-quantile",
                args.clamp_quantile,
                "--format",
                "json",
            ]
        )
        data = json.loads(report)
        merge, _ = measured(
            [
                "tools",
                "merge",
                "--base",
                str(base),
                "--lora",
                str(lora),
                "--out",
                str(folder / "merged.safetensors"),
            ]
        )
        layout = same_layout(base, folder / "merged.safetensors")
        line = (
            f"tools on an {args.family.upper()}-shaped fp16 checkpoint ({size:.2f} GB, built in"
            f" {built:.0f} s): extract dim {RANK} peak RSS {extract['peak'] / 1e9:.2f} GB"
            f" ({extract['peak'] / 1e9 / size:.2f}x the file) in {extract['seconds']:.0f} s,"
            f" kept energy {data['energy']:.4%}, relative error {data['error']:.3%}"
            f" (clamp {args.clamp_quantile}; text encoder extracted: {data['text_encoder']});"
            f" merge peak RSS {merge['peak'] / 1e9:.2f} GB in {merge['seconds']:.0f} s"
            f" ({layout})"
        )
        if args.family == "sd1":
            load, _ = measured(["load", str(base), str(tuned)])
            line += (
                f"; both files held in memory: {load['peak'] / 1e9:.2f} GB"
                f" (extract {extract['peak'] / load['peak']:.2f}x,"
                f" merge {merge['peak'] / load['peak']:.2f}x of it)"
            )
        print(line)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
