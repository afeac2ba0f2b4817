"""History checks: unknown ids in a request are refused by name; stored histories are filtered."""

from __future__ import annotations

import pytest

from serving.errors import RequestInvalid
from serving.items import known_items, refuse_unknown_items, title_of, unknown_items
from tests.serving.bundles import tiny_catalog

pytestmark = pytest.mark.timeout(10)


def test_unknown_ids_are_named_once_in_order():
    catalog = tiny_catalog()
    assert unknown_items(catalog, ["1", "b", "a", "b"]) == ["b", "a"]
    refuse_unknown_items(catalog, ["1", "2"])
    with pytest.raises(RequestInvalid, match="2 unknown item id\\(s\\) in the history: 'b', 'a'$"):
        refuse_unknown_items(catalog, ["1", "b", "a"])
    with pytest.raises(RequestInvalid, match="and 5 more$"):
        refuse_unknown_items(catalog, [f"x{i}" for i in range(15)])


def test_known_items_and_titles():
    catalog = tiny_catalog()
    assert known_items(catalog, ["1", "zz", "3"]) == ("1", "3")
    assert (title_of(catalog, "3"), title_of(catalog, "new")) == ("Film 3", "new")
