"""Captions to text-encoder states: max_token_length chunks and clip_skip, as sd-scripts.

With ``max_token_length`` 150 or 225 the caption is tokenized to that length plus BOS/EOS,
cut into 75-token chunks that each get BOS/EOS again, encoded chunk by chunk, and the
chunks' states joined back with the inner BOS/EOS positions dropped (sd-scripts
``get_input_ids`` / ``get_hidden_states``).

SDXL (sd-scripts ``strategy_sdxl``): the penultimate hidden states of both encoders (no
final layer norm), concatenated along the width (768 + 1280 = 2048 for the real model),
and the pooled embedding: TE2's final state at the first EOS token of the first chunk,
through its ``text_projection``. ``clip_skip`` does not apply to SDXL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tuilora.errors import UserError


@dataclass
class TextConditions:
    """What the UNet is conditioned on: per-token states, and SDXL's pooled embedding."""

    states: torch.Tensor  # (batch, tokens, width)
    pooled: torch.Tensor | None = None  # (batch, projection width), SDXL only


def tokenize(tokenizer: Any, captions: list[str], max_token_length: int) -> torch.Tensor:
    """Token ids of shape (batch, chunks, model_max_length)."""
    window = int(tokenizer.model_max_length)  # 77: 75 tokens + BOS + EOS
    inner = window - 2
    length = max_token_length + 2
    ids = tokenizer(
        captions, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
    ).input_ids
    if max_token_length <= inner:
        return ids[:, None, :window]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    chunks = []
    for start in range(1, length - window + 2, inner):
        chunk = torch.cat([ids[:, :1], ids[:, start : start + inner], ids[:, -1:]], dim=1)
        if pad != eos:
            # Padded with a token of its own (SD2, SDXL's second tokenizer): a chunk cut
            # mid-caption must still end with EOS, and an empty chunk starts with one.
            cut = (chunk[:, -2] != eos) & (chunk[:, -2] != pad)
            chunk[cut, -1] = eos
            empty = chunk[:, 1] == pad
            chunk[empty, 1] = eos
        chunks.append(chunk)
    return torch.stack(chunks, dim=1)


def _final_layer_norm(encoder: Any) -> Any:
    # transformers 5's CLIPTextModel keeps it at the top; 4.x under .text_model
    return getattr(encoder, "text_model", encoder).final_layer_norm


def merge_chunks(states: torch.Tensor, batch: int, chunks: int, window: int) -> torch.Tensor:
    """(batch × chunks, window, width) → (batch, tokens, width) without the inner BOS/EOS."""
    states = states.reshape(batch, chunks * window, states.shape[-1])
    if chunks == 1:
        return states
    # Keep the first BOS, each chunk's 75 inner tokens, and the last EOS.
    parts = [states[:, :1]]
    for index in range(chunks):
        offset = index * window
        parts.append(states[:, offset + 1 : offset + window - 1])
    parts.append(states[:, -1:])
    return torch.cat(parts, dim=1)


def encode(encoder: Any, input_ids: torch.Tensor, clip_skip: int | None) -> torch.Tensor:
    """Hidden states (batch, tokens, width) for ids from ``tokenize``."""
    batch, chunks, window = input_ids.shape
    flat = input_ids.reshape(batch * chunks, window).to(encoder.device)
    if clip_skip is None or clip_skip <= 1:
        states = encoder(flat, return_dict=True).last_hidden_state
    else:
        out = encoder(flat, output_hidden_states=True, return_dict=True)
        states = _final_layer_norm(encoder)(out.hidden_states[-clip_skip])
    return merge_chunks(states, batch, chunks, window)


