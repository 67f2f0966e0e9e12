"""A per-dataset cache of image probes, so that a second check reads headers only.

One JSON file per scanned directory, in the user's cache folder
(``$XDG_CACHE_HOME/tuilora/dataset/``, by default ``~/.cache/tuilora/dataset/``), named by a
hash of the directory's real path. An entry is keyed by the image's path inside the
directory, its size and its modification time (nanoseconds): a file edited, replaced or
touched since is probed again. ``images.probe_image`` also checks that the file still opens
and shows the same header before it trusts an entry.

The cache is only ever an optimisation: a missing, unreadable, corrupt or foreign file is
treated as empty, a failed write is ignored, and nothing in it can make a scan fail.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any, Final

from tuilora.dataset.images import ImageProbe
from tuilora.dataset.thumbs import DRAFT_SIDE, HASH_SIDE, THUMB_BYTES

# Bumped whenever a probe field or the thumbnail recipe changes: older files are ignored.
VERSION: Final = f"tuilora.dataset-probes/1 thumb={HASH_SIDE}x{HASH_SIDE}rgb draft={DRAFT_SIDE}"
# A cache file larger than this is not read (a hostile or runaway file must not cost
# memory); 10,000 images take about 5 MB.
MAX_FILE_BYTES: Final = 256 * 1024 * 1024


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/tuilora/dataset``; an unset or relative XDG_CACHE_HOME means
    ``~/.cache`` (the XDG base directory rules)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tuilora", "dataset")


def cache_file(root: str) -> str:
    real = os.path.realpath(root).encode("utf-8", "surrogateescape")
    return os.path.join(cache_dir(), hashlib.blake2b(real, digest_size=16).hexdigest() + ".json")


def _encode(probe: ImageProbe) -> list[Any]:
    failure = probe.failure
    return [
        probe.size_bytes,
        probe.mtime_ns,
        None if probe.digest is None else probe.digest.hex(),
        probe.width,
        probe.height,
        probe.format,
        probe.orientation,
        None if probe.dhash is None else format(probe.dhash, "x"),
        None if probe.thumb is None else base64.b64encode(probe.thumb).decode("ascii"),
        probe.pixels_checked,
        None if failure is None else failure[0],
        None if failure is None else failure[1],
    ]


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(value)
    return value


def _optional_str(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise TypeError(value)
    return value


def _decode(entry: Any) -> ImageProbe:
    """An entry back into a probe; ``ValueError``/``TypeError`` for anything malformed."""
    if not isinstance(entry, list) or len(entry) != 12:
        raise ValueError("not a probe entry")
    size, mtime, digest, width, height, fmt, orientation, hashed, thumb = entry[:9]
    pixels_checked, failure_id, failure_detail = entry[9:]
    if type(size) is not int or type(mtime) is not int or size < 0 or mtime <= 0:
        raise ValueError("bad key")
    if type(orientation) is not int or type(pixels_checked) is not bool:
        raise TypeError("bad field")
    thumb_bytes = None if thumb is None else base64.b64decode(_optional_str(thumb) or "")
    if thumb_bytes is not None and len(thumb_bytes) != THUMB_BYTES:
        raise ValueError("bad thumbnail")
    failure_id, failure_detail = _optional_str(failure_id), _optional_str(failure_detail)
    return ImageProbe(
        size_bytes=size,
        digest=None if digest is None else bytes.fromhex(_optional_str(digest) or ""),
        width=_optional_int(width),
        height=_optional_int(height),
        format=_optional_str(fmt),
        orientation=orientation,
        dhash=None if hashed is None else int(_optional_str(hashed) or "", 16),
        failure=None if failure_id is None else (failure_id, failure_detail or ""),
        mtime_ns=mtime,
        pixels_checked=pixels_checked,
        thumb=thumb_bytes,
    )


def load(root: str) -> dict[str, ImageProbe]:
    """The cached probes of ``root``'s images by path inside it; empty when there are none
    or the file cannot be used."""
    path = cache_file(root)
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
                return {}
            data = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    probes: dict[str, ImageProbe] = {}
    for name, entry in entries.items():
        with contextlib.suppress(ValueError, TypeError):
            probes[name] = _decode(entry)
    return probes


def save(root: str, probes: Mapping[str, ImageProbe]) -> None:
    """Replace the cache of ``root`` with ``probes`` (those with a usable key), atomically;
    entries of files no longer in the directory are dropped. Never raises."""
    entries = {name: _encode(probe) for name, probe in probes.items() if probe.mtime_ns > 0}
    text = json.dumps(
        {"version": VERSION, "root": os.path.realpath(root), "entries": entries},
        separators=(",", ":"),
    )
    target = cache_file(root)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except (OSError, UnicodeEncodeError):
        with contextlib.suppress(OSError):
            os.unlink(temporary)
