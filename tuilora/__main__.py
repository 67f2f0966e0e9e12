"""``python -m tuilora`` is the ``tuilora`` command."""

from tuilora.cli import main

main()
