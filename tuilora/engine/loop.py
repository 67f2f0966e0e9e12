"""The training loop, top to bottom: build, (resume), step through epochs, save, report.

``Trainer.run()`` returns the end status (finished, stopped, diverged, oom). Every event goes
to ``events.jsonl`` (DESIGN §7) and TensorBoard; only the main process writes files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from tuilora.config import TrainingConfig
from tuilora.engine import build, data, distributed, latent_cache, metadata, optim
from tuilora.engine import loss as losses
from tuilora.engine.build import Built
from tuilora.engine.captions import CaptionStep, process_caption
from tuilora.engine.progress import Progress
from tuilora.engine.sample import TrainingSampler
from tuilora.engine.save import save_lora
from tuilora.engine.sdxl import unet_kwargs
from tuilora.engine.state import Counters, LoadedState, StateInterval, load_state, save_state
from tuilora.engine.text import check_text_cache
from tuilora.errors import UserError
from tuilora.runs.events import EventWriter, iter_events
from tuilora.runs.phases import PhaseReporter
from tuilora.runs.rundir import RunDir, written_loras

log = logging.getLogger("tuilora.train")

DIVERGED_ADVICE = (
    "The loss became NaN/inf. Likely causes: a learning rate far too high (pure noise output"
    " means divide it by 8 or more, G-LR-UNET), or the fp16 VAE of SDXL overflowing (use"
    " bf16 or no_half_vae). The last good snapshot is kept."
)
OOM_ADVICE = (
    "Out of GPU memory. Try: train_batch_size 1, gradient_checkpointing on, AdamW8bit or"
    " AdaFactor instead of an adaptive optimizer, cache_latents on, or a lower resolution."
)
EMA_SMOOTHING = 0.1
#: The losses of this many steps are read from the device at once (one host sync), and
#: sooner before anything that saves, samples, stops or ends the run, so a NaN never
#: reaches a file. Reading every step would stall the CPU until the GPU catches up.
LOSS_READ_EVERY = 8


def step_generator(seed: int, step: int) -> torch.Generator:
    """The step's own random stream: a straight run and a resumed one draw the same numbers."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))


def seed_global_rng(seed: int, stream: int) -> None:
    """Seed torch's global RNG (CPU and CUDA) for one step: dropout in the network (neuron,
    rank and module dropout, LyCORIS' too) draws from it, so a resumed run drops exactly
    what a straight one would. Salted so it never repeats the step generator's numbers."""
    torch.manual_seed(((seed * 1_000_003 + stream) * 7919 + 104_729) % (2**63))


@dataclass
class PendingStep:
    """A step done whose loss is still on the device."""

    step: int
    loss: torch.Tensor
    seconds: float
    fields: dict[str, Any]


