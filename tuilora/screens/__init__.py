"""The Textual screens of ``tuilora`` (the wizard); they talk to advisor, dataset and runs.

Nothing is imported here so that ``tuilora.screens.state`` and friends stay usable (and
testable) without loading Textual; the app is ``tuilora.screens.app.run_app``.
"""
