"""``python -m tuilora.engine CONFIG [options]``: the entry ``accelerate launch`` runs in each
process (``accelerate launch --multi_gpu --num_processes N -m tuilora.engine CONFIG``).
It is ``tuilora train`` itself, so both paths train the same way."""

import sys

from tuilora.cli import main

main(["train", *sys.argv[1:]])
