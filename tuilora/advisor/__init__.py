"""The advisor: answers about the subject in, an explained training config out (DESIGN §3).

Pure Python (stdlib, tomllib, tomli-w): it imports neither torch nor textual. The entry point
is ``recommend(Answers(...))``; the knowledge lives in ``rules/*.toml``.
"""
