"""The on-disk latent cache: reused across runs, keyed by content, bucket, view and VAE;
written atomically; a bad entry is recomputed, never trusted."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from tuilora.engine import data, latent_cache
from tuilora.engine.latent_cache import LatentStore, cache_latents
from tuilora.engine.loop import Trainer
from tuilora.runs.events import EventWriter, read_events
from tuilora.runs.rundir import RunDir


class CountingVae:
    """The tiny model's VAE, counting the images it encodes."""

    def __init__(self, vae: Any) -> None:
        self.vae = vae
        self.encoded = 0
        self.config = vae.config

    def encode(self, pixels: torch.Tensor) -> Any:
        self.encoded += pixels.shape[0]
        return self.vae.encode(pixels)

    def state_dict(self) -> Any:
        return self.vae.state_dict()


@pytest.fixture(scope="module")
def vae(tiny_model: Path) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(str(tiny_model / "vae")).eval()


@pytest.fixture()
def images(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for index, colour in enumerate(("red", "green", "blue")):
        path = folder / f"{index}.png"
        image = Image.new("RGB", (48 + 16 * index, 64), colour)
        image.paste("white", (0, 0, 12, 64))  # not mirror-symmetric
        image.save(path)
        paths.append(path)
    return paths


def still_view(item: data.TrainItem, flip: bool) -> torch.Tensor:
    """The pixels caching encodes: resized and centre-cropped, no random crop or colour."""
    return data.load_pixels(item, flip=flip, augment=data.Augment(), rng=random.Random(0))


def items_for(paths: list[Path], bucket: tuple[int, int] = (32, 32)) -> list[data.TrainItem]:
    return [data.TrainItem(path, "c", False, bucket, bucket, (48, 64)) for path in paths]


def run_cache(
    items: list[data.TrainItem],
    vae: Any,
    store: LatentStore | None,
    *,
    flip: bool = False,
    **kw: Any,
) -> CountingVae:
    counting = CountingVae(vae)
    cache_latents(
        items,
        counting,
        0.5,
        torch.device("cpu"),
        flip=flip,
        dtype=torch.float32,
        load_view=still_view,
        store=store,
        **kw,
    )
    return counting


def test_second_run_reads_every_latent_from_disk_unchanged(
    vae: Any, images: list[Path], tmp_path: Path
) -> None:
    first_items = items_for(images)
    first = run_cache(first_items, vae, LatentStore(tmp_path / "cache"), flip=True)
    assert first.encoded == 6  # three images, each plain and mirrored
    store = LatentStore(tmp_path / "cache")
    again = items_for(images)
    second = run_cache(again, vae, store, flip=True)
    assert second.encoded == 0 and store.hits == 6 and store.misses == 0
    for old, new in zip(first_items, again, strict=True):
        assert old.latents is not None and new.latents is not None
        assert torch.equal(old.latents, new.latents)
        assert old.latents_flipped is not None and new.latents_flipped is not None
        assert torch.equal(old.latents_flipped, new.latents_flipped)
        assert not torch.equal(new.latents, new.latents_flipped)
    # in memory the latents are what training has always read: float32, the VAE's mode
    assert again[0].latents is not None and again[0].latents.dtype == torch.float32
    views = [still_view(again[0], mirrored) for mirrored in (False, True)]
    expected = (vae.encode(torch.stack(views)).latent_dist.mode() * 0.5)[0]
    assert torch.equal(again[0].latents, expected)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_repeats_and_copies_share_one_encoding(
    vae: Any, images: list[Path], tmp_path: Path
) -> None:
    copy = tmp_path / "images" / "copy-of-0.png"
    shutil.copy(images[0], copy)
    items = items_for([images[0], images[0], copy])  # a repeat and a renamed copy
    counting = run_cache(items, vae, LatentStore(tmp_path / "cache"))
    assert counting.encoded == 1  # the copy's content is already cached
    assert items[0].latents is items[1].latents
    assert items[2].latents is not None and torch.equal(items[0].latents, items[2].latents)


def test_each_part_of_the_key_invalidates(vae: Any, images: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "cache"
    run_cache(items_for(images), vae, LatentStore(root))
    # plain views are reused when flip_aug is turned on; only the mirrors are new
    assert run_cache(items_for(images), vae, LatentStore(root), flip=True).encoded == 3
    # an edited image (same name, same size) misses; the others hit
    Image.new("RGB", (48, 64), "yellow").save(images[0])
    assert run_cache(items_for(images), vae, LatentStore(root)).encoded == 1
    # another bucket, another resize, another pixel pipeline setting
    assert run_cache(items_for(images, (64, 64)), vae, LatentStore(root)).encoded == 3
    resized = items_for(images)
    for item in resized:
        item.resized = (32, 40)
    assert run_cache(resized, vae, LatentStore(root)).encoded == 3
    transformed = run_cache(items_for(images), vae, LatentStore(root), transform={"x": "y"})
    assert transformed.encoded == 3
    # another VAE (one weight changed) misses everything
    from diffusers import AutoencoderKL

    other = AutoencoderKL.from_config(vae.config).eval()
    other.load_state_dict(vae.state_dict())
    with torch.no_grad():
        other.encoder.conv_in.bias[0] += 0.25
    assert run_cache(items_for(images), other, LatentStore(root)).encoded == 3
    # and the same VAE in another dtype is another VAE
    half = AutoencoderKL.from_config(vae.config).eval().to(torch.bfloat16)
    half.load_state_dict(vae.state_dict())
    assert latent_cache.vae_fingerprint(half, 0.5) != latent_cache.vae_fingerprint(vae, 0.5)


def test_a_bad_entry_is_recomputed_and_rewritten(
    vae: Any, images: list[Path], tmp_path: Path
) -> None:
    root = tmp_path / "cache"
    good = items_for(images)
    run_cache(good, vae, LatentStore(root))
    entries = sorted(root.rglob("*.safetensors"))
    assert len(entries) == 3
    torn, garbage, foreign = entries
    torn.write_bytes(torn.read_bytes()[:-7])  # truncated
    garbage.write_bytes(b"\x00" * 40)
    # a sound safetensors file that holds another key's latents (e.g. a copied entry)
    foreign.write_bytes(entries_bytes())
    store = LatentStore(root)
    again = items_for(images)
    counting = run_cache(again, vae, store)
    assert counting.encoded == 3 and store.rejected == 3
    for old, new in zip(good, again, strict=True):
        assert old.latents is not None and new.latents is not None
        assert torch.equal(old.latents, new.latents)
    # rewritten: the next run trusts them again
    final = LatentStore(root)
    assert run_cache(items_for(images), vae, final).encoded == 0 and final.hits == 3


def entries_bytes() -> bytes:
    from safetensors.torch import save

    key = latent_cache.LatentKey("0" * 64, (32, 32), (32, 32), False, "vae")
    return save({"latents": torch.zeros(4, 16, 16)}, metadata={"key": key.text()})


def test_non_finite_or_misshapen_entries_are_not_trusted(
    vae: Any, images: list[Path], tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    root = tmp_path / "cache"
    store = LatentStore(root)
    fingerprint = latent_cache.vae_fingerprint(vae, 0.5)
    key = latent_cache.LatentKey(
        latent_cache.file_sha256(images[0]), (32, 32), (32, 32), False, fingerprint
    )
    shape = latent_cache.latent_shape(vae, (32, 32))
    path = store.path(key)
    path.parent.mkdir(parents=True)
    bad = torch.zeros(shape)
    bad[0, 0, 0] = float("nan")
    save_file({"latents": bad}, str(path), metadata={"key": key.text()})
    assert store.load(key, shape) is None
    save_file({"latents": torch.zeros(4, 8, 8)}, str(path), metadata={"key": key.text()})
    assert store.load(key, shape) is None
    save_file({"latents": torch.ones(shape)}, str(path), metadata={"key": key.text()})
    loaded = store.load(key, shape)
    assert loaded is not None and torch.equal(loaded, torch.ones(shape))
    assert store.rejected == 2 and store.hits == 1


def test_an_unwritable_cache_costs_the_reuse_not_the_run(
    vae: Any, images: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    items = items_for(images)
    store = LatentStore(blocked / "latents")
    counting = run_cache(items, vae, store)
    assert counting.encoded == 3 and all(item.latents is not None for item in items)
    assert not store.writable
    assert sum("cannot write" in record.message for record in caplog.records) == 1


def test_progress_counts_distinct_images(vae: Any, images: list[Path], tmp_path: Path) -> None:
    seen: list[int] = []
    run_cache(items_for(images + images), vae, LatentStore(tmp_path / "c"), progress=seen.append)
    assert seen == [1, 2, 3]
    seen.clear()
    run_cache(items_for(images), vae, LatentStore(tmp_path / "c"), progress=seen.append)
    assert seen == [1, 2, 3]


def test_cache_folder_follows_xdg_cache_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert latent_cache.cache_dir() == tmp_path / "xdg" / "tuilora" / "latents"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert latent_cache.cache_dir() == tmp_path / "home" / ".cache" / "tuilora" / "latents"


@pytest.mark.slow
def test_a_second_run_trains_identically_without_encoding(
    make_config: Any, shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sd-scripts: cache_latents keeps latents in memory for the run; cache_latents_to_disk
    # also stores them for later runs (sd-scripts beside the images, tuilora in the cache).
    cache_home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    from diffusers import AutoencoderKL

    real_encode = AutoencoderKL.encode
    encoded: list[int] = []

    def counting(self: Any, pixels: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        encoded.append(pixels.shape[0])
        return real_encode(self, pixels, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "encode", counting)
    dataset_before = sorted((p, p.stat().st_mtime_ns) for p in shapes.rglob("*"))
    losses = []
    for name, to_disk in (("memory", False), ("first", True), ("second", True)):
        run = RunDir(tmp_path / name, "t")
        run.root.mkdir()
        config = make_config(
            tmp_path / name,
            max_train_epochs=None,
            max_train_steps=1,
            save_every_n_epochs=None,
            flip_aug=True,
            cache_latents_to_disk=to_disk,
        )
        encoded.clear()
        with EventWriter(run.events) as events:
            assert Trainer(config, run, events, progress=False).run() == "finished"
        losses.append([e["loss"] for e in read_events(run.events) if e["type"] == "step"])
        if name == "memory":
            assert sum(encoded) == 12  # six images, plain and mirrored
            assert not cache_home.exists()  # memory only: nothing kept for later runs
        if name == "first":
            assert sum(encoded) == 12  # the memory-only run left nothing to reuse
            assert len(list(cache_home.rglob("*.safetensors"))) == 12
    assert encoded == []
    assert losses[0] == losses[1] == losses[2] and len(losses[0]) > 0
    assert sorted((p, p.stat().st_mtime_ns) for p in shapes.rglob("*")) == dataset_before
