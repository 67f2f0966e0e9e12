"""The component configs of each family, shipped with tuilora (no hub, no extra files).

``configs/<family>.json`` holds what a diffusers folder's ``config.json`` files would: the
UNet, the VAE, the text encoder(s) (transformers' ``CLIPTextConfig`` fields), the noise
schedule, and each tokenizer's padding token (SD2's and SDXL's second pad with ``!``, as
sd-scripts sets them). The values are those of the reference releases (SD1.5, SD2.1,
SDXL 1.0 base); a test builds each architecture from them and checks it against the
original checkpoints' tensor layout.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from tuilora.modelfile.family import FAMILIES

#: Component names, as the folders of a diffusers pipeline.
COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2", "scheduler")


@cache
def _load(family: str) -> dict[str, Any]:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    text = (
        resources.files("tuilora.modelfile")
        .joinpath(f"configs/{family}.json")
        .read_text(encoding="utf-8")
    )
    data: dict[str, Any] = json.loads(text)
    return data


def family_configs(family: str) -> dict[str, Any]:
    """A fresh copy of ``family``'s configs: ``unet``, ``vae``, ``text_encoder``
    (``text_encoder_2`` for SDXL), ``scheduler`` and ``tokenizers`` (one dict each)."""
    copy: dict[str, Any] = json.loads(json.dumps(_load(family)))
    return copy
