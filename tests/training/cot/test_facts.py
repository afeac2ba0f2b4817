import pytest

from training.cot.facts import compute_history_facts, count_genres, denoise_history, era_of, median_low, parse_year
from training.data.types import ItemInfo


@pytest.mark.timeout(5)
def test_small_helpers():
    assert (parse_year("1995"), parse_year("2019-05-01"), parse_year(""), parse_year("n/a")) == (1995, 2019, None, None)
    assert (era_of(1995), era_of(2000), era_of(None)) == ("1990s", "2000s", None)
    assert (median_low([1996, 1979, 1995, 1990]), median_low([3]), median_low([])) == (1990, 3, None)
    infos = [ItemInfo("1", "a", genres=("Drama", "Drama")), ItemInfo("2", "b", genres=("Comedy", "Drama"))]
    assert list(count_genres(infos).items()) == [("Drama", 2), ("Comedy", 1)]  # a repeated genre counts once


@pytest.mark.timeout(5)
def test_history_facts_by_hand(movie_catalog):
    # history 2,4,5,7,3,8,6: Crime 4 (2,4,5,7); last five 5,7,3,8,6: Comedy 3 (3,8,6) beats Crime 2
    facts = compute_history_facts(("2", "4", "5", "7", "3", "8", "6"), movie_catalog)
    assert facts.top_genres == ("Crime", "Comedy", "Drama") and facts.intent_genre == "Comedy"
    assert facts.recent_genre_counts["Comedy"] == 3 and facts.recent_genre_counts["Crime"] == 2
    assert facts.share("Crime") == pytest.approx(4 / 7) and facts.recent_share("Comedy") == pytest.approx(3 / 5)
    assert (facts.year_min, facts.year_max, facts.year_median, facts.era) == (1995, 1996, 1995, "1990s")
    with pytest.raises(ValueError):
        compute_history_facts(("1",), movie_catalog, recent=0)


@pytest.mark.timeout(5)
def test_denoise_keeps_order_and_everything_without_genre_data(movie_catalog):
    assert denoise_history(("1", "9", "8", "14"), movie_catalog, ("Horror",)) == ("1", "9")
    assert denoise_history(("14", "1"), movie_catalog, ()) == ("14", "1")
