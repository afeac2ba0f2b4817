"""Chain-of-thought prose as pieces of the tiny policy's word-level vocabulary (gream.txt §4.2).

The local tokenizer (`training.tokenization.builder.build_tokenizer`) splits on whitespace only, so
"evidence:" or "(1995;" would each be one unknown word. The programmatic teacher's text is therefore cut
into pieces before it is encoded:

- identifier tokens `<...>` (item tokens of the denoised history) stay whole, case kept;
- runs of letters/digits become one lower-cased word ("Film-Noir" -> "film", "-", "noir");
- every other visible character is a piece of its own ("57%)." -> "57", "%", ")", ".").

The words of every CoT written for the SFT data (`collect_cot_words`) go to
`collect_vocabulary(..., extra_words=...)`, so no CoT piece encodes as `<unk>`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from training.cot.teacher import CoT

_PIECE = re.compile(r"<[^<>\s]+>|[^\W_]+|\S")

ItemTokens = Callable[[str], Sequence[str]]


def is_identifier_token(piece: str) -> bool:
    """True for `<...>` pieces (identifier or structure tokens), which keep their case."""
    return len(piece) > 2 and piece[0] == "<" and piece[-1] == ">"


def split_cot_words(text: str) -> list[str]:
    """Text -> pieces by the module's rules; " ".join(pieces) is the text as the tiny policy writes it."""
    return [m if is_identifier_token(m) else m.lower() for m in _PIECE.findall(text)]


def render_cot_pieces(cot: CoT | str, item_tokens: ItemTokens) -> list[str]:
    """The five-stage CoT text (`CoT.text`) with denoised-history items written as their identifier tokens,
    space-separated, cut into pieces. A str is cut as is."""
    text = cot if isinstance(cot, str) else cot.text(lambda item: " ".join(item_tokens(item)), " ")
    return split_cot_words(text)


def collect_cot_words(piece_lists: Iterable[Sequence[str]], skip_identifier_tokens: bool = True) -> list[str]:
    """Every distinct piece, most frequent first (ties: alphabetical), for `collect_vocabulary(extra_words=...)`.

    Identifier tokens are left out by default: the scheme's `new_tokens()` already holds them.
    """
    counts = Counter(p for pieces in piece_lists for p in pieces
                     if not (skip_identifier_tokens and is_identifier_token(p)))
    return [word for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
