import pytest

from training.identifiers.trie import DuplicateSequenceError, ItemTrie


@pytest.fixture
def trie() -> ItemTrie:
    return ItemTrie.build({"a": [1, 2, 3], "b": [1, 2, 4], "c": [1, 5], "d": [6]})


def test_allowed_next_follows_the_hand_made_tree(trie):
    assert trie.allowed_next([]) == [1, 6]
    assert trie.allowed_next([1]) == [2, 5]
    assert trie.allowed_next([1, 2]) == [3, 4]
    assert trie.allowed_next([1, 2, 3]) == []
    assert trie.allowed_next([9]) == []
    assert trie.allowed_next([1, 9, 9]) == []


def test_item_at_and_is_complete_need_the_full_sequence(trie):
    assert trie.item_at([1, 2, 4]) == "b"
    assert trie.item_at([6]) == "d"
    assert trie.item_at([1, 2]) is None
    assert trie.item_at([1, 2, 4, 0]) is None
    assert trie.is_complete([1, 5])
    assert not trie.is_complete([1])
    assert trie.is_valid_prefix([1, 2]) and not trie.is_valid_prefix([2])


def test_len_contains_and_sequence(trie):
    assert len(trie) == 4
    assert "a" in trie and "z" not in trie
    assert trie.sequence("c") == (1, 5)
    assert sorted(trie) == ["a", "b", "c", "d"]


def test_terminal_at_internal_node(trie):
    trie.insert("e", [1, 2])  # "e" is a prefix of "a" and "b"
    assert trie.is_complete([1, 2])
    assert trie.item_at([1, 2]) == "e"
    assert trie.allowed_next([1, 2]) == [3, 4]
    trie.delete("a")
    trie.delete("b")
    assert trie.allowed_next([1, 2]) == []
    assert trie.item_at([1, 2]) == "e"
    trie.delete("e")
    assert trie.allowed_next([1]) == [5]
    assert not trie.is_valid_prefix([1, 2])


def test_insert_updates_cached_children(trie):
    assert trie.allowed_next([1]) == [2, 5]  # fills the cache
    trie.insert("f", [1, 0, 7])
    assert trie.allowed_next([1]) == [0, 2, 5]
    assert trie.allowed_next([1, 0]) == [7]


def test_delete_prunes_empty_branches(trie):
    trie.delete("c")
    assert trie.allowed_next([1]) == [2]
    trie.delete("d")
    assert trie.allowed_next([]) == [1]
    assert "d" not in trie and len(trie) == 2
    trie.delete("a")
    trie.delete("b")
    assert trie.allowed_next([]) == [] and len(trie) == 0


def test_sequence_owned_by_another_item_is_refused(trie):
    with pytest.raises(DuplicateSequenceError, match="'b'"):
        trie.insert("z", [1, 2, 4])
    assert "z" not in trie and trie.item_at([1, 2, 4]) == "b"


def test_reinsert_rules(trie):
    trie.insert("a", (1, 2, 3))  # same item, same sequence: no-op
    assert len(trie) == 4
    with pytest.raises(ValueError, match="already in the trie"):
        trie.insert("a", [7])
    with pytest.raises(ValueError, match="empty"):
        trie.insert("y", [])
    with pytest.raises(KeyError):
        trie.delete("missing")


def test_delete_then_reinsert_frees_the_sequence(trie):
    trie.delete("b")
    trie.insert("z", [1, 2, 4])
    assert trie.item_at([1, 2, 4]) == "z"


def test_count_under_counts_items_at_or_below(trie):
    assert [trie.count_under(p) for p in ([], [1], [1, 2], [1, 2, 3], [1, 5], [6])] == [4, 3, 2, 1, 1, 1]
    assert trie.count_under([9]) == 0 and trie.count_under([1, 2, 3, 4]) == 0


def test_count_under_follows_insert_and_delete(trie):
    trie.insert("e", [1, 2])  # terminal at an internal node counts at its own node
    trie.insert("e", [1, 2])  # no-op re-insert: counted once
    assert [trie.count_under(p) for p in ([], [1], [1, 2])] == [5, 4, 3]
    with pytest.raises(DuplicateSequenceError):
        trie.insert("z", [1, 2, 3])
    assert [trie.count_under(p) for p in ([], [1], [1, 2], [1, 2, 3])] == [5, 4, 3, 1]
    trie.delete("a")
    trie.delete("e")
    assert [trie.count_under(p) for p in ([], [1], [1, 2], [1, 2, 3])] == [3, 2, 1, 0]
    trie.insert("a", [1, 2, 3])
    assert [trie.count_under(p) for p in ([], [1], [1, 2], [1, 2, 3])] == [4, 3, 2, 1]


def test_dead_prefixes_are_those_with_every_item_excluded(trie):
    assert trie.dead_prefixes([]) == frozenset()
    assert trie.dead_prefixes({"a", "not-an-item"}) == {(1, 2, 3)}
    assert trie.dead_prefixes(["a", "b", "a"]) == {(1, 2, 3), (1, 2, 4), (1, 2)}
    assert trie.dead_prefixes({"a", "b", "c"}) == {(1, 2, 3), (1, 2, 4), (1, 2), (1, 5), (1,)}
    trie.insert("e", [1, 2])  # now (1, 2) still leads to e
    assert trie.dead_prefixes({"a", "b"}) == {(1, 2, 3), (1, 2, 4)}
