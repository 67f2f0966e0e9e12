"""Latents cached on disk across runs, so a second run on the same images starts in seconds.

``cache_latents`` encodes every distinct image once (and its mirror with ``flip_aug``) and
keeps the latents in memory for the run, as sd-scripts' ``cache_latents`` does. With
``cache_latents_to_disk`` each view is also stored, as sd-scripts stores its ``.npz`` files
for later runs, but in the user's cache folder (``$XDG_CACHE_HOME/tuilora/latents``, by
default ``~/.cache/tuilora/latents``), never beside the images (the dataset folder is the
user's), under a key made of everything the latents depend on:

- the image's content (SHA-256 of the file's bytes: a renamed or copied image is a hit, an
  edited one is a miss, whatever its timestamps say),
- the size it is resized to, its bucket (the centre crop follows from the two), whether the
  view is mirrored, and the pixel pipeline's own settings (``transform``, e.g. the resize
  interpolation),
- the VAE: a SHA-256 of its weights, dtype and scaling factor (another model, another VAE
  file, or fp16 against fp32 encoding all miss).

An entry is a small safetensors file written to a temporary name and renamed into place
(a crash leaves the old entry or none). Nothing read back is trusted: the key recorded in the
entry must equal the one asked for, the shape must be the bucket's latent shape, and every
value must be finite; anything else (a torn or foreign file) is encoded again and rewritten.
A cache folder that cannot be written costs the reuse, never the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

log = logging.getLogger("tuilora.train")

#: Bumped when what an entry holds changes meaning (e.g. a sample instead of the mode).
FORMAT = 1
#: Images decoded ahead of the VAE (PIL releases the GIL while decoding and resizing).
PREFETCH = 4


class CachedItem(Protocol):
    """What the cache needs of a training item (``data.TrainItem`` has it)."""

    image: Path
    bucket: tuple[int, int]
    resized: tuple[int, int]
    latents: torch.Tensor | None
    latents_flipped: torch.Tensor | None


def cache_dir() -> Path:
    """The user's latent cache: ``$XDG_CACHE_HOME/tuilora/latents``; an unset or relative
    XDG_CACHE_HOME means ``~/.cache`` (the XDG base directory rules, as the dataset's probe
    cache reads them)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = str(Path.home() / ".cache")
    return Path(base) / "tuilora" / "latents"


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def vae_fingerprint(vae: Any, scaling: float) -> str:
    """SHA-256 of the VAE's weights (names, dtypes, shapes, bytes) and its scaling factor."""
    digest = hashlib.sha256(f"scaling={scaling!r}".encode())
    for name, tensor in sorted(vae.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"|{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


@dataclass(frozen=True)
class LatentKey:
    """Everything one cached view depends on."""

    image_sha256: str
    bucket: tuple[int, int]
    resized: tuple[int, int]
    flipped: bool
    vae: str
    transform: tuple[tuple[str, str], ...] = ()
    format: int = FORMAT

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def file_name(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest() + ".safetensors"


@dataclass
class LatentStore:
    """A folder of cached latents; ``hits`` / ``misses`` / ``rejected`` count this run's
    look-ups (rejected: an entry was there but failed the checks and was recomputed)."""

    root: Path
    hits: int = 0
    misses: int = 0
    rejected: int = 0
    writable: bool = True
    _warned: bool = field(default=False, repr=False)

    def path(self, key: LatentKey) -> Path:
        name = key.file_name()
        return self.root / f"v{FORMAT}" / name[:2] / name

    def load(self, key: LatentKey, shape: tuple[int, ...]) -> torch.Tensor | None:
        """The stored latents of ``key`` if the entry is sound, else None."""
        path = self.path(key)
        if not path.is_file():
            self.misses += 1
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                recorded = (handle.metadata() or {}).get("key")
                tensor = handle.get_tensor("latents")
        except Exception:  # a torn, truncated or foreign file: recompute it
            tensor, recorded = None, None
        sound = (
            tensor is not None
            and recorded == key.text()
            and tuple(tensor.shape) == shape
            and tensor.is_floating_point()
            and bool(torch.isfinite(tensor).all())
        )
        if not sound:
            self.rejected += 1
            self.misses += 1
            return None
        self.hits += 1
        return tensor

    def save(self, key: LatentKey, latents: torch.Tensor) -> None:
        """Write the entry atomically (temporary file, rename); failures only warn."""
        if not self.writable:
            return
        from safetensors.torch import save

        path = self.path(key)
        payload = save({"latents": latents.contiguous()}, metadata={"key": key.text()})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                # No fsync: an entry torn by a power cut fails the checks and is recomputed.
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.writable = False
            if not self._warned:
                self._warned = True
                log.warning("latent cache %s: cannot write (%s); not reused", self.root, exc)


def latent_shape(vae: Any, bucket: tuple[int, int]) -> tuple[int, int, int]:
    """(channels, height, width) of a bucket's latents, from the VAE's own config."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    width, height = bucket
    return int(vae.config.latent_channels), height // factor, width // factor


@torch.no_grad()
def cache_latents(
    items: Sequence[CachedItem],
    vae: Any,
    scaling: float,
    device: torch.device,
    *,
    flip: bool,
    dtype: torch.dtype,
    load_view: Callable[[Any, bool], torch.Tensor],
    store: LatentStore | None,
    transform: dict[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Set ``latents`` (and ``latents_flipped`` with ``flip``) on every item: from ``store``
    when it holds them, else encoded with the VAE's mode (deterministic) and stored.

    ``load_view(item, flipped)`` gives the (3, H, W) pixels in [-1, 1]; ``progress(done)``
    hears of each distinct image finished."""
    first: dict[Path, CachedItem] = {}
    for item in items:
        first.setdefault(item.image, item)
    distinct = list(first.values())
    views = (False, True) if flip else (False,)
    fingerprint = vae_fingerprint(vae, scaling) if store is not None else ""
    steps = tuple(sorted((transform or {}).items()))
    # (item, its keys (one a view), the views found in the store: None where a view must be encoded)
    missing: list[tuple[CachedItem, list[LatentKey], list[torch.Tensor | None]]] = []
    # A copy of an image already waiting to be encoded (same content and key) shares it.
    waiting: dict[tuple[LatentKey, ...], CachedItem] = {}
    copies: list[tuple[CachedItem, CachedItem]] = []
    done = 0
    for item in distinct:
        keys: list[LatentKey] = []  # none without a store
        found: list[torch.Tensor | None] = [None] * len(views)
        if store is not None:
            content = file_sha256(item.image)
            keys = [
                LatentKey(content, item.bucket, item.resized, mirrored, fingerprint, steps)
                for mirrored in views
            ]
            twin = waiting.get(tuple(keys))
            if twin is not None:
                copies.append((item, twin))
                continue
            shape = latent_shape(vae, item.bucket)
            found = [store.load(key, shape) for key in keys]
        if all(tensor is not None for tensor in found):
            _assign(item, [t for t in found if t is not None])
            done += 1
            if progress is not None:
                progress(done)
        else:
            missing.append((item, keys, found))
            if store is not None:
                waiting[tuple(keys)] = item
    wanted = [
        (item, tuple(view for view, got in zip(views, found, strict=True) if got is None))
        for item, _, found in missing
    ]
    for (item, keys, found), pixels in zip(missing, _prefetched(wanted, load_view), strict=True):
        encoded = iter(vae.encode(pixels.to(device, dtype)).latent_dist.mode().cpu() * scaling)
        latents = [got if got is not None else next(encoded) for got in found]
        _assign(item, latents)
        if store is not None:
            for key, got, tensor in zip(keys, found, latents, strict=True):
                if got is None:
                    store.save(key, tensor)
        done += 1
        if progress is not None:
            progress(done)
    for item, twin in copies:
        item.latents, item.latents_flipped = twin.latents, twin.latents_flipped
        done += 1
        if progress is not None:
            progress(done)
    for item in items:  # repeats of an image share its tensors
        source = first[item.image]
        item.latents, item.latents_flipped = source.latents, source.latents_flipped


def _assign(item: CachedItem, views: list[torch.Tensor]) -> None:
    # Training reads float32 latents; an entry keeps the VAE's own dtype (exact either way).
    item.latents = views[0].float().contiguous()
    item.latents_flipped = views[1].float().contiguous() if len(views) > 1 else None


def _prefetched(
    wanted: list[tuple[CachedItem, tuple[bool, ...]]],
    load_view: Callable[[Any, bool], torch.Tensor],
) -> Iterator[torch.Tensor]:
    """The pixels of each image's missing views (plain, mirrored), decoded by a few threads
    ahead of the VAE."""

    def load(job: tuple[CachedItem, tuple[bool, ...]]) -> torch.Tensor:
        item, views = job
        return torch.stack([load_view(item, mirrored) for mirrored in views])

    if len(wanted) <= 1:
        for job in wanted:
            yield load(job)
        return
    workers = max(1, min(PREFETCH, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="tuilora-pixels") as pool:
        pending: list[Future[torch.Tensor]] = []
        upcoming = iter(wanted)
        for job in upcoming:
            pending.append(pool.submit(load, job))
            if len(pending) >= workers + 1:
                break
        while pending:
            ready = pending.pop(0).result()
            following = next(upcoming, None)
            if following is not None:
                pending.append(pool.submit(load, following))
            yield ready
