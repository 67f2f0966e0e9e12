"""The CLIP tokenizers built offline from the shipped merges give the reference CLIP BPE's
token ids (instant-clip-tokenizer: an independent implementation with its own copy of OpenAI
CLIP's vocabulary) on a few hundred captions, and pad as sd-scripts pads."""

from __future__ import annotations

import random

import pytest

from tuilora.engine.single_file import clip_tokenizer
from tuilora.engine.text import tokenize
from tuilora.modelfile.clip_vocab import BOS, EOS, VOCAB_SIZE, clip_vocab
from tuilora.modelfile.configs import family_configs

reference_module = pytest.importorskip("instant_clip_tokenizer")

TAGS = [
    "1girl", "solo", "long hair", "looking at viewer", "smile", "blue eyes", "blonde hair",
    "school uniform", "(masterpiece:1.2)", "best quality", "absurdres", "cherry blossoms",
    "holding sword", "from side", "white background", "hatsune miku", "1boy", "male focus",
    "night sky", "city lights", "photorealistic", "8k", "score_9", "score_8_up", "source_anime",
    "very aesthetic", "@artist", "\\(cosplay\\)", "o_o", "^_^", ">:)", "1990s (style)",
    "pokémon", "café", "naïve", "日本語", "東方", "😀", "it's", "don't", "we'll", "I'M",
    "you've", "A photo of an astronaut riding a horse on Mars.", "x-ray", "t-shirt", "2.5d",
    "c++", "e=mc^2", "#hashtag", "mail@example.com", "https://example.com/a?b=c", "100%",
    "$5", "Ω", "Straße", "İstanbul", "   spaced   out  ", "tab\there", "new\nline", "zzz",
]  # fmt: skip


def captions() -> list[str]:
    rng = random.Random(13)
    made = [", ".join(rng.choice(TAGS) for _ in range(rng.randint(1, 30))) for _ in range(300)]
    return [*TAGS, *made]


def test_the_vocabulary_is_clips() -> None:
    vocab = clip_vocab()
    assert len(vocab) == VOCAB_SIZE
    assert (vocab["!"], vocab["a</w>"], vocab[BOS], vocab[EOS]) == (0, 320, 49406, 49407)


@pytest.mark.parametrize("pad", ["<|endoftext|>", "!"])
def test_token_ids_equal_the_reference_clip_bpe(pad: str) -> None:
    ours = clip_tokenizer(pad)
    reference = reference_module.Tokenizer()
    texts = captions()
    assert len(texts) > 300
    differ = [
        text
        for text in texts
        if ours(text, add_special_tokens=False).input_ids != list(reference.encode(text))
    ]
    assert differ == []


def test_sdxl_second_tokenizer_pads_with_exclamation_as_sd_scripts() -> None:
    """sd-scripts' strategy_sdxl sets ``tokenizer2.pad_token_id = 0`` ("!"); the first
    tokenizer (openai/clip-vit-large-patch14) pads with EOS. OpenCLIP's own batches pad with
    0 as well, so the second one's rows equal the reference's tokenize_batch."""
    first, second = (clip_tokenizer(t["pad_token"]) for t in family_configs("sdxl")["tokenizers"])
    assert (first.pad_token_id, second.pad_token_id) == (49407, 0)
    assert family_configs("sd2")["tokenizers"] == [{"pad_token": "!"}]
    texts = captions()[:60]
    reference = reference_module.Tokenizer().tokenize_batch(texts, context_length=77)
    ours = tokenize(second, texts, 75)[:, 0]
    assert ours.tolist() == reference.tolist()
    padded = tokenize(first, ["red circle"], 75)[0, 0].tolist()
    assert padded[:4] == [49406, 736, 7117, 49407] and set(padded[4:]) == {49407}
