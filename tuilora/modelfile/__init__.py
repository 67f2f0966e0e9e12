"""Base model files without torch: what a checkpoint is, and the configs to build it.

Shared by the advisor (``tuilora advise --model``, the wizard: header only) and the engine
(which reads the weights): ``header`` reads a safetensors header, ``pickled`` the names in a
``.ckpt`` without unpickling, ``family`` recognises SD1.x / SD2.x / SDXL, ``describe`` is the
one check of a model path, ``checks`` compares the file with the config, ``configs`` and
``clip_vocab`` are the shipped component configs and CLIP vocabulary, ``ldm_names`` maps
diffusers' parameter names to the original layout's.
"""

from tuilora.modelfile.checks import BaseChoice, base_for_model, prediction_warnings
from tuilora.modelfile.describe import ModelFile, describe_model, refuse_pickle

__all__ = [
    "BaseChoice",
    "ModelFile",
    "base_for_model",
    "describe_model",
    "prediction_warnings",
    "refuse_pickle",
]
