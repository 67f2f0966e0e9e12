"""Run directories and the events protocol, shared by the engine and the UI (DESIGN §6, §7).

Torch-free and Textual-free: the engine writes events, the monitor, ``tuilora watch`` and
``tuilora diagnose`` read them.
"""
