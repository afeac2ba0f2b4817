import numpy as np
import pytest

from training.identifiers.kmeans import assign_balanced, kmeans, squared_distances


def test_squared_distances_by_hand():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    c = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert np.allclose(squared_distances(x, c), [[0.0, 1.0], [25.0, 20.0]])


def test_assign_balanced_by_hand():
    # all three prefer cluster 0 (cap 2): the two closest stay, the third moves to cluster 1
    dist = np.array([[0.0, 5.0], [2.0, 5.0], [1.0, 5.0], [9.0, 0.0]])
    assert assign_balanced(dist, cap=2).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError):
        assign_balanced(dist, cap=1)


def test_kmeans_recovers_planted_clusters_and_is_deterministic():
    rng = np.random.default_rng(1)
    centers = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    x = np.repeat(centers, 20, axis=0) + rng.normal(scale=0.1, size=(60, 2))
    c1, a1 = kmeans(x, 3, seed=7)
    c2, a2 = kmeans(x, 3, seed=7)
    assert np.array_equal(a1, a2) and np.array_equal(c1, c2)
    groups = a1.reshape(3, 20)
    assert all(len(set(g)) == 1 for g in groups) and len({g[0] for g in groups}) == 3


def test_balanced_kmeans_respects_the_cap():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(scale=0.1, size=(8, 2)), rng.normal(loc=5.0, scale=0.1, size=(2, 2))])
    _, plain = kmeans(x, 2, seed=0)
    assert sorted(np.bincount(plain).tolist()) == [2, 8]
    _, balanced = kmeans(x, 2, seed=0, balanced=True)
    assert np.bincount(balanced).tolist() == [5, 5]
    assert len(set(balanced[8:])) == 1  # the far pair stays together


def test_k_larger_than_n_is_refused():
    with pytest.raises(ValueError):
        kmeans(np.zeros((2, 2)), 3)
