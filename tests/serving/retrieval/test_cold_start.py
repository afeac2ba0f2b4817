from collections import Counter

import numpy as np
import pytest

from serving.retrieval import (
    ColdStartError,
    IndexSettings,
    ItemIndex,
    add_cold_items,
    add_cold_sid_items,
    assign_cold_identifiers,
    remove_items_everywhere,
)
from tests.serving.retrieval.conftest import mixture
from training.identifiers.atomic import AtomicScheme
from training.identifiers.rqkmeans import SemanticIdScheme
from training.identifiers.trie import DuplicateSequenceError, ItemTrie


@pytest.fixture
def parts():
    """(index over 30 items d=16, trie of their 3-token SIDs, SID scheme over text embeddings d=8, vocab)."""
    ids = [f"m{i}" for i in range(30)]
    text = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    scheme = SemanticIdScheme.fit(ids, text, n_levels=2, n_codes=3, seed=0)
    vocab = {token: 100 + n for n, token in enumerate(scheme.new_tokens())}
    trie = ItemTrie.build({i: [vocab[t] for t in scheme.item_tokens(i)] for i in ids})
    index = ItemIndex.build(ids, mixture(30, 16, seed=0), IndexSettings(use_gpu="never"))
    return index, trie, scheme, vocab, text


def snapshot(index, trie, scheme=None):
    return (index.item_ids, sorted((i, trie.sequence(i)) for i in trie),
            None if scheme is None else (scheme.mapping(), list(scheme.codebook_sizes)))


@pytest.mark.timeout(10)
def test_cold_items_reach_both_index_and_trie(parts):
    index, trie, _, _, _ = parts
    vec = mixture(2, 16, seed=5)
    add_cold_items(index, trie, {"new1": (vec[0], [1, 2, 3]), "new2": (vec[1], [1, 2, 4])})
    assert trie.item_at([1, 2, 4]) == "new2" and "new1" in index
    assert index.search(vec[1] * 10, 1)[0][0][0] == "new2"
    remove_items_everywhere(index, trie, ["new1", "new2"])
    assert "new1" not in index and "new1" not in trie and trie.allowed_next([1]) == []


@pytest.mark.timeout(10)
def test_a_taken_sequence_rolls_back_both(parts):
    index, trie, _, _, _ = parts
    before = snapshot(index, trie)
    vec = mixture(3, 16, seed=5)
    taken = list(trie.sequence("m4"))
    with pytest.raises(DuplicateSequenceError):
        add_cold_items(index, trie, {"a": (vec[0], [7, 7]), "b": (vec[1], [7, 8]), "c": (vec[2], taken)})
    assert snapshot(index, trie) == before


@pytest.mark.timeout(10)
def test_an_index_failure_rolls_back_the_trie(parts, monkeypatch):
    index, trie, _, _, _ = parts
    before = snapshot(index, trie)

    def broken(*args, **kwargs):
        raise MemoryError("faiss could not grow")

    monkeypatch.setattr(index, "add_items", broken)
    with pytest.raises(MemoryError):
        add_cold_items(index, trie, {"a": (mixture(1, 16, seed=1)[0], [7, 7])})
    assert snapshot(index, trie) == before


@pytest.mark.timeout(10)
def test_known_ids_wrong_shapes_and_missing_ids_are_refused(parts):
    index, trie, _, _, _ = parts
    before = snapshot(index, trie)
    vec = mixture(1, 16, seed=1)[0]
    with pytest.raises(ValueError, match="'m3' is already in the index"):
        add_cold_items(index, trie, {"m3": (vec, [7, 7])})
    with pytest.raises(ValueError, match=r"shape \(16,\)"):
        add_cold_items(index, trie, {"a": (vec[:8], [7, 7])})
    trie.insert("only-trie", [9, 9])
    with pytest.raises(KeyError, match="'only-trie' is not in the index"):
        remove_items_everywhere(index, trie, ["m1", "only-trie"])
    trie.delete("only-trie")
    assert snapshot(index, trie) == before


@pytest.mark.timeout(10)
def test_sid_assignment_uses_the_fitted_codes_and_a_free_suffix(parts):
    index, trie, scheme, vocab, text = parts
    groups = Counter(scheme.codes_of(i)[:-1] for i in scheme.item_ids)
    roomy = next(i for i in scheme.item_ids if groups[scheme.codes_of(i)[:-1]] < scheme.codebook_sizes[-1])
    twin = text[scheme.item_ids.index(roomy)]  # same text embedding -> same prefix, new suffix
    seqs = add_cold_sid_items(index, trie, scheme, vocab, {"twin": (mixture(1, 16, seed=2)[0], twin)})
    assert scheme.codes_of("twin")[:-1] == scheme.codes_of(roomy)[:-1]
    assert seqs["twin"] != list(trie.sequence(roomy))
    assert trie.item_at(seqs["twin"]) == "twin" and "twin" in index
    remove_items_everywhere(index, trie, ["twin"], scheme)
    assert "twin" not in scheme


@pytest.mark.timeout(10)
def test_a_full_prefix_needs_a_token_the_policy_lacks(parts):
    index, trie, scheme, vocab, text = parts
    before = snapshot(index, trie, scheme)
    groups = Counter(scheme.codes_of(i)[:-1] for i in scheme.item_ids)
    full = next(i for i in scheme.item_ids if groups[scheme.codes_of(i)[:-1]] == scheme.codebook_sizes[-1])
    roomy = next(i for i in scheme.item_ids if groups[scheme.codes_of(i)[:-1]] < scheme.codebook_sizes[-1])
    vec = mixture(2, 16, seed=3)
    items = {"ok": (vec[0], text[scheme.item_ids.index(roomy)]), "x": (vec[1], text[scheme.item_ids.index(full)])}
    with pytest.raises(ColdStartError, match="vocabulary lacks"):
        add_cold_sid_items(index, trie, scheme, vocab, items)
    assert snapshot(index, trie, scheme) == before


@pytest.mark.timeout(10)
def test_an_index_conflict_rolls_back_the_scheme(parts):
    index, trie, scheme, vocab, text = parts
    index.add_items(["clash"], mixture(1, 16, seed=9))
    before = snapshot(index, trie, scheme)
    with pytest.raises(ValueError, match="'clash' is already in the index"):
        add_cold_sid_items(index, trie, scheme, vocab, {"clash": (mixture(1, 16, seed=1)[0], text[1])})
    assert snapshot(index, trie, scheme) == before


@pytest.mark.timeout(10)
def test_atomic_schemes_cannot_take_cold_items():
    with pytest.raises(ColdStartError, match="atomic identifiers cannot take new items"):
        assign_cold_identifiers(AtomicScheme(["a", "b"]), {}, {"c": np.zeros(8, np.float32)})