def pooled_embedding(
    encoder: Any, last_hidden_state: torch.Tensor, input_ids: torch.Tensor, eos_token_id: int
) -> torch.Tensor:
    """The final state at each row's first EOS, projected (sd-scripts' ``_pool_workaround``:
    CLIP's own pooling picks the largest token id, which is not EOS for every vocabulary)."""
    eos_index = torch.argmax((input_ids == eos_token_id).int(), dim=1).to(last_hidden_state.device)
    rows = torch.arange(last_hidden_state.shape[0], device=last_hidden_state.device)
    pooled = last_hidden_state[rows, eos_index]
    projection = encoder.text_projection
    return projection(pooled.to(projection.weight.dtype)).to(last_hidden_state.dtype)


def encode_sdxl(
    tokenizers: Sequence[Any], encoders: Sequence[Any], captions: list[str], max_token_length: int
) -> TextConditions:
    """Both encoders' penultimate states side by side, and TE2's pooled embedding."""
    states = []
    for tokenizer, encoder in zip(tokenizers, encoders, strict=True):
        ids = tokenize(tokenizer, captions, max_token_length)
        batch, chunks, window = ids.shape
        flat = ids.reshape(batch * chunks, window).to(encoder.device)
        out = encoder(flat, output_hidden_states=True, return_dict=True)
        states.append(merge_chunks(out.hidden_states[-2], batch, chunks, window))
    # After the loop ``encoder``, ``out`` and ``flat`` are TE2's: the pooled embedding is its.
    pooled = pooled_embedding(encoder, out.last_hidden_state, flat, tokenizers[-1].eos_token_id)
    pooled = pooled.reshape(batch, chunks, -1)[:, 0]  # the first chunk's, as sd-scripts
    return TextConditions(torch.cat(states, dim=2), pooled)


class TextEncoding:
    """Captions → ``TextConditions`` for one model; with ``cache`` each distinct caption is
    encoded once (``cache_text_encoder_outputs``: only while the encoders are frozen)."""

    def __init__(
        self,
        family: str,
        tokenizers: Sequence[Any],
        encoders: Sequence[Any],
        *,
        max_token_length: int,
        clip_skip: int | None,
        cache: bool = False,
    ) -> None:
        self.family = family
        self.tokenizers = list(tokenizers)
        self.encoders = list(encoders)
        self.max_token_length = max_token_length
        self.clip_skip = clip_skip
        self.cache: dict[str, TextConditions] | None = {} if cache else None

    def _encode(self, captions: list[str]) -> TextConditions:
        if self.family == "sdxl":
            return encode_sdxl(self.tokenizers, self.encoders, captions, self.max_token_length)
        ids = tokenize(self.tokenizers[0], captions, self.max_token_length)
        return TextConditions(encode(self.encoders[0], ids, self.clip_skip))

    def __call__(self, captions: list[str]) -> TextConditions:
        if self.cache is None:
            return self._encode(captions)
        missing = [c for c in dict.fromkeys(captions) if c not in self.cache]
        if missing:
            with torch.no_grad():
                fresh = self._encode(missing)
            for row, caption in enumerate(missing):
                pooled = None if fresh.pooled is None else fresh.pooled[row].detach()
                self.cache[caption] = TextConditions(fresh.states[row].detach(), pooled)
        rows = [self.cache[c] for c in captions]
        pooled_rows = [r.pooled for r in rows if r.pooled is not None]
        return TextConditions(
            torch.stack([r.states for r in rows]),
            torch.stack(pooled_rows) if len(pooled_rows) == len(rows) else None,
        )


def check_text_cache(config: Any, train_text_encoder: bool) -> None:
    """``cache_text_encoder_outputs`` needs frozen encoders and fixed captions (as sd-scripts)."""
    if not config.cache_text_encoder_outputs:
        return
    if train_text_encoder:
        raise UserError(
            "cache_text_encoder_outputs needs the text encoder left untrained: set"
            " network_train_unet_only = true (or turn the cache off)"
        )
    if config.shuffle_caption or config.caption_tag_dropout_rate:
        raise UserError(
            "cache_text_encoder_outputs cannot be used with shuffle_caption or"
            " caption_tag_dropout_rate (they change the caption every step): turn one off"
        )
