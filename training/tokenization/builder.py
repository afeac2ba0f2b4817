"""Local HF fast tokenizer: a word-level vocabulary, no hub download (DESIGN.md §4).

Vocabulary = structure tokens, profile tokens, identifier tokens of the scheme
(one per SID level and code, or one per item) and a small word vocabulary of
item texts for the alignment task. Saved with `save_pretrained`, so vLLM and
`AutoTokenizer` load it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from training.catalog import Catalog
from training.data.types import UserProfile
from training.prompts import BOS, EOS, PAD, STRUCTURE_TOKENS, UNK, profile_tokens, text_words


def collect_vocabulary(
    catalog: Catalog, profiles: Iterable[UserProfile], identifier_tokens: list[str],
    min_word_count: int = 2, max_words: int = 2000, extra_words: Iterable[str] = (),
) -> list[str]:
    """Ordered, de-duplicated vocabulary; structure tokens first so their ids are stable.

    extra_words: appended last, in the given order, skipping entries already present (e.g. the chain-of-thought
    words of `training.reasoning_sft.words`); the default () leaves the vocabulary exactly as before.
    """
    profile_vocab = sorted({t for p in profiles for t in profile_tokens(p)})
    counts = Counter(w for text in catalog.texts() for w in text_words(text))
    words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_word_count]
    vocab: list[str] = []
    seen: set[str] = set()
    for token in [*STRUCTURE_TOKENS, *profile_vocab, *identifier_tokens, *words[:max_words], *extra_words]:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab


def build_tokenizer(vocabulary: list[str]) -> PreTrainedTokenizerFast:
    """Whitespace-split word-level tokenizer over `vocabulary` (ids = list positions)."""
    core = Tokenizer(models.WordLevel({tok: i for i, tok in enumerate(vocabulary)}, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        padding_side="left", clean_up_tokenization_spaces=False,
    )


def encode_pieces(tokenizer, pieces: Iterable[str], vocab: dict[str, int] | None = None,
                  memo: dict[str, list[int]] | None = None) -> list[int]:
    """Token ids of a layout: a piece that is a vocabulary entry maps to its id, other pieces
    (titles, words of a pretrained tokenizer) are tokenized as text.

    vocab: `tokenizer.get_vocab()`, passed by callers that encode many layouts; memo: piece -> ids of pieces
    tokenized as text, shared across calls (titles repeat across users: one tokenizer call each, not per use).
    """
    vocab = tokenizer.get_vocab() if vocab is None else vocab
    ids: list[int] = []
    for piece in pieces:
        if piece in vocab:
            ids.append(vocab[piece])
        elif memo is not None and piece in memo:
            ids.extend(memo[piece])
        else:
            text_ids = tokenizer(" " + piece, add_special_tokens=False)["input_ids"]
            if memo is not None:
                memo[piece] = text_ids
            ids.extend(text_ids)
    return ids


def extend_pretrained_tokenizer(base_model: str, extra_tokens: list[str]):
    """A pretrained model's tokenizer plus our structure/profile/identifier tokens (added as special)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    tokenizer.add_tokens([t for t in extra_tokens if t not in tokenizer.get_vocab()], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD
    if tokenizer.bos_token is None:
        tokenizer.bos_token = BOS
    return tokenizer
