import itertools

import numpy as np
import pytest

from training.cot.parse import parse_reasoning
from training.cot.programmatic import ProgrammaticTeacher
from training.cot.resolve import (
    make_resolver,
    make_title_resolver,
    make_token_resolver,
    make_trie_resolver,
    split_item_tokens,
)
from training.data.types import Sample
from training.identifiers.atomic import AtomicScheme
from training.identifiers.rqkmeans import SemanticIdScheme
from training.identifiers.titles import TitleScheme
from training.identifiers.trie import ItemTrie
from training.prompts import STRUCTURE_TOKENS, format_reasoning_target


def sid_setup(catalog):
    """2-level SIDs (+ disambiguation) as in the tiny policy; vocab and trie without a tokenizer."""
    embeddings = np.random.default_rng(0).normal(size=(len(catalog), 8)).astype("float32")
    scheme = SemanticIdScheme.fit(catalog.item_ids, embeddings, n_levels=2, n_codes=3, seed=0)
    vocab = {token: i for i, token in enumerate([*STRUCTURE_TOKENS, *scheme.new_tokens()])}
    trie = ItemTrie.build({item: [vocab[t] for t in scheme.item_tokens(item)] for item in scheme.item_ids})
    return scheme, vocab, trie


@pytest.mark.timeout(5)
def test_split_item_tokens():
    assert split_item_tokens("<s0_1><s1_2>") == ("<s0_1>", "<s1_2>")
    assert split_item_tokens(" <s0_1> <s1_2>\n") == ("<s0_1>", "<s1_2>")
    assert split_item_tokens("item <s0_1>") is None and split_item_tokens("") is None


@pytest.mark.timeout(5)
def test_title_resolver(movie_catalog):
    resolve = make_title_resolver(movie_catalog)
    assert resolve("Heat (1995)") == "2" and resolve('  "Heat   (1995)" ') == "2"
    assert resolve("heat (1995)") == "2"  # case-insensitive when unambiguous
    assert resolve("Twin (1990) [12]") == "12" and resolve("Twin (1990) [13]") == "13"
    assert resolve("Twin (1990)") is None  # two items share the raw title
    assert resolve("Zorro (1998)") is None
    parsed = parse_reasoning("<think>x</think><answer>Zorro (1998)</answer>", resolve)
    assert parsed.error == "unknown_item"


@pytest.mark.timeout(5)
def test_atomic_resolver(tiny_catalog):
    resolve = make_resolver(AtomicScheme.build(tiny_catalog), tiny_catalog)
    assert resolve("<i_3>") == "3" and resolve(" <i_3> ") == "3"
    assert resolve("<i_99>") is None and resolve("<i_3><i_4>") is None and resolve("item 3") is None


@pytest.mark.timeout(10)
def test_sid_resolvers_accept_exactly_the_trie_paths(tiny_catalog):
    scheme, vocab, trie = sid_setup(tiny_catalog)
    by_scheme, by_trie = make_token_resolver(scheme), make_trie_resolver(trie, vocab)
    for item in scheme.item_ids:
        tokens = scheme.item_tokens(item)
        assert by_scheme("".join(tokens)) == item and by_trie(" ".join(tokens)) == item
        assert by_trie("".join(tokens[:-1])) is None  # a prefix is not an item
        assert by_trie("".join(tokens) + "<s0_0>") is None
    assert by_trie("<s9_9><s1_0><s2_0>") is None  # unknown token
    per_level = [[t for t in scheme.new_tokens() if t.startswith(f"<s{level}_")] for level in range(scheme.depth)]
    outside = next(combo for combo in itertools.product(*per_level) if scheme.item_for_tokens(combo) is None)
    assert by_trie("".join(outside)) is None and by_scheme("".join(outside)) is None
    parsed = parse_reasoning(f"<think>x</think><answer>{''.join(outside)}</answer>", by_trie)
    assert parsed.error == "unknown_item"


@pytest.mark.timeout(10)
def test_teacher_target_round_trips_through_the_parser_on_three_schemes(tiny_catalog):
    teacher = ProgrammaticTeacher(tiny_catalog)
    cot = teacher.write(Sample("1:7", "1", ("2", "3", "4", "5"), "6"), target="6")
    sid, vocab, trie = sid_setup(tiny_catalog)
    schemes = {"titles": TitleScheme.build(tiny_catalog), "atomic": AtomicScheme.build(tiny_catalog), "sid": sid}
    for name, scheme in schemes.items():
        text = format_reasoning_target(cot, scheme.item_tokens("6"))
        parsed = parse_reasoning(text, make_resolver(scheme, tiny_catalog))
        assert (parsed.item, parsed.well_formed) == ("6", True), name
    decoded = " ".join(["<think>", "x", "</think>", "<answer>", *sid.item_tokens("6"), "</answer>"])
    assert parse_reasoning(decoded, make_trie_resolver(trie, vocab)).item == "6"  # word-level decode spacing


@pytest.mark.timeout(60)
def test_tiny_tokenizer_round_trip(tiny_catalog):
    """Encode a reasoning target with the tiny policy's word-level tokenizer, decode it, parse it back."""
    from training.prompts import reasoning_target_pieces
    from training.tokenization.builder import build_tokenizer, collect_vocabulary, encode_pieces

    scheme, _, _ = sid_setup(tiny_catalog)
    tokenizer = build_tokenizer(collect_vocabulary(tiny_catalog, [], scheme.new_tokens()))
    vocab = tokenizer.get_vocab()
    trie = ItemTrie.build({item: encode_pieces(tokenizer, scheme.item_tokens(item), vocab) for item in scheme.item_ids})
    cot = ProgrammaticTeacher(tiny_catalog).write(Sample("1:4", "1", ("2", "3", "4", "5"), "6"), target="6")
    pieces = reasoning_target_pieces(cot.text(lambda i: " ".join(scheme.item_tokens(i)), " "), scheme.item_tokens("6"))
    ids = encode_pieces(tokenizer, pieces, vocab)
    parsed = parse_reasoning(tokenizer.decode(ids), make_trie_resolver(trie, vocab))
    assert (parsed.item, parsed.well_formed) == ("6", True)
    assert " ".join(scheme.item_tokens("2")) in parsed.think  # the denoised history kept its item tokens
