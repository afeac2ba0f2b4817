"""Cold-start popularity: Pop-baseline counts when a bundle has them, catalog order otherwise."""

from __future__ import annotations

import json

import pytest

from serving.popularity import Popularity
from tests.serving.bundles import tiny_catalog

pytestmark = pytest.mark.timeout(10)


def test_counts_rank_first_then_catalog_order():
    pop = Popularity(tiny_catalog(), {"7": 5, "3": 5, "12": 9, "unknown": 100})
    items = pop.top(5)
    assert [i.item_id for i in items] == ["12", "3", "7", "1", "2"]  # ties by catalog index
    assert items[0].title == "Film 12" and items[0].score > items[1].score > items[2].score
    assert [i.item_id for i in pop.top(3, exclude={"12", "1"})] == ["3", "7", "2"]
    assert len(pop.top(50)) == 12


def test_from_bundles_reads_a_pop_bundle_or_falls_back(tmp_path):
    catalog = tiny_catalog()
    assert Popularity.from_bundles(catalog, [tmp_path / "none"]).source == "catalog_order"
    assert [i.item_id for i in Popularity.from_bundles(catalog, []).top(2)] == ["1", "2"]
    (tmp_path / "pop" / "model").mkdir(parents=True)
    (tmp_path / "pop" / "model" / "counts.json").write_text(json.dumps({"9": 3}))
    (tmp_path / "bad" / "model").mkdir(parents=True)
    (tmp_path / "bad" / "model" / "counts.json").write_text("[1, 2]")
    pop = Popularity.from_bundles(catalog, [tmp_path / "bad", tmp_path / "pop"])
    assert pop.source.endswith("counts.json") and pop.top(1)[0].item_id == "9"
