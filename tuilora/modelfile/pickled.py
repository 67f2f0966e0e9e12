"""Tensor names of a PyTorch ``.ckpt`` without unpickling it.

A ``torch.save`` file is a zip whose ``data.pkl`` is a pickle program. Running it is what can
execute code, so it is never run here: ``pickletools.genops`` only parses the opcodes, and
the state dict's keys are the strings the program pushes. That is enough to tell SD1.x from
SD2.x from SDXL (their text encoders live under different prefixes) before the user has
agreed to ``--allow-pickle``. Old non-zip files yield nothing (the family is then unknown).
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

#: The opcodes that push a str (the state dict's keys among them).
_STRING_OPCODES = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
#: Only names that look like weights: dotted paths (``model.diffusion_model.out.2.weight``).
_MAX_NAME = 300


def pickled_tensor_names(path: str | Path) -> set[str] | None:
    """The dotted strings of ``path``'s ``data.pkl``, or None when it is not a zip pickle."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            if member is None:
                return None
            program = archive.read(member)
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    names: set[str] = set()
    try:
        for opcode, argument, _ in pickletools.genops(program):
            if (
                opcode.name in _STRING_OPCODES
                and isinstance(argument, str)
                and "." in argument
                and len(argument) < _MAX_NAME
            ):
                names.add(argument)
    except ValueError:  # a truncated or foreign pickle: what was read so far still counts
        pass
    return names
