"""The wizard without its screens: answers, memory, field parsing, the step order, exports.

Headless on purpose (no Textual, no torch): ``tuilora.screens`` draws these, the tests
drive the whole flow through them without an app, and import-linter keeps it that way.
"""
