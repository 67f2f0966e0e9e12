"""tuilora: a terminal wizard, advisor and trainer for Stable Diffusion LoRAs.

The top-level package imports nothing heavy: ``tuilora advise`` must start fast and without
torch or textual (DESIGN §1, §2).
"""

__version__ = "0.1.0"
