"""The training engine (torch side): models, networks, data, loss, optimizers, loop, saving.

Nothing outside ``tuilora.engine`` imports it except the ``train`` / ``demo`` / ``sample``
commands, and those only inside the command (DESIGN §1, §2).
"""
