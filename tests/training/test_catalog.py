"""Catalog: stable id order, display names for shared titles, save/load."""

from __future__ import annotations

import pytest

from training.catalog import Catalog, UnknownItemError, id_sort_key
from training.data.types import ItemInfo

ITEMS = [
    ItemInfo("10", "Sabrina", "1995", ("Comedy", "Romance")),
    ItemInfo("9", "Toy Story", "1995", ("Animation", "Children's", "Comedy")),
    ItemInfo("100", "Sabrina", "1954", ("Comedy",)),
    ItemInfo("B00A", "Leather Conditioner"),
    ItemInfo("2", "Café au lait", "1994"),
]


def test_id_sort_key_numeric_then_text():
    assert sorted(["10", "9", "b", "100", "a", "2"], key=id_sort_key) == ["2", "9", "10", "100", "a", "b"]


def test_index_order_is_numeric_id_order():
    cat = Catalog(ITEMS)
    assert cat.item_ids == ["2", "9", "10", "100", "B00A"]
    assert [cat.index_of(i) for i in ("2", "9", "10", "100", "B00A")] == [0, 1, 2, 3, 4]
    assert cat.id_at(2) == "10"
    assert len(cat) == 5
    assert Catalog(reversed(ITEMS)).item_ids == cat.item_ids  # input order does not matter


def test_duplicate_titles_get_the_id_in_their_display_name():
    cat = Catalog(ITEMS)
    assert cat.duplicate_titles == ["Sabrina"]
    assert cat.display_name("10") == "Sabrina [10]"
    assert cat.display_name("100") == "Sabrina [100]"
    assert cat.display_name("9") == "Toy Story"
    assert cat.info("10").title == "Sabrina"  # the raw title is untouched


def test_unknown_item():
    cat = Catalog(ITEMS)
    assert "9" in cat and "11" not in cat
    with pytest.raises(UnknownItemError, match="unknown item id '11'"):
        cat.index_of("11")
    with pytest.raises(UnknownItemError):
        cat.display_name("11")
    with pytest.raises(KeyError):  # UnknownItemError is a KeyError
        cat.info("11")


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="duplicate item ids"):
        Catalog([ItemInfo("1", "A"), ItemInfo("1", "B")])


def test_save_load_round_trip(tmp_path):
    cat = Catalog(ITEMS)
    cat.save(tmp_path / "catalog.json")
    loaded = Catalog.load(tmp_path / "catalog.json")
    assert loaded.items == cat.items
    assert loaded.item_ids == cat.item_ids
    assert loaded.display_name("100") == "Sabrina [100]"
    assert loaded.info("2").title == "Café au lait"
    assert isinstance(loaded.info("9").genres, tuple)


def test_item_text():
    toy_story = ItemInfo("9", "Toy Story", "1995", ("Animation", "Comedy"))
    assert toy_story.text == "Toy Story (1995) Animation, Comedy"
    assert ItemInfo("1", "Kolya", "1996").text == "Kolya (1996)"
    assert ItemInfo("B00A", "Conditioner", "", ("Beauty",)).text == "Conditioner Beauty"
    assert ItemInfo("B00A", "Conditioner").text == "Conditioner"
    assert Catalog(ITEMS).texts()[0] == "Café au lait (1994)"
