import pytest

from training.catalog import Catalog
from training.cot.facts import compute_history_facts
from training.cot.recommend import ERA_BONUS, GenreIndex, genre_weight, score_item
from training.data.types import ItemInfo


@pytest.mark.timeout(5)
def test_score_by_hand(movie_catalog):
    facts = compute_history_facts(("1", "2", "4", "5", "7", "8", "3"), movie_catalog)
    # w(Crime) = (4/7 + 3/5) / 2 = 0.585714; w(Action) = (1/7 + 0/5) / 2 = 0.071429
    assert genre_weight(facts, "Crime") == pytest.approx(0.585714, abs=1e-6)
    assert genre_weight(facts, "Action") == pytest.approx(0.071429, abs=1e-6)
    # Babe: Children's (1/7+1/5)/2 + Comedy (2/7+2/5)/2 + Drama (2/7+2/5)/2 = 0.857143, + era bonus 0.5
    assert score_item(facts, ("Children's", "Comedy", "Drama"), 1995) == pytest.approx(1.357143, abs=1e-6)
    assert score_item(facts, ("Action", "Horror"), 1975) == pytest.approx(0.142857, abs=1e-6)  # 20 years: no bonus
    assert score_item(facts, (), 2000) == ERA_BONUS and score_item(facts, (), None) == 0.0


@pytest.mark.timeout(5)
def test_ties_go_to_catalog_order_and_a_full_history_gives_none():
    catalog = Catalog([ItemInfo(str(i), f"T{i}", "2000", ("Drama",)) for i in range(1, 5)])
    index = GenreIndex.build(catalog)
    facts = compute_history_facts(("3",), catalog)
    assert index.recommend(facts, exclude={"3"}) == ("1", pytest.approx(1.5))
    assert index.recommend(facts, exclude={"1", "3"})[0] == "2"
    assert index.recommend(facts, exclude={"1", "2", "3", "4", "unknown"}) is None
