"""Full-size single-file models: tuilora's load against a plain diffusers load, in one run.

For SD1.5 and SDXL this writes an original-layout ``.safetensors`` with the real shapes and
random weights in fp16 (streamed to disk, no download), then, each in a fresh process with
the libraries already imported, loads it and does one training step's work on the CPU: for
SD1.5 encode a 64 px image and a caption and run the UNet forward and backward; for SDXL
read every weight once (what a step does to memory; its fp16 step takes minutes on a CPU):

- ``diffusers``: ``StableDiffusion(XL)Pipeline.from_single_file(file, config=DIR,
  local_files_only=True, torch_dtype=...)``, DIR holding the shipped configs as a diffusers
  folder (diffusers needs one offline). It must load the file, and every tensor's hash must
  equal tuilora's load of it: the writer is checked against diffusers' own converters.
- ``tuilora``: ``load_base_model(file, dtype=...)`` from the file alone.

and then ``tuilora train`` from the file alone, offline (``HF_HUB_OFFLINE=1``, an empty
``HF_HOME``), at 64 px on the CPU for a few steps: seconds from the command to its first
training step, peak RSS, and the LoRA's module count.

Printed: seconds and peak RSS of each, and the ratios. Goal (issue 13): tuilora <= 1.0x the
plain load in peak RSS and <= 1.2x in time. Needs ~9 GB of RAM for SDXL and ~9 GB of disk
(deleted at the end unless --keep DIR).

    python benchmarks/load_model.py [--families sd15 sdxl] [--keep DIR] [--steps 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAMILIES = {"sd15": "sd1", "sdxl": "sdxl"}
#: The dtype training uses on a CPU: SD1.5's advised fp16 falls back to fp32 there, SDXL's
#: advised bf16 is kept (fp32 SDXL would need ~14 GB).
TRAIN_PRECISION = {"sd15": "no", "sdxl": "bf16"}
DTYPES = {"fp16": "float16", "fp32": "float32", "bf16": "bfloat16"}


# -- the file ---------------------------------------------------------------------------------
def write_random_checkpoint(family: str, out: Path) -> tuple[int, float]:
    """A full-size original-layout file with random fp16 weights; (tensors, seconds)."""
    import torch

    from tuilora.engine.ldm_convert import ldm_shapes, write_safetensors
    from tuilora.modelfile.configs import family_configs

    started = time.perf_counter()
    shapes = ldm_shapes(family, family_configs(family))
    entries = [(name, torch.float16, shape) for name, shape in shapes.items()]
    # what real files carry beside the weights (the loader ignores them)
    if family == "sdxl":
        entries.append(
            (
                "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
                torch.int64,
                (1, 77),
            )
        )  # noqa: E501
        entries.append(("conditioner.embedders.1.model.logit_scale", torch.float16, ()))
    generator = torch.Generator().manual_seed(0)

    def make(name: str, dtype: Any, shape: tuple[int, ...]) -> Any:
        if dtype == torch.int64:
            return torch.arange(77).reshape(shape)
        if name.endswith("bias"):
            return torch.zeros(shape, dtype=dtype)
        if len(shape) == 1 and any(n in name for n in ("norm", "ln_", "layer_norm")):
            return torch.ones(shape, dtype=dtype)
        return (torch.randn(shape, generator=generator) * 0.02).to(dtype)

    write_safetensors(out, entries, make)
    return len(entries), time.perf_counter() - started


def write_config_folder(family: str, folder: Path) -> Path:
    """The shipped configs as the diffusers folder ``from_single_file(config=...)`` needs."""
    from tuilora.engine.single_file import clip_tokenizer
    from tuilora.modelfile.configs import family_configs

    configs = family_configs(family)
    xl = family == "sdxl"
    index: dict[str, Any] = {
        "_class_name": "StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline",
        "scheduler": ["diffusers", configs["scheduler"]["_class_name"]],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if xl:
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
        index["tokenizer_2"] = ["transformers", "CLIPTokenizer"]
        index["force_zeros_for_empty_prompt"] = True
    else:
        index |= {"safety_checker": [None, None], "feature_extractor": [None, None]}
        index["requires_safety_checker"] = False
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps(index))
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in configs:
            (folder / name).mkdir(exist_ok=True)
            config = dict(configs[name])
            if name.startswith("text_encoder"):
                config["model_type"] = "clip_text_model"
            (folder / name / "config.json").write_text(json.dumps(config))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(configs["scheduler"]))
    for index_, tokenizer in enumerate(configs["tokenizers"]):
        name = "tokenizer" if index_ == 0 else "tokenizer_2"
        clip_tokenizer(tokenizer["pad_token"]).save_pretrained(str(folder / name))
    return folder


# -- measured in a fresh process ----------------------------------------------------------------
def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def hashes(modules: dict[str, Any]) -> dict[str, str]:
    out = {}
    for part, module in modules.items():
        for key, value in module.state_dict().items():
            if key.endswith("position_ids"):
                continue
            raw = value.detach().contiguous().reshape(-1).view(__import__("torch").uint8)
            out[f"{part}.{key.removeprefix('text_model.')}"] = hashlib.sha1(
                raw.numpy().data
            ).hexdigest()
    return out


def touch_weights(modules: list[Any]) -> None:
    """Read every weight once (what a first step does to memory), without the compute: the
    SDXL step in fp16 takes minutes on a CPU."""
    total = 0.0
    for module in modules:
        for parameter in module.parameters():
            total += float(parameter.detach().float().sum())


def first_step(family: str, tokenizers: list, encoders: list, vae: Any, unet: Any) -> None:
    """One training step's work at 64 px: encode an image and a caption, run the UNet
    forward and backward (a gradient through every layer). The same code for both loads."""
    import torch

    from tuilora.engine.text import TextEncoding

    dtype = unet.dtype
    image = torch.rand(1, 3, 64, 64, dtype=vae.dtype) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(image).latent_dist.mean.to(dtype)
        text = TextEncoding(family, tokenizers, encoders, max_token_length=75, clip_skip=None)(
            ["a photo of a red circle"]
        )
    noisy = (latents + torch.randn_like(latents)).requires_grad_(True)
    extra = {}
    if text.pooled is not None:
        time_ids = torch.tensor([[64, 64, 0, 0, 64, 64]], dtype=dtype)
        extra = {"added_cond_kwargs": {"text_embeds": text.pooled.to(dtype), "time_ids": time_ids}}
    out = unet(noisy, torch.tensor([500]), text.states.to(dtype), **extra).sample
    out.float().pow(2).mean().backward()


def child(mode: str, family: str, file: str, dtype_name: str, config_dir: str, out: str) -> None:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401 - imports
    from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401 - not timed

    dtype = getattr(torch, DTYPES[dtype_name])
    torch.manual_seed(0)
    if mode == "diffusers":
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        pipeline_class = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
        started = time.perf_counter()
        pipe = pipeline_class.from_single_file(
            file, config=config_dir, local_files_only=True, torch_dtype=dtype
        )
        loaded = time.perf_counter()
        tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if family == "sdxl" else [])
        encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
        vae, unet = pipe.vae, pipe.unet
    else:
        from tuilora.engine.models import load_base_model

        started = time.perf_counter()
        model = load_base_model(file, dtype=dtype)
        loaded = time.perf_counter()
        tokenizers, encoders, vae, unet = (
            model.tokenizers,
            model.text_encoders,
            model.vae,
            model.unet,
        )
    for module in (*encoders, vae, unet):
        module.requires_grad_(False)
    if family == "sdxl":
        touch_weights([*encoders, vae, unet])
    else:
        first_step(family, tokenizers, encoders, vae, unet)
    stepped = time.perf_counter()
    rss = peak_rss_gb()
    modules = {"unet": unet, "vae": vae, "text_encoder": encoders[0]}
    if family == "sdxl":
        modules["text_encoder_2"] = encoders[1]
    # the VAE's dtype differs by design (tuilora keeps SDXL's in fp32): hash one dtype
    for module in modules.values():
        module.to(torch.float16)
    result = {
        "load": loaded - started,
        "step": stepped - loaded,
        "rss": rss,
        "hashes": hashes(modules),
    }
    Path(out).write_text(json.dumps(result))


def measure(mode: str, family: str, file: Path, dtype: str, config_dir: Path, work: Path) -> dict:
    out = work / f"{mode}-{family}-{dtype}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(work / "empty-hf-home")}
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            family,
            str(file),
            dtype,
            str(config_dir),
            str(out),
        ],
        check=True,
        env=env,
    )
    return json.loads(out.read_text())


def train(name: str, file: Path, work: Path, steps: int) -> dict[str, Any]:
    """``tuilora train`` from the file alone: seconds to the first step, peak RSS, the LoRA."""
    import tomli_w

    from tuilora.engine.tiny import build_shapes_dataset

    data = build_shapes_dataset(work / f"data-{name}", images=4)
    run = work / f"run-{name}"
    config = {
        "pretrained_model_name_or_path": str(file),
        "train_data_dir": str(data),
        "output_dir": str(run),
        "output_name": "bench",
        "resolution": 64,
        "network_module": "networks.lora",
        "network_dim": 4,
        "network_alpha": 1.0,
        "optimizer_type": "AdamW",
        "learning_rate": 1e-4,
        "train_batch_size": 1,
        "max_train_steps": steps,
        "mixed_precision": TRAIN_PRECISION[name],
        "gradient_checkpointing": True,
        "cache_latents": True,
        "seed": 1,
        "save_precision": "fp16",
    }
    path = work / f"train-{name}.toml"
    path.write_text(tomli_w.dumps(config))
    home = work / "empty-hf-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "TRANSFORMERS_OFFLINE": "1"}
    errors = work / f"train-{name}.err"
    started = time.perf_counter()
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tuilora", "train", str(path), "--no-progress"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        first_step = None
        events = run / "events.jsonl"
        while True:
            # wait4 gives this child's own peak RSS (getrusage sums no per-child maximum)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if first_step is None and events.is_file() and '"type": "step"' in events.read_text():
                first_step = time.perf_counter() - started
            if pid:
                break
            time.sleep(0.1)
    process.returncode = os.waitstatus_to_exitcode(status)
    from safetensors import safe_open

    lora = run / "bench.safetensors"
    modules = 0
    if lora.is_file():
        with safe_open(str(lora), framework="pt") as handle:
            modules = sum(key.endswith(".lora_down.weight") for key in handle.keys())  # noqa: SIM118
    warnings = (
        [
            json.loads(line).get("message")
            for line in events.read_text().splitlines()
            if '"type": "warning"' in line
        ]
        if events.is_file()
        else []
    )
    return {
        "code": process.returncode,
        "first_step": first_step,
        "total": time.perf_counter() - started,
        "rss": usage.ru_maxrss * 1024 / 1e9,
        "modules": modules,
        "hf_home_files": sum(1 for _ in home.rglob("*")),
        "stderr": errors.read_text().strip().splitlines()[-1:] if process.returncode else [],
        "warnings": warnings,
    }


def describe_cold(file: Path) -> tuple[float, str]:
    """``describe_model`` in a fresh process with the file evicted from the page cache."""
    with file.open("rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    code = (
        "import time, sys; t = time.perf_counter()\n"
        "from tuilora.modelfile import describe_model\n"
        "line = describe_model(sys.argv[1]).summary()\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "print(time.perf_counter() - t, line, heavy, sep='|')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(file)], capture_output=True, text=True, check=True
    )
    seconds, line, heavy = result.stdout.strip().split("|")
    return float(seconds), f"{line} (imported: {heavy})"


# -- the run ------------------------------------------------------------------------------------
def report_loads(
    name: str, family: str, file: Path, dtype: str, config_dir: Path, work: Path
) -> bool:
    plain = measure("diffusers", family, file, dtype, config_dir, work)
    ours = measure("tuilora", family, file, dtype, config_dir, work)
    same = sum(plain["hashes"].get(k) == v for k, v in ours["hashes"].items())
    ours_total, plain_total = ours["load"] + ours["step"], plain["load"] + plain["step"]
    work_done = "every weight read" if family == "sdxl" else "first step (64 px, CPU)"
    print(
        f"{name} {dtype} load + {work_done}: tuilora {ours_total:.1f} s"
        f" (load {ours['load']:.1f} s), peak RSS {ours['rss']:.2f} GB | diffusers"
        f" from_single_file {plain_total:.1f} s (load {plain['load']:.1f} s), peak RSS"
        f" {plain['rss']:.2f} GB | ratio time {ours_total / plain_total:.2f}x, RSS"
        f" {ours['rss'] / plain['rss']:.2f}x (goal <= 1.2x, <= 1.0x) | weights: {same}/"
        f"{len(plain['hashes'])} tensors equal",
        flush=True,
    )
    return same == len(plain["hashes"]) == len(ours["hashes"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--steps", type=int, default=3, help="training steps of the train check")
    parser.add_argument(
        "--dtypes",
        nargs="+",
        help="load dtypes (default: fp16, and fp32 for SD1.5: its CPU training dtype)",
    )
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="tuilora-load-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    try:
        for name in args.families:
            family = FAMILIES[name]
            file = work / f"{name}-random.safetensors"
            if not file.is_file():
                count, seconds = write_random_checkpoint(family, file)
                print(
                    f"{name}: wrote {count} tensors, {file.stat().st_size / 1e9:.2f} GB fp16"
                    f" in {seconds:.0f} s",
                    flush=True,
                )
            started = time.perf_counter()
            advise = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tuilora",
                    "advise",
                    "--subject",
                    "concept",
                    "--images",
                    "40",
                    "--vram",
                    "24",
                    "--model",
                    str(file),
                    "--format",
                    "json",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            advised = json.loads(advise.stdout)["config"]["resolution"]
            seconds = time.perf_counter() - started
            print(
                f"{name}: tuilora advise --model in a fresh process: {seconds:.2f} s,"
                f" resolution {advised}",
                flush=True,
            )
            cold, line = describe_cold(file)
            print(f"{name}: describe_model, cold page cache, fresh process: {cold:.3f} s: {line}")
            config_dir = write_config_folder(family, work / f"{name}-configs")
            # SDXL in bf16 through diffusers would hold the fp16 file and a bf16 copy (~14 GB)
            default = ["fp16", "fp32"] if name == "sd15" else ["fp16"]
            for dtype in args.dtypes or default:
                ok &= report_loads(name, family, file, dtype, config_dir, work)
            result = train(name, file, work, args.steps)
            print(
                f"{name} train ({TRAIN_PRECISION[name]} mixed precision on CPU, 64 px, offline,"
                f" empty HF_HOME): exit {result['code']}, first step after"
                f" {result['first_step'] or float('nan'):.1f} s, {args.steps} steps in"
                f" {result['total']:.1f} s, peak RSS {result['rss']:.2f} GB, LoRA with"
                f" {result['modules']} modules, {result['hf_home_files']} files in HF_HOME"
                + (f" | {result['stderr']}" if result["stderr"] else ""),
                flush=True,
            )
            for warning in result["warnings"]:
                print(f"  warning event: {warning}")
            ok &= result["code"] == 0
            if not args.keep:
                file.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:8])
    else:
        sys.exit(main())
