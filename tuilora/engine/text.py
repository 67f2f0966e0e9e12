"""Captions to text-encoder states: max_token_length chunks and clip_skip, as sd-scripts.

With ``max_token_length`` 150 or 225 the caption is tokenized to that length plus BOS/EOS,
cut into 75-token chunks that each get BOS/EOS again, encoded chunk by chunk, and the
chunks' states joined back with the inner BOS/EOS positions dropped (sd-scripts
``get_input_ids`` / ``get_hidden_states``).
"""

from __future__ import annotations

from typing import Any

import torch


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
    chunks = []
    for start in range(1, length - window + 2, inner):
        chunk = torch.cat([ids[:, :1], ids[:, start : start + inner], ids[:, -1:]], dim=1)
        chunks.append(chunk)
    return torch.stack(chunks, dim=1)


def _final_layer_norm(encoder: Any) -> Any:
    # transformers 5's CLIPTextModel keeps it at the top; 4.x under .text_model
    return getattr(encoder, "text_model", encoder).final_layer_norm


def encode(encoder: Any, input_ids: torch.Tensor, clip_skip: int | None) -> torch.Tensor:
    """Hidden states (batch, tokens, width) for ids from ``tokenize``."""
    batch, chunks, window = input_ids.shape
    flat = input_ids.reshape(batch * chunks, window).to(encoder.device)
    if clip_skip is None or clip_skip <= 1:
        states = encoder(flat, return_dict=True).last_hidden_state
    else:
        out = encoder(flat, output_hidden_states=True, return_dict=True)
        states = _final_layer_norm(encoder)(out.hidden_states[-clip_skip])
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
