import pytest

from training.identifiers.base import IdentifierScheme


class SpelledScheme(IdentifierScheme):
    """Test double: `text` "a b" writes an item as the tokens ("a", "b")."""

    name = "spelled"

    def __init__(self, items: dict[str, str]):
        super().__init__()
        for item_id, text in items.items():
            self.add_item(item_id, text=text)

    @classmethod
    def build(cls, catalog, embeddings=None, **options):
        raise NotImplementedError

    @property
    def depth(self) -> None:
        return None

    def new_tokens(self) -> list[str]:
        return []

    def stats(self) -> dict:
        return {}

    def add_item(self, item_id, embedding=None, text=None) -> None:
        self._assign(item_id, text.split())

    def _state(self) -> dict:
        return {}

    @classmethod
    def _from_state(cls, state, directory):
        raise NotImplementedError


@pytest.fixture
def scheme() -> SpelledScheme:
    return SpelledScheme({"x": "a b", "y": "a c", "z": "d"})


def test_holds_items_in_insertion_order(scheme):
    assert scheme.item_ids == ["x", "y", "z"] and len(scheme) == 3
    assert "y" in scheme and "w" not in scheme
    assert scheme.item_tokens("y") == ("a", "c")
    assert scheme.mapping() == {"x": ("a", "b"), "y": ("a", "c"), "z": ("d",)}


def test_unknown_item_raises_key_error_naming_it(scheme):
    with pytest.raises(KeyError, match="'w'"):
        scheme.item_tokens("w")
    with pytest.raises(KeyError, match="'w'"):
        scheme.remove_item("w")


def test_duplicate_item_is_refused(scheme):
    with pytest.raises(ValueError, match="'x' already has"):
        scheme.add_item("x", text="e")
    assert scheme.item_tokens("x") == ("a", "b") and scheme.item_for_tokens(["e"]) is None


def test_tokens_owned_by_another_item_are_refused(scheme):
    with pytest.raises(ValueError, match="taken by item 'y'"):
        scheme.add_item("w", text="a c")
    assert "w" not in scheme and scheme.item_for_tokens(["a", "c"]) == "y"


def test_reverse_lookup_needs_the_exact_sequence(scheme):
    assert scheme.item_for_tokens(("a", "b")) == "x"
    assert scheme.item_for_tokens(["d"]) == "z"
    assert scheme.item_for_tokens(["a"]) is None  # a prefix names no item
    assert scheme.item_for_tokens(["a", "b", "c"]) is None


def test_removed_identifier_is_free_and_item_can_return(scheme):
    scheme.remove_item("x")
    assert "x" not in scheme and scheme.item_for_tokens(["a", "b"]) is None
    scheme.add_item("w", text="a b")
    assert scheme.item_for_tokens(["a", "b"]) == "w"
    scheme.add_item("x", text="e")
    assert scheme.item_ids == ["y", "z", "w", "x"] and scheme.item_tokens("x") == ("e",)
