"""The weight change ΔW of one LoRA module, with numpy (formulas as LyCORIS' functional ops).

ΔW is returned flat, (out, in·kh·kw), scaled by alpha/rank, at strength 1. ``tuilora tools
inspect`` takes its norms; ``tuilora tools merge`` adds it to checkpoint weights. (IA)^3
scales weights instead of adding to them and has no ΔW; ``ia3_scale`` gives its factors.
"""

from __future__ import annotations

import math
from typing import Any

from tuilora.errors import UserError
from tuilora.lorafile.lora import KIND_NAMES, LoraModule
from tuilora.lorafile.safetensors_io import SafetensorsFile

#: Kinds whose ΔW tuilora computes (Tucker LoHa/LoKr and DoRA excepted, see ``unsupported``).
ADDITIVE_KINDS = ("lora", "loha", "lokr")


def unsupported(module: LoraModule) -> str | None:
    """Why this module's change cannot be computed here, or None when it can."""
    if module.dora:
        return "DoRA (weight-decomposed) modules"
    if module.kind in ("loha", "lokr") and module.tucker:
        return f"Tucker-decomposed {KIND_NAMES[module.kind]} modules"
    if module.kind not in (*ADDITIVE_KINDS, "ia3"):
        return f"{KIND_NAMES.get(module.kind, module.kind)} modules"
    return None


def delta(file: SafetensorsFile, module: LoraModule) -> Any:
    """ΔW (out, in·kh·kw) float32 at strength 1; UserError for kinds without one."""
    import numpy as np

    reason = unsupported(module)
    if reason or module.kind == "ia3":
        raise UserError(f"{file.path}: {module.name}: {reason or '(IA)^3 has no additive change'}")

    def read(param: str) -> Any:
        return file.read_array(f"{module.name}.{param}").astype(np.float32)

    if module.kind == "lora":
        up = read("lora_up.weight")
        down = read("lora_down.weight")
        up2d = up.reshape(up.shape[0], -1)
        if "lora_mid.weight" in module.params:
            mid = read("lora_mid.weight")
            down2d = down.reshape(down.shape[0], -1)
            change = np.einsum("pi,ijhw,jq->pqhw", up2d, mid, down2d).reshape(up.shape[0], -1)
        else:
            change = up2d @ down.reshape(down.shape[0], -1)
    elif module.kind == "loha":
        w1 = read("hada_w1_a") @ read("hada_w1_b").reshape(module.rank or 0, -1)
        w2 = read("hada_w2_a") @ read("hada_w2_b").reshape(module.rank or 0, -1)
        change = w1 * w2
    else:  # lokr
        change = np.kron(_lokr_factor(read, module, "1"), _lokr_factor(read, module, "2"))
    return (change * np.float32(module.scale)).astype(np.float32)


def _lokr_factor(read: Any, module: LoraModule, which: str) -> Any:
    if f"lokr_w{which}" in module.params:
        whole = read(f"lokr_w{which}")
        return whole.reshape(whole.shape[0], -1)
    a = read(f"lokr_w{which}_a")
    return a @ read(f"lokr_w{which}_b").reshape(a.shape[1], -1)


def ia3_scale(file: SafetensorsFile, module: LoraModule) -> tuple[Any, bool]:
    """(weight vector, on_input): W' = W·(1 + strength·weight) along the output axis, or the
    input axis when on_input."""
    weight = file.read_array(f"{module.name}.weight")
    on_input = False
    if "on_input" in module.params:
        on_input = bool(file.read_array(f"{module.name}.on_input").reshape(-1)[0])
    return weight.reshape(-1), on_input


def delta_norm(file: SafetensorsFile, module: LoraModule) -> float | None:
    """‖ΔW‖_F at strength 1 (‖weight‖ for (IA)^3); None for kinds tuilora cannot compute.

    A plain LoRA's norm comes from the rank×rank Gram matrices, never the full ΔW:
    ‖U·D‖² = Σ (UᵀU) ⊙ (D·Dᵀ).
    """
    import numpy as np

    if unsupported(module):
        return None
    if module.kind == "ia3":
        weight, _ = ia3_scale(file, module)
        return float(np.linalg.norm(weight))
    if module.kind == "lora" and "lora_mid.weight" not in module.params:
        up = file.read_array(f"{module.name}.lora_up.weight").astype(np.float64)
        down = file.read_array(f"{module.name}.lora_down.weight").astype(np.float64)
        up2d = up.reshape(up.shape[0], -1)
        down2d = down.reshape(down.shape[0], -1)
        squared = float(np.sum((up2d.T @ up2d) * (down2d @ down2d.T)))
        return math.sqrt(max(squared, 0.0)) * abs(module.scale)
    return float(np.linalg.norm(delta(file, module)))
