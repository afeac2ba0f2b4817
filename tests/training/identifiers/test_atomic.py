import pytest

from training.catalog import Catalog
from training.data.types import ItemInfo
from training.identifiers.atomic import AtomicScheme, atomic_token
from training.identifiers.base import build_scheme, load_scheme


@pytest.fixture
def catalog() -> Catalog:
    return Catalog([ItemInfo("10", "Ten"), ItemInfo("2", "Two"), ItemInfo("x7", "Seven")])


def test_one_token_per_item_in_catalog_order(catalog):
    scheme = AtomicScheme.build(catalog)
    assert scheme.name == "atomic" and scheme.depth == 1
    assert scheme.item_tokens("10") == ("<i_10>",)
    assert scheme.item_text("x7") == "<i_x7>"
    assert scheme.new_tokens() == ["<i_2>", "<i_10>", "<i_x7>"]
    assert scheme.mapping()["2"] == ("<i_2>",)
    assert scheme.stats()["n_new_tokens"] == 3


def test_add_and_remove_items(catalog):
    scheme = AtomicScheme.build(catalog)
    scheme.add_item("99")
    assert scheme.new_tokens()[-1] == "<i_99>" and "99" in scheme
    scheme.remove_item("10")
    assert "10" not in scheme and len(scheme) == 3
    with pytest.raises(KeyError):
        scheme.item_tokens("10")
    with pytest.raises(ValueError):
        scheme.add_item("2")


def test_unsafe_ids_are_refused():
    with pytest.raises(ValueError):
        atomic_token("a b")
    with pytest.raises(ValueError):
        atomic_token("<x>")


def test_save_load_round_trip(tmp_path, catalog):
    scheme = build_scheme("atomic", catalog)
    scheme.save(tmp_path / "ids")
    loaded = load_scheme(tmp_path / "ids")
    assert isinstance(loaded, AtomicScheme)
    assert loaded.mapping() == scheme.mapping()
    assert loaded.new_tokens() == scheme.new_tokens()
    assert AtomicScheme.load(tmp_path / "ids").item_ids == ["2", "10", "x7"]


def test_load_without_scheme_file_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="scheme.json"):
        load_scheme(tmp_path)