class Trainer:
    def __init__(
        self,
        config: TrainingConfig,
        run: RunDir,
        events: EventWriter,
        *,
        resume: bool = False,
        allow_pickle: bool = False,
        progress: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run
        self.events = events
        self.resume = resume
        self.allow_pickle = allow_pickle
        self.show_progress = progress
        self.stop_requested = False
        #: ``tuilora train``'s own SIGINT/SIGTERM flag (installed before the engine loads);
        #: without one (tests, benchmarks) the trainer installs its handlers in ``run``.
        self.should_stop = should_stop
        if config.seed is None:
            # sd-scripts draws a seed when none is given; it is kept in the config, so the
            # metadata's ss_seed records it (tuilora train writes it into config.toml first).
            config.seed = random.randint(0, 2**32)
        self.seed = config.seed
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        # accelerate keeps the first run's precision for the whole process; a second run in
        # the same process (tests, a future in-process UI) must start from a clean state.
        AcceleratorState._reset_state()
        # Accumulation is done by the loop itself (one optimizer step per group of batches);
        # cpu=True on a machine without CUDA lets `accelerate launch` run gloo processes.
        self.accelerator = Accelerator(
            mixed_precision=self._mixed_precision(),
            cpu=not torch.cuda.is_available(),
        )
        self.device = self.accelerator.device
        self.main = self.accelerator.is_main_process
        self.tb: Any = None
        self._scaled_keys: tuple[int, float] = (0, 0.0)
        # Phases before step 1 (DESIGN §7). A stop there ends the run at once — with one
        # process; several agree on a stop only after a step (distributed.any_across).
        single = self.accelerator.num_processes == 1
        self.phases = PhaseReporter(self._emit, self._stop_now if single else lambda: False)

    # -- setup -------------------------------------------------------------------------
    def _mixed_precision(self) -> str:
        wanted = self.config.mixed_precision
        if wanted == "fp16" and not torch.cuda.is_available():
            # fp16 autocast needs a GPU; the demo and tests run anywhere (DESIGN §6).
            self._cpu_notice = "fp16 mixed precision needs a GPU: training in fp32 on the CPU"
            return "no"
        self._cpu_notice = ""
        return wanted

    def _emit(self, type_: str, **fields: Any) -> None:
        if self.main:
            self.events.emit(type_, **fields)

    def build(self) -> Built:
        """The run's pieces, step by step (each step is in ``build.py``)."""
        config = self.config
        torch.manual_seed(self.seed)
        self.phases.begin("loading the model")
        model, precision = build.load_model(
            config, self.device, self.accelerator.mixed_precision, allow_pickle=self.allow_pickle
        )
        train_unet, train_te = build.parts_to_train(config)
        check_text_cache(config, train_te)
        build.merge_base_weights(config, model, allow_pickle=self.allow_pickle)
        self.phases.begin("preparing the network")
        network = build.make_network(
            config,
            model,
            self.device,
            build.network_dtype(config, precision.weights),
            train_unet=train_unet,
            train_text_encoder=train_te,
            allow_pickle=self.allow_pickle,
        )
        build.set_training_mode(
            model, gradient_checkpointing=config.gradient_checkpointing, train_te=train_te
        )
        self.phases.begin("reading the dataset")
        items = build.prepare_items(
            config,
            model,
            self.device,
            precision.vae,
            latent_cache.cache_dir(),
            phases=self.phases,
        )
        plan = build.plan_steps(config, items, self.seed, self.accelerator.num_processes)
        optimizer, scheduler = build.make_optimizer(
            config,
            network,
            self.device,
            plan.total_steps,
            train_unet=train_unet,
            train_text_encoder=train_te,
        )
        notices = [("cpu-precision", self._cpu_notice)] if self._cpu_notice else []
        if config.full_fp16 and precision.weights == torch.float16:
            _allow_fp16_gradients(self.accelerator)
        return Built(
            model,
            network,
            items,
            self.accelerator.prepare(optimizer),
            scheduler,
            plan.steps_per_epoch,
            plan.total_steps,
            plan.epochs,
            train_unet,
            train_te,
            precision.weights,
            notices + build.model_notices(config, model, precision),
            text=build.make_text_encoding(config, model),
            schedule=build.training_schedule(config, model),
        )

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> str:
        built = self.build()
        counters = Counters(session_id=random.randint(0, 2**31), started_at=time.time())
        if self.resume:
            self.phases.begin("restoring the saved state")
            counters = self._restore(built, load_state(self.run_dir.state))
        facts = metadata.RunFacts(
            family=built.model.family,
            v_prediction=built.model.v_prediction,
            num_batches_per_epoch=built.steps_per_epoch,
            num_epochs=built.epochs,
            max_train_steps=built.total_steps,
            total_batch_size=self.config.train_batch_size
            * self.accelerator.num_processes
            * self.config.gradient_accumulation_steps,
            session_id=counters.session_id,
            started_at=counters.started_at,
            optimizer_class=metadata.class_path(built.optimizer),
        )
        self.facts = facts
        self.training_metadata = metadata.training_metadata(self.config, built.items, facts)
        self.save_every_n_epochs = epoch_interval(self.config, built.epochs)
        self._open_tensorboard()
        self._emit(
            "start",
            config=self.config.to_dict(),
            total_steps=built.total_steps,
            epochs=built.epochs,
            steps_per_epoch=built.steps_per_epoch,
            device=str(self.device),
            versions=_versions(),
            resumed_from_step=counters.step,
            images=len(built.items),
        )
        for note in built.model.notes:  # the model file against the config (v-pred)
            self._emit("warning", message=note, id="model-file")
        for notice_id, notice in built.notices:
            # fp32 on a CPU: nothing to fix, only to know; the rest are sd-scripts' warnings.
            kind = "info" if notice_id == "cpu-precision" else "warning"
            self._emit(kind, message=notice, id=notice_id)
        self.sampler = TrainingSampler.for_trainer(
            self.config, self.run_dir, built, self.accelerator, self._emit
        )
        progress = Progress(
            built.total_steps, counters.step, enabled=self.show_progress and self.main
        )
        previous = self._install_signals() if self.should_stop is None else {}
        self.snapshots_written = self._snapshots_so_far()
        self.state_interval = StateInterval(self.config.save_state_every_n_minutes)
        try:
            status = self._epochs(built, counters, progress)
        except torch.OutOfMemoryError:
            status = "oom"
            self._emit("error", message=OOM_ADVICE, id="oom")
            self._emit("end", status="oom", step=counters.step, final=None, message=OOM_ADVICE)
        finally:
            progress.close()
            self._restore_signals(previous)
            if self.tb is not None:
                self.tb.close()
        return status

    def _epochs(self, built: Built, counters: Counters, progress: Progress) -> str:
        config = self.config
        last_times: list[float] = []
        # The first step of a session is reported at once: the monitor (and the user) see
        # training start without waiting for a group.
        first = True
        while counters.step < built.total_steps:
            epoch = counters.epoch
            batches = data.epoch_batches(
                built.items, config.train_batch_size, self.seed, epoch, config.flip_aug
            )
            # This process's share, in groups of gradient_accumulation_steps per update.
            mine = distributed.shard(
                batches, self.accelerator.process_index, self.accelerator.num_processes
            )
            accumulate = config.gradient_accumulation_steps
            groups = [mine[i : i + accumulate] for i in range(0, len(mine), accumulate)]
            epoch_losses: list[float] = []
            pending: list[PendingStep] = []
            for index in range(counters.batch_in_epoch, len(groups)):
                started = time.perf_counter()
                loss = self._update(built, groups[index], counters.step, epoch)
                counters.step += 1
                counters.batch_in_epoch = index + 1
                pending.append(
                    PendingStep(
                        counters.step, loss, time.perf_counter() - started, self._step_fields(built)
                    )
                )
                stop = distributed.any_across(self.accelerator, self._stop_now())
                # save_state_every_n_minutes: a kill loses at most that much training. The
                # losses are read first, so a state never holds a step whose loss was NaN.
                save_state = self.main and self.state_interval.due()
                due = (
                    stop
                    or save_state
                    or first
                    or len(pending) >= LOSS_READ_EVERY
                    or index == len(groups) - 1
                    or counters.step >= built.total_steps
                    or self._saves_or_samples_at(counters.step)
                )
                if due:
                    bad = self._read_losses(
                        built, counters, epoch, pending, epoch_losses, last_times, progress
                    )
                    pending.clear()
                    first = False
                    if bad is not None:
                        counters.step = bad - 1  # the steps before the first bad loss
                        return self._diverged(counters, math.nan)
                if stop:
                    return self._stopped(built, counters)
                self.sampler.after_step(counters.step, epoch + 1)
                self._step_snapshot(built, counters)
                if counters.step >= built.total_steps:
                    break
                if save_state:
                    self._save_state(built, counters)
            counters.epoch += 1
            counters.batch_in_epoch = 0
            snapshot = None
            finished = counters.step >= built.total_steps
            every = self.save_every_n_epochs
            if not finished and every and counters.epoch % every == 0:
                snapshot = self._save(built, self.run_dir.snapshot(counters.epoch), counters)
                self._prune_epoch_snapshots(snapshot)
            if config.save_state and not finished and self.main:
                self._save_state(built, counters)
            mean = sum(epoch_losses) / len(epoch_losses) if epoch_losses else None
            self._emit(
                "epoch_end",
                epoch=counters.epoch,
                step=counters.step,
                loss_mean=mean,
                snapshot=str(snapshot) if snapshot else None,
            )
            self.sampler.after_epoch(counters.epoch, counters.step)
        if (config.save_state or config.save_state_on_train_end) and self.main:
            self._save_state(built, counters)
        final = self._save(built, self.run_dir.final, counters)
        self._emit("end", status="finished", step=counters.step, final=str(final), message="")
        return "finished"

    def _update(
        self, built: Built, group: list[list[data.Entry]], step: int, epoch: int
    ) -> torch.Tensor:
        """One optimizer step over ``group`` (gradient_accumulation_steps batches); the mean
        loss over all processes, still on the device (read later by ``_read_losses``: a NaN
        step is taken, and the run ends diverged before anything is saved)."""
        total = torch.zeros((), device=self.device)
        for micro, batch in enumerate(group):
            total = total + self._step(built, batch, step, epoch, micro, len(group))
        mean = distributed.mean_across(self.accelerator, total / len(group))
        params = [p for g in built.optimizer.param_groups for p in g["params"]]
        distributed.average_gradients(self.accelerator, params)
        if self.config.max_grad_norm:
            self.accelerator.clip_grad_norm_(params, self.config.max_grad_norm)
        built.optimizer.step()
        built.scheduler.step()
        built.optimizer.zero_grad(set_to_none=True)
        if self.config.scale_weight_norms:
            self._scaled_keys = built.network.apply_max_norm(self.config.scale_weight_norms)
        return mean

    def _step(
        self,
        built: Built,
        batch: list[data.Entry],
        step: int,
        epoch: int,
        micro: int = 0,
        micro_count: int = 1,
    ) -> torch.Tensor:
        """Forward and backward of one batch (gradients accumulate); returns its loss (a
        float32 scalar on the device)."""
        config = self.config
        model = built.model
        # Each micro-batch of a step, on each process, draws from its own stream.
        stream = (step * 64 + micro) * 1024 + self.accelerator.process_index
        generator = step_generator(self.seed, stream)
        seed_global_rng(self.seed, stream)
        caption_rng = random.Random(f"{self.seed}:{stream}")
        items = [built.items[entry.item] for entry in batch]
        latents = self._latents(built, batch, items, generator, caption_rng)
        at = CaptionStep(epoch + 1, step, built.total_steps)  # sd-scripts counts epochs from 1
        captions = [process_caption(item.caption, config, caption_rng, at) for item in items]
        weights = torch.tensor(
            data.loss_weights(items, config.prior_loss_weight), device=self.device
        )
        assert built.text is not None
        # Under autocast as sd-scripts: LyCORIS modules in a half-precision encoder need it.
        with torch.set_grad_enabled(built.train_text_encoder), self.accelerator.autocast():
            text = built.text(captions)
        assert built.schedule is not None
        scheduler = built.schedule.scheduler
        noise = losses.sample_noise(latents, generator, config)
        timesteps = losses.sample_timesteps(
            len(items), scheduler, generator, self.device, config.min_timestep, config.max_timestep
        )
        noisy = losses.add_noise(scheduler, latents, noise, timesteps, generator, config)
        with self.accelerator.autocast():
            prediction = model.unet(
                noisy.to(built.weight_dtype),
                timesteps,
                text.states.to(built.weight_dtype),
                **unet_kwargs(text, items, batch, self.device, built.weight_dtype),
            ).sample
        target = losses.target_for(scheduler, latents, noise, timesteps, model.v_prediction)
        threshold = losses.huber_c(config, timesteps, scheduler)
        per_sample = losses.per_sample_loss(prediction, target, config.loss_type, threshold)
        per_sample = losses.weigh(
            per_sample * weights, config, built.schedule.snr, timesteps, model.v_prediction
        )
        loss = per_sample.mean()
        self.accelerator.backward(loss / micro_count)
        return loss.detach().float()

    def _latents(
        self,
        built: Built,
        batch: list[data.Entry],
        items: list[data.TrainItem],
        generator: torch.Generator,
        rng: random.Random,
    ) -> torch.Tensor:
        if all(item.latents is not None for item in items):
            stacked = [
                item.latents_flipped
                if entry.flip and item.latents_flipped is not None
                else item.latents
                for entry, item in zip(batch, items, strict=True)
            ]
            return torch.stack([t for t in stacked if t is not None]).to(self.device)
        augment = data.Augment.of(self.config)
        pixels = torch.stack(
            [
                data.load_pixels(item, flip=entry.flip, augment=augment, rng=rng)
                for entry, item in zip(batch, items, strict=True)
            ]
        )
        vae = built.model.vae
        with torch.no_grad():
            dist = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist
            sample = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator).to(
                dist.mean
            )
        return (sample * built.model.latent_scaling).float()

    # -- reporting, saving, stopping ---------------------------------------------------
    def _step_fields(self, built: Built) -> dict[str, Any]:
        """What a step event says besides its loss, taken when the step is done (learning
        rates, D, max-norm scaling and VRAM are host values: no sync)."""
        vram = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        fields: dict[str, Any] = {
            "lr": optim.current_lrs(built.optimizer, built.scheduler),
            "vram_gb": round(vram, 2) if vram is not None else None,
        }
        lr_d = optim.lr_times_d(built.optimizer)
        if lr_d is not None:
            fields["lr_d"] = lr_d
        if self.config.scale_weight_norms:
            fields["keys_scaled"], fields["max_norm"] = self._scaled_keys
        return fields

    def _saves_or_samples_at(self, step: int) -> bool:
        """Whether a step snapshot or a sample image comes after ``step`` (the losses are
        read first, so a NaN never reaches a file)."""
        config = self.config
        saves, samples = config.save_every_n_steps, config.sample_every_n_steps
        snapshot = saves is not None and saves > 0 and step % saves == 0
        by_steps = samples is not None and samples > 0 and not config.sample_every_n_epochs
        return snapshot or (by_steps and samples is not None and step % samples == 0)

    def _read_losses(
        self,
        built: Built,
        counters: Counters,
        epoch: int,
        pending: list[PendingStep],
        epoch_losses: list[float],
        times: list[float],
        progress: Progress,
    ) -> int | None:
        """Read the pending steps' losses in one host sync and report each step in order;
        the step of the first NaN/inf loss (nothing reported from it on), else None."""
        started = time.perf_counter()
        values = torch.stack([entry.loss for entry in pending]).tolist()
        # The wait for the device belongs to the steps read (their launch time is not all).
        waited = (time.perf_counter() - started) / len(pending)
        for entry, value in zip(pending, values, strict=True):
            entry.seconds += waited
            if not math.isfinite(value):
                return entry.step
            counters.loss_ema = (
                value
                if counters.loss_ema is None
                else (1 - EMA_SMOOTHING) * counters.loss_ema + EMA_SMOOTHING * value
            )
            epoch_losses.append(value)
            times.append(entry.seconds)
            del times[:-20]
            self._report_step(built, counters, entry, epoch, value, times, progress)
        return None

    def _report_step(
        self,
        built: Built,
        counters: Counters,
        entry: PendingStep,
        epoch: int,
        value: float,
        times: list[float],
        progress: Progress,
    ) -> None:
        mean_time = sum(times) / len(times)
        samples_per_s = self.config.train_batch_size / mean_time if mean_time else 0.0
        eta = mean_time * (built.total_steps - entry.step)
        fields: dict[str, Any] = {
            "step": entry.step,
            "epoch": epoch + 1,
            "loss": value,
            "loss_ema": counters.loss_ema,
            "lr": entry.fields["lr"],
            "samples_per_s": round(samples_per_s, 3),
            "vram_gb": entry.fields["vram_gb"],
            "eta_s": round(eta, 1),
        }
        fields.update((k, v) for k, v in entry.fields.items() if k not in fields)
        self._emit("step", **fields)
        lr_d = entry.fields.get("lr_d")
        if self.tb is not None:
            self.tb.add_scalar("loss/current", value, entry.step)
            self.tb.add_scalar("loss/ema", counters.loss_ema, entry.step)
            for name, lr in entry.fields["lr"].items():
                self.tb.add_scalar(f"lr/{name}", lr, entry.step)
            for name, ld in (lr_d or {}).items():
                self.tb.add_scalar(f"lr_d/{name}", ld, entry.step)
        progress.update(entry.step, epoch + 1, value, lr_d, samples_per_s, eta)

    def _save(self, built: Built, path: Any, counters: Counters) -> Any:
        if not self.main:
            return None
        meta = metadata.finish(
            self.training_metadata,
            self.config,
            self.facts,
            steps=counters.step,
            epoch=counters.epoch,
        )
        return save_lora(path, built.network.kohya_state_dict(), meta, self.config.save_precision)

    def _stop_now(self) -> bool:
        return self.stop_requested or (self.should_stop is not None and self.should_stop())

    def _snapshots_so_far(self) -> list[Path]:
        """The snapshots this run wrote (earlier sessions' from its events): the only ones
        ``save_last_n_epochs`` / ``save_last_n_steps`` may delete — never a same-named file
        of someone else's."""
        if not (self.main and self.resume):
            return []
        return written_loras(self.run_dir, iter_events(self.run_dir.events))

    def _prune_epoch_snapshots(self, snapshot: Path | None) -> None:
        """Keep the last ``save_last_n_epochs`` epoch snapshots (sd-scripts'
        ``get_remove_epoch_no`` removes the one ``every * keep`` epochs back: the same files
        when saves are regular), deleting only files this run wrote."""
        if snapshot is not None and snapshot not in self.snapshots_written:
            self.snapshots_written.append(snapshot)
        keep = self.config.save_last_n_epochs
        if not (keep and self.main):
            return
        epochs = [p for p in self.snapshots_written if p in self.run_dir.snapshots()]
        for old in epochs[:-keep]:
            old.unlink(missing_ok=True)
            self.snapshots_written.remove(old)

    def _step_snapshot(self, built: Built, counters: Counters) -> None:
        """save_every_n_steps: ``NAME-step00000123`` every N steps (with the state when
        save_state), and save_last_n_steps removes those that fell out of the window
        (sd-scripts' ``get_remove_step_no``), only among the files this run wrote."""
        every = self.config.save_every_n_steps
        if not every or counters.step % every or not self.main:
            return
        path = self._save(built, self.run_dir.step_snapshot(counters.step), counters)
        if path is not None:
            # The event records the file as the run's own (``runs.rundir.written_loras``).
            self._emit(
                "info", message=f"saved {Path(path).name}", id="step-snapshot", snapshot=str(path)
            )
            self.snapshots_written.append(Path(path))
        if self.config.save_state:
            self._save_state(built, counters)
        keep = self.config.save_last_n_steps
        if keep:
            old = counters.step - keep - 1
            old -= old % every
            for written in list(self.snapshots_written):
                step = self.run_dir.step_of(written)
                if step is not None and step <= old:
                    written.unlink(missing_ok=True)
                    self.snapshots_written.remove(written)

    def _save_state(self, built: Built, counters: Counters) -> None:
        counters.elapsed_s = round(self.events.elapsed(), 1)
        save_state(
            self.run_dir.state,
            built.network.state_dict(),
            built.optimizer,
            built.scheduler,
            counters,
        )
        self.state_interval.saved()

    def _restore(self, built: Built, state: LoadedState) -> Counters:
        try:
            built.network.load_state_dict(state.network)
            built.optimizer.load_state_dict(state.optimizer)
            built.scheduler.load_state_dict(state.scheduler)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(
                f"{self.run_dir.state}: the saved state does not fit this run's network and"
                f" optimizer ({reason[:160]}); was its config.toml changed?"
            ) from None
        return state.counters

    def _diverged(self, counters: Counters, value: float) -> str:
        self._emit("error", message=DIVERGED_ADVICE, id="diverged")
        self._emit(
            "end", status="diverged", step=counters.step, final=None, message=DIVERGED_ADVICE
        )
        return "diverged"

    def _stopped(self, built: Built, counters: Counters) -> str:
        current = None
        if self.main:
            self._save_state(built, counters)
            current = self._save(built, self.run_dir.step_snapshot(counters.step), counters)
        message = (
            f"stopped at step {counters.step}; resume with:"
            f" tuilora train --resume {self.run_dir.root}"
        )
        self._emit(
            "end",
            status="stopped",
            step=counters.step,
            final=str(current) if current else None,
            message=message,
        )
        return "stopped"

    def _open_tensorboard(self) -> None:
        if not self.main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed: no TensorBoard logs")
            return
        self.tb = SummaryWriter(str(self.run_dir.tensorboard))

    def _install_signals(self) -> dict[int, Any]:
        def request_stop(signum: int, frame: FrameType | None) -> None:
            self.stop_requested = True

        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Outside the main thread (tests) signals cannot be caught; stop_requested works.
            with contextlib.suppress(ValueError):
                previous[sig] = signal.signal(sig, request_stop)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _versions() -> dict[str, str]:
    import diffusers
    import transformers

    from tuilora import __version__

    return {
        "tuilora": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def epoch_interval(config: TrainingConfig, epochs: int) -> int | None:
    """save_every_n_epochs, or from save_n_epoch_ratio about that many snapshots in all
    (sd-scripts: ``floor(epochs / ratio) or 1``, which wins over save_every_n_epochs)."""
    if config.save_n_epoch_ratio:
        return math.floor(epochs / config.save_n_epoch_ratio) or 1
    return config.save_every_n_epochs


def _allow_fp16_gradients(accelerator: Any) -> None:
    """full_fp16: the LoRA's own weights are fp16, whose gradients PyTorch's GradScaler
    refuses to unscale; sd-scripts patches the scaler to allow it, and so does tuilora."""
    scaler = getattr(accelerator, "scaler", None)
    if scaler is None:
        return
    unscale = scaler._unscale_grads_

    def allow_fp16(optimizer: Any, inv_scale: Any, found_inf: Any, allow_fp16: bool) -> Any:
        return unscale(optimizer, inv_scale, found_inf, True)

    scaler._unscale_grads_ = allow_fp16
