"""A LoRA file checked before anything loads it: ``network_weights`` and ``base_weights`` in
pre-flight, ``tuilora sample``'s snapshots before the base model loads (issue 17).

The whole file is checked without torch: a pickle is refused unless allowed (reading it would
unpickle it, which can run code), the safetensors header must be readable with every tensor's
data inside the file (a cut-off copy is caught here, not by the loader after a minute of model
loading), and at least one tensor must carry sd-scripts' LoRA names (``lora_unet_*``,
``lora_te*``; LyCORIS files use the same prefixes). Whether the shapes fit the base model is
the network's check once the model is there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from tuilora.errors import UserError
from tuilora.modelfile.header import SafetensorsHeader, read_safetensors_header

#: sd-scripts' module name prefixes (Unet, text encoder(s)); kohya LyCORIS files share them.
LORA_PREFIXES: Final = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")


def check_lora_file(
    path: str | Path, what: str = "", *, allow_pickle: bool | None = False
) -> SafetensorsHeader | None:
    """The file's header when it is a readable LoRA .safetensors file (None for a pickle
    with ``allow_pickle``); otherwise a UserError naming ``what`` and the file.
    ``allow_pickle=None``: the caller reads safetensors only, so --allow-pickle is no help."""
    path = Path(path).expanduser()
    label = f"{what} {path}" if what else str(path)
    if not path.exists():
        raise UserError(f"{label}: no such file")
    if path.is_dir():
        raise UserError(f"{label}: is a folder, expected a LoRA .safetensors file")
    if path.suffix.lower() != ".safetensors":
        if allow_pickle:
            return None
        consent = " or pass --allow-pickle if you trust it" if allow_pickle is False else ""
        raise UserError(
            f"{label}: not a .safetensors file; reading it would unpickle it (a pickle can run"
            f" code). Convert it to safetensors{consent}"
        )
    try:
        header = read_safetensors_header(path)
    except UserError as error:
        raise UserError(f"{what} {error}" if what else str(error)) from None
    if not any(name.startswith(LORA_PREFIXES) for name in header.tensors):
        example = next(iter(header.tensors), "none")
        raise UserError(
            f"{label}: not a LoRA: none of its {len(header.tensors)} tensors has sd-scripts'"
            f" LoRA names (lora_unet_*, lora_te*), e.g. {example}"
        )
    return header
