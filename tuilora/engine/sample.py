"""Sample images with the training models and the live LoRA (DESIGN §9).

``generate`` turns one resolved prompt into an image through a diffusers pipeline assembled
from the components already in memory: the UNet and text encoders carry the LoRA (its
modules wrap their forwards), so what comes out is what the LoRA does now, at whatever
multiplier the network is set to. ``TrainingSampler`` calls it when sd-scripts would
(``sample_every_n_epochs`` at an epoch's end, else ``sample_every_n_steps`` after a step),
saves ``RUN/samples/NAME_e000001_00_<time>_<seed>.png`` (``NAME_000120_...`` for step
samples) and emits a ``sample`` event. The grids of ``tuilora sample`` reuse ``generate``.

Prompts are encoded exactly as training encodes captions (``max_token_length`` chunks,
``clip_skip``; for SDXL both encoders' penultimate states and TE2's pooled embedding) and
passed to the pipeline as embeddings, so a long prompt is not cut at 77 tokens and an empty
negative prompt is encoded rather than zeroed (as sd-scripts' own sampling pipelines).
Decoding happens outside autocast in the VAE's own precision.
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuilora.config import TrainingConfig
from tuilora.engine.models import BaseModel
from tuilora.engine.text import encode, tokenize
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.runs.prompts import DEFAULT_SCALE, DEFAULT_STEPS, SamplePrompt, load_prompts
from tuilora.runs.rundir import RunDir

log = logging.getLogger("tuilora.sample")

#: sd-scripts' sampler names (``get_my_scheduler``) → diffusers scheduler class and options.
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "k_lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "k_euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "k_euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmsolver": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver"}),
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmsingle": ("DPMSolverSinglestepScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "k_dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "k_dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
}
#: diffusers' LMS scheduler integrates with scipy, which the training stack does not pull in.
NEEDS_SCIPY = ("LMSDiscreteScheduler",)


def check_sampler(name: str, where: str) -> None:
    if name not in SAMPLERS:
        raise UserError(f"{where} {name!r}: choose one of {', '.join(SAMPLERS)}")
    if SAMPLERS[name][0] in NEEDS_SCIPY and find_spec("scipy") is None:
        raise UserError(f"{where} {name}: diffusers needs scipy for it (pip install scipy)")


def build_scheduler(name: str, model: BaseModel) -> Any:
    """The sampler from the model's own schedule (betas, prediction type), not SD1.5's."""
    import diffusers

    class_name, options = SAMPLERS[name]
    scheduler_class = getattr(diffusers, class_name)
    # steps_offset=1 as the SD checkpoints' scheduler configs; without it the SD pipeline
    # rewrites the config and warns.
    return scheduler_class.from_config(model.noise_scheduler.config, steps_offset=1, **options)


@dataclass(frozen=True)
class Resolved:
    """One prompt with every value decided: what an image (or a grid cell) is made from."""

    prompt: str
    negative: str
    width: int
    height: int
    steps: int
    scale: float
    seed: int
    sampler: str

    def caption(self) -> str:
        return (
            f"seed {self.seed} · {self.steps} steps · CFG {self.scale:g} · {self.sampler}"
            f" · {self.width}x{self.height}"
        )


def resolve(
    prompt: SamplePrompt,
    *,
    default_size: tuple[int, int],
    sampler: str,
    seed: int | None = None,
    steps: int | None = None,
) -> Resolved:
    """Fill what the prompt leaves open; an explicit ``seed`` / ``steps`` wins over the line.

    Without a seed anywhere a random one is drawn (as sd-scripts) and reported, so every
    image can be made again.
    """
    chosen_seed = seed if seed is not None else prompt.seed
    width, height = prompt.size(*default_size)
    return Resolved(
        prompt=prompt.prompt,
        negative=prompt.negative or "",
        width=width,
        height=height,
        steps=steps or prompt.steps or DEFAULT_STEPS,
        scale=prompt.scale if prompt.scale is not None else DEFAULT_SCALE,
        seed=chosen_seed if chosen_seed is not None else secrets.randbelow(2**31),
        sampler=prompt.sampler or sampler,
    )


@dataclass(frozen=True)
class TextSettings:
    """How captions were encoded in training; samples encode prompts the same way."""

    max_token_length: int = 75
    clip_skip: int | None = None

    @classmethod
    def of(cls, config: TrainingConfig) -> TextSettings:
        return cls(config.max_token_length or 75, config.clip_skip)


@contextlib.contextmanager
def inference_mode(modules: Sequence[nn.Module]) -> Iterator[None]:
    """eval() and no_grad for generating; each module's train/eval mode comes back after,
    and so does torch's global RNG (LoRA dropout draws from it during training)."""
    modes = [(module, module.training) for module in modules]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    for module, _ in modes:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.train(mode)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _pipeline(model: BaseModel, scheduler: Any) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if model.family == "sdxl":
        pipeline: Any = StableDiffusionXLPipeline(
            vae=model.vae,
            text_encoder=model.text_encoders[0],
            text_encoder_2=model.text_encoders[1],
            tokenizer=model.tokenizers[0],
            tokenizer_2=model.tokenizers[1],
            unet=model.unet,
            scheduler=scheduler,
        )
    else:
        pipeline = StableDiffusionPipeline(
            vae=model.vae,
            text_encoder=model.text_encoders[0],
            tokenizer=model.tokenizers[0],
            unet=model.unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def generate(
    model: BaseModel,
    item: Resolved,
    text: TextSettings,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> Any:
    """One PIL image. Call inside ``inference_mode``; the noise comes from a CPU generator
    seeded with ``item.seed``, so a seed gives the same start on any device."""
    pipeline = _pipeline(model, build_scheduler(item.sampler, model))
    generator = torch.Generator().manual_seed(item.seed)
    common: dict[str, Any] = {
        "width": item.width,
        "height": item.height,
        "num_inference_steps": item.steps,
        "guidance_scale": item.scale,
        "generator": generator,
        "output_type": "latent",
    }
    with autocast():
        if model.family == "sdxl":
            from tuilora.engine.text import encode_sdxl

            positive, negative = (
                encode_sdxl(model.tokenizers, model.text_encoders, [caption], text.max_token_length)
                for caption in (item.prompt, item.negative)
            )
            result = pipeline(
                prompt_embeds=positive.states,
                pooled_prompt_embeds=positive.pooled,
                negative_prompt_embeds=negative.states,
                negative_pooled_prompt_embeds=negative.pooled,
                **common,
            )
        else:
            states = [
                encode(
                    model.text_encoders[0],
                    tokenize(model.tokenizers[0], [caption], text.max_token_length),
                    text.clip_skip,
                )
                for caption in (item.prompt, item.negative)
            ]
            result = pipeline(prompt_embeds=states[0], negative_prompt_embeds=states[1], **common)
    return decode(model, result.images)


def decode(model: BaseModel, latents: torch.Tensor) -> Any:
    """Latents to a PIL image in the VAE's own precision, outside any autocast: the trainer
    keeps SDXL's VAE in fp32 because it overflows to NaN in fp16 (DESIGN §6)."""
    from PIL import Image

    vae = model.vae
    pixels = vae.decode(latents.to(vae.device, vae.dtype) / model.latent_scaling).sample
    array = (pixels[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray((array * 255).round().astype("uint8"))


def autocast_for(device: torch.device, dtype: torch.dtype) -> Callable[[], Any]:
    """Mixed precision for a model whose parts are in ``dtype`` (a no-op for fp32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def image_name(output_name: str, *, epoch: int | None, step: int, index: int, seed: int) -> str:
    """sd-scripts' sample names: NAME_e000001_00_<time>_<seed>.png, or NAME_000120_... ."""
    counter = f"e{epoch:06d}" if epoch is not None else f"{step:06d}"
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime())
    return f"{output_name}_{counter}_{index:02d}_{stamp}_{seed}.png"


def save_png(image: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, buffer.getvalue(), overwrite=True)


class TrainingSampler:
    """Samples during training when sd-scripts would, on the main process only."""

    def __init__(
        self,
        config: TrainingConfig,
        run: RunDir,
        model: BaseModel,
        modules: Sequence[nn.Module],
        *,
        emit: Callable[..., None],
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
        main: bool = True,
    ) -> None:
        self.config = config
        self.run = run
        self.model = model
        self.modules = list(modules)
        self.emit = emit
        self.autocast = autocast
        self.main = main
        self.prompts: list[SamplePrompt] = []
        every = config.sample_every_n_epochs or config.sample_every_n_steps
        if every and config.sample_prompts:
            check_sampler(config.sample_sampler, "sample_sampler")
            self.prompts = load_prompts(config.sample_prompts)
            for prompt in self.prompts:
                if prompt.sampler:
                    check_sampler(prompt.sampler, f"{prompt.origin}: --ss")
        elif every:
            emit(
                "warning",
                id="no-sample-prompts",
                message="sample_every_n_epochs/steps is set but sample_prompts is not: no"
                " samples will be made (give a prompt file, one prompt per line)",
            )
        elif config.sample_prompts:
            emit(
                "warning",
                id="no-sample-schedule",
                message="sample_prompts is set but neither sample_every_n_epochs nor"
                " sample_every_n_steps: no samples will be made",
            )
        for prompt in self.prompts:
            if prompt.ignored:
                emit(
                    "warning",
                    id="sample-options-ignored",
                    message=f"{prompt.origin}: {', '.join(prompt.ignored)} only apply to other"
                    " model families (ignored)",
                )

    @classmethod
    def for_trainer(
        cls, config: TrainingConfig, run: RunDir, built: Any, accelerator: Any, emit: Any
    ) -> TrainingSampler:
        """The sampler of a ``Trainer``: its models, network and mixed precision."""
        network = accelerator.unwrap_model(built.network)
        modules = [built.model.unet, *built.model.text_encoders, network]
        return cls(
            config,
            run,
            built.model,
            modules,
            emit=emit,
            autocast=accelerator.autocast,
            main=accelerator.is_main_process,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.prompts) and self.main

    def after_step(self, step: int, epoch: int) -> None:
        """sd-scripts samples by steps only when no epoch interval is set."""
        every = self.config.sample_every_n_steps
        if self.enabled and not self.config.sample_every_n_epochs and every and step % every == 0:
            self.sample(epoch=epoch, step=step, by_epoch=False)

    def after_epoch(self, epoch: int, step: int) -> None:
        every = self.config.sample_every_n_epochs
        if self.enabled and every and epoch % every == 0:
            self.sample(epoch=epoch, step=step, by_epoch=True)

    def sample(self, *, epoch: int, step: int, by_epoch: bool) -> list[Path]:
        default_size = self.config.resolution_wh()
        paths: list[Path] = []
        seeds: list[int] = []
        try:
            with inference_mode(self.modules):
                for prompt in self.prompts:
                    item = resolve(
                        prompt, default_size=default_size, sampler=self.config.sample_sampler
                    )
                    image = generate(
                        self.model, item, TextSettings.of(self.config), autocast=self.autocast
                    )
                    name = image_name(
                        self.run.name,
                        epoch=epoch if by_epoch else None,
                        step=step,
                        index=prompt.index,
                        seed=item.seed,
                    )
                    paths.append(save_png(image, self.run.samples / name))
                    seeds.append(item.seed)
        except Exception as exc:  # noqa: BLE001 - a failed sample must not end the training
            log.exception("sampling failed")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.emit(
                "warning",
                id="sample-failed",
                message=f"sampling at step {step} failed ({type(exc).__name__}: {exc});"
                " training goes on",
            )
        if paths:
            self.emit("sample", epoch=epoch, step=step, images=[str(p) for p in paths], seeds=seeds)
        return paths
