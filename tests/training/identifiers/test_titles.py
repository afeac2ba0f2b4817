import pytest

from training.catalog import Catalog
from training.data.types import ItemInfo
from training.identifiers.atomic import AtomicScheme
from training.identifiers.base import build_scheme, load_scheme
from training.identifiers.titles import TitleScheme


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        [ItemInfo("1", "Heat", "1995"), ItemInfo("2", "Heat", "1986"), ItemInfo("3", "Heat and Dust", "1983")]
    )


def test_items_are_written_as_display_names(catalog):
    scheme = TitleScheme.build(catalog)
    assert scheme.name == "titles" and scheme.depth is None
    assert scheme.item_tokens("1") == ("Heat [1]",)
    assert scheme.item_text("2") == "Heat [2]"
    assert scheme.item_tokens("3") == ("Heat and Dust",)
    assert scheme.new_tokens() == []
    assert scheme.item_for_text(" Heat and Dust ") == "3"
    assert scheme.item_for_text("Heat") is None


def test_add_item_disambiguates_a_taken_title(catalog):
    scheme = TitleScheme.build(catalog)
    scheme.add_item("4", text="Heat and Dust")
    assert scheme.item_tokens("4") == ("Heat and Dust [4]",)
    scheme.remove_item("3")
    assert scheme.item_for_text("Heat and Dust") is None
    scheme.add_item("5", text="Heat and Dust")
    assert scheme.item_tokens("5") == ("Heat and Dust",)
    with pytest.raises(ValueError, match="non-empty"):
        scheme.add_item("6", text="  ")
    with pytest.raises(ValueError):
        scheme.add_item("5", text="Other")


def test_stats(catalog):
    stats = TitleScheme.build(catalog).stats()
    assert stats["n_items"] == 3 and stats["n_new_tokens"] == 0
    assert stats["max_chars"] == len("Heat and Dust")


def test_save_load_round_trip(tmp_path, catalog):
    scheme = build_scheme("titles", catalog)
    scheme.save(tmp_path)
    loaded = load_scheme(tmp_path)
    assert isinstance(loaded, TitleScheme)
    assert loaded.mapping() == scheme.mapping()
    with pytest.raises(ValueError, match="holds scheme 'titles'"):
        AtomicScheme.load(tmp_path)
