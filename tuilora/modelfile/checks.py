"""What the file says against what the config or the user says: prediction type, SD2, base.

sd-scripts never guesses the prediction type: ``v_parameterization`` is the user's, and so it
is here. But a NoobAI v-pred file carries a ``v_pred`` marker, and SD2's 768 models and many
v-pred merges say so in their names; training them as epsilon (or an epsilon model as v)
learns the wrong target silently, so a mismatch is a warning naming the evidence. The family
itself is never a guess: the file decides it (sd-scripts' ``v2`` flag is not needed), and an
advisor ``--base`` that says otherwise is a warning, with the advice given for the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuilora.errors import UserError
from tuilora.modelfile.describe import BASE_FAMILIES, ModelFile, describe_model
from tuilora.modelfile.family import FAMILY_NAMES


def prediction_warnings(model: ModelFile, v_parameterization: bool, v2: bool = False) -> list[str]:
    """Warnings where the file and ``v_parameterization`` / ``v2`` disagree."""
    warnings: list[str] = []
    name = model.path.name
    hint = model.prediction_hint[0] if model.prediction_hint else None
    says_v = model.v_pred_key or hint == "v"
    says_eps = hint == "epsilon"
    if says_v and not v_parameterization:
        evidence = "a v_pred key" if model.v_pred_key else model.prediction_hint_text
        extra = " (and zero_terminal_snr = true: it carries a ztsnr key)" if model.ztsnr_key else ""
        warnings.append(
            f"{name} looks like a v-prediction model ({evidence}) but v_parameterization is"
            f" off: it trains as epsilon-prediction; set v_parameterization = true{extra}"
            " if it is one"
        )
    elif v_parameterization and says_eps:
        warnings.append(
            f"v_parameterization is on but {name} looks like an epsilon-prediction model"
            f" ({model.prediction_hint_text}): check that it is a v-prediction model"
        )
    elif v_parameterization and model.family in ("sd1", "sdxl") and not says_v:
        warnings.append(
            f"v_parameterization is on but nothing in {name} says v-prediction (no v_pred"
            f" key, nothing in its name) and most {FAMILY_NAMES[model.family]} models are"
            " epsilon-prediction: check that it is a v-prediction model"
        )
    if v2 and model.family not in (None, "sd2"):
        warnings.append(
            f"v2 = true but {name} is {model.family_name}: it is loaded as what the file is"
        )
    return warnings


@dataclass(frozen=True)
class BaseChoice:
    """The advisor base for a model: the file's family, and a warning if ``--base`` differs."""

    base: str
    warning: str | None = None


def base_for_model(model: ModelFile, requested: str | None) -> BaseChoice:
    """The ``--base`` to advise for ``model``; ``requested`` is the user's own, if any."""
    if model.family is None or model.advisor_base is None:
        return BaseChoice(requested or "sd15")
    if requested is None:
        return BaseChoice(model.advisor_base)
    if BASE_FAMILIES.get(requested) == model.family:
        return BaseChoice(requested)  # e.g. --base nai for an SD1.x file
    return BaseChoice(
        model.advisor_base,
        f"--base {requested} but {model.path.name} is {model.family_name}: advising for"
        f" {model.advisor_base} (the model decides)",
    )


@dataclass(frozen=True)
class ModelNote:
    """A finding about ``--model`` for the advisor: ``severity`` is ``info`` or ``warning``."""

    id: str
    severity: str
    message: str


@dataclass(frozen=True)
class ModelAdvice:
    """What ``advise --model`` and the wizard take from the model path: the base to advise
    for (None: keep the user's), the one-line description, and notes to show."""

    base: str | None
    summary: str
    notes: tuple[ModelNote, ...]


def model_advice(path: str, requested_base: str | None) -> ModelAdvice:
    """Read the model's family for the advice. A path that does not exist here is not an
    error (the config may be for another machine): the advice then follows ``--base``. A
    file that exists but is no model is a UserError naming it."""
    location = Path(path).expanduser()
    if not location.exists():
        base = requested_base or "sd15"
        note = ModelNote(
            "model-not-found",
            "info",
            f"--model {path}: not found here, so its family was not read; advising for {base}.",
        )
        return ModelAdvice(None, "", (note,))
    model = describe_model(location, what="--model")
    choice = base_for_model(model, requested_base)
    notes = [ModelNote("model-family", "info", f"--model {location.name}: {model.summary()}.")]
    if choice.warning:
        notes.append(ModelNote("model-base-mismatch", "warning", choice.warning + "."))
    return ModelAdvice(choice.base, model.summary(), tuple(notes))


def model_line(path: str) -> str:
    """The wizard's line under the model path: what the file is, or why it is not a model
    (empty while the path is not there yet or is a plain folder being typed)."""
    location = Path(path).expanduser()
    if not path or not location.exists():
        return ""
    if location.is_dir() and not (location / "model_index.json").is_file():
        return ""
    try:
        return describe_model(location, what="--model").summary()
    except UserError as error:
        return str(error)
