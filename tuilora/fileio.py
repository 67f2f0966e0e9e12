"""Atomic file writes: write a temporary file beside the target, fsync, rename.

A crash or Ctrl+C leaves either the old file or the new one, never half of one (DESIGN §6).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

from tuilora.errors import UserError

#: A write refused for lack of space: a full disk, a quota, a file-size limit (``ulimit -f``).
NO_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class NoSpaceError(UserError):
    """A write failed for lack of space; what was written before is intact."""


def write_failure(target: str | Path, exc: OSError) -> UserError:
    """One line for a failed write of ``target``: ``NoSpaceError`` when space ran out."""
    if exc.errno in NO_SPACE_ERRNOS:
        return NoSpaceError(
            f"{target}: no space to write it ({exc.strerror}): the disk is full or a"
            " size limit was reached"
        )
    return UserError(f"{target}: cannot write ({exc.strerror})")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | Path, *, overwrite: bool = False) -> Path:
    """The checks ``write_atomic`` makes, for a command to run before it prints anything:
    an existing file without ``overwrite``, a directory, a missing folder."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists; pass --force to overwrite it")
    if target.is_dir():
        raise UserError(f"{target} is a directory; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{parent} does not exist; create the folder first")
    return target


def write_atomic(path: str | Path, data: str | bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; refuse to replace a file unless ``overwrite``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_output(path, overwrite=overwrite) as handle:
        handle.write(payload)
    return Path(path)


@contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """A binary handle for writing ``path`` in pieces (a multi-GB model cannot be held in
    memory first): a temporary file beside the target, fsynced and renamed over it only when
    the block ends without an error, removed otherwise."""
    target = check_writable(path, overwrite=overwrite)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise write_failure(target, exc) from None
        raise UserError(f"{target}: cannot write here ({exc.strerror})") from None
    try:
        # mkstemp makes the file private (0600); the result gets the usual mode, so another
        # user's sd-webui / ComfyUI can read a LoRA as it could one written by sd-scripts.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise write_failure(target, exc) from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
