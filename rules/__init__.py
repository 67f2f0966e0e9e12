"""The guide as data: installed as the package ``tuilora.rules`` (see setup.py).

This file only makes the folder a regular package so importlib.resources finds the TOML
files in an installed wheel; it holds no code.
"""
