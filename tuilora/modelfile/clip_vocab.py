"""CLIP's byte-level BPE vocabulary, rebuilt offline from the merges shipped with tuilora.

SD1.x, SD2.x and SDXL all tokenize with OpenAI CLIP's vocabulary (49,408 tokens). Only its
48,894 merges are stored (``clip_merges.txt.gz``, the head of the ``bpe_simple_vocab_16e6``
list that OpenAI's CLIP and open_clip ship, MIT licensed); the vocabulary follows from them
exactly as CLIP's ``SimpleTokenizer`` builds it: the 256 byte symbols, the same with
``</w>``, one token per merge, then ``<|startoftext|>`` and ``<|endoftext|>``.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources
from typing import Final

BOS: Final = "<|startoftext|>"
EOS: Final = "<|endoftext|>"
VOCAB_SIZE: Final = 49408
MODEL_MAX_LENGTH: Final = 77  # 75 tokens + BOS + EOS


def bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins byte-level BPE (GPT-2, CLIP) uses for bytes, in order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


@cache
def clip_merges() -> tuple[str, ...]:
    """The merges, ``"a b"`` each, in rank order."""
    packed = resources.files("tuilora.modelfile").joinpath("clip_merges.txt.gz").read_bytes()
    return tuple(gzip.decompress(packed).decode("utf-8").splitlines())


def clip_vocab() -> dict[str, int]:
    """Token → id, as CLIP builds it from the merges."""
    symbols = bytes_to_unicode()
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols)]
    tokens.extend(merge.replace(" ", "") for merge in clip_merges())
    tokens.extend((BOS, EOS))
    return {token: index for index, token in enumerate(tokens)}
