"""A small catalog with varied genres and years (the tiny fixture has one genre and one year per item)."""

from __future__ import annotations

import pytest

from training.catalog import Catalog
from training.data.types import ItemInfo, Sample

MOVIES = [
    ItemInfo("1", "Alien (1979)", "1979", ("Horror", "Sci-Fi")),
    ItemInfo("2", "Heat (1995)", "1995", ("Action", "Crime", "Thriller")),
    ItemInfo("3", "Toy Story (1995)", "1995", ("Animation", "Children's", "Comedy")),
    ItemInfo("4", "Fargo (1996)", "1996", ("Crime", "Drama", "Thriller")),
    ItemInfo("5", "Se7en (1995)", "1995", ("Crime", "Thriller")),
    ItemInfo("6", "Babe (1995)", "1995", ("Children's", "Comedy", "Drama")),
    ItemInfo("7", "Casino (1995)", "1995", ("Crime", "Drama")),
    ItemInfo("8", "Clueless (1995)", "1995", ("Comedy", "Romance")),
    ItemInfo("9", "Jaws (1975)", "1975", ("Action", "Horror")),
    ItemInfo("10", "Rob Roy (1995)", "1995", ("Drama", "Romance", "War")),
    ItemInfo("11", "Mystery Film (1994)", "1994", ("Crime", "Film-Noir", "Thriller")),
    ItemInfo("12", "Twin (1990)", "1990", ("Drama",)),
    ItemInfo("13", "Twin (1990)", "1990", ("Comedy",)),
    ItemInfo("14", "No Metadata", "", ()),
]
# Hand-computed over HISTORY (see test_programmatic.py): Crime 4, Thriller 3, Comedy 2, Drama 2, the rest 1.
HISTORY = ("1", "2", "4", "5", "7", "8", "3")


@pytest.fixture
def movie_catalog() -> Catalog:
    return Catalog(MOVIES)


@pytest.fixture
def movie_sample() -> Sample:
    """Target 6 (Babe), which the history-only recommendation (11) is not."""
    return Sample("u1:7", "u1", HISTORY, "6")
