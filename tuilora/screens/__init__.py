"""The Textual screens of ``tuilora``: the wizard's steps, the monitor and the checklist.

They draw the headless ``tuilora.wizard`` (answers, advice, exports) and talk to advisor,
dataset and runs; the app is ``tuilora.screens.app.run_app``. Nothing is imported here.
"""
