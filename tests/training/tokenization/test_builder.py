from transformers import AutoTokenizer

from training.data.types import UserProfile
from training.identifiers.atomic import AtomicScheme
from training.prompts import BOS, HIST, STRUCTURE_TOKENS
from training.tokenization.builder import build_tokenizer, collect_vocabulary, encode_pieces


def test_vocabulary_starts_with_structure_tokens_and_has_no_duplicates(tiny_catalog):
    scheme = AtomicScheme(tiny_catalog.item_ids)
    vocab = collect_vocabulary(tiny_catalog, [UserProfile("1", "25", "M", "student")], scheme.new_tokens())
    assert vocab[: len(STRUCTURE_TOKENS)] == STRUCTURE_TOKENS
    assert len(vocab) == len(set(vocab))
    assert "<i_12>" in vocab and "<age_25-34>" in vocab and "film" in vocab


def test_tokenizer_round_trips_through_save_pretrained(tmp_path, tiny_catalog):
    vocab = collect_vocabulary(tiny_catalog, [], AtomicScheme(tiny_catalog.item_ids).new_tokens())
    tokenizer = build_tokenizer(vocab)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    text = f"{BOS} {HIST} <i_3> <i_4> unseenword"
    ids = loaded(text)["input_ids"]
    assert ids[:4] == [vocab.index(BOS), vocab.index(HIST), vocab.index("<i_3>"), vocab.index("<i_4>")]
    assert ids[4] == loaded.unk_token_id
    assert loaded.pad_token_id == vocab.index("<pad>")
    assert loaded.decode(ids[:3]) == f"{BOS} {HIST} <i_3>"


class CountingTokenizer:
    """Splits text on spaces into character codes and counts its calls (a fake for `encode_pieces`)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, text, add_special_tokens=False):
        self.calls += 1
        return {"input_ids": [ord(c) for c in text.strip()]}


def test_encode_pieces_memo_gives_the_same_ids_with_one_call_per_text_piece():
    vocab = {BOS: 0, HIST: 1}
    pieces = [BOS, HIST, "ab", "c", "ab", "ab"]
    plain = encode_pieces(CountingTokenizer(), pieces, vocab)
    tokenizer, memo = CountingTokenizer(), {}
    assert encode_pieces(tokenizer, pieces, vocab, memo) == plain == [0, 1, 97, 98, 99, 97, 98, 97, 98]
    assert encode_pieces(tokenizer, ["c", "ab"], vocab, memo) == [99, 97, 98]
    assert tokenizer.calls == 2 and memo == {"ab": [97, 98], "c": [99]}
