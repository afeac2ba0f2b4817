import numpy as np
import pytest

from training.eval.bootstrap import bootstrap_user_means, paired_bootstrap_by_user

rng = np.random.default_rng(1)
USERS = [f"u{i % 7}" for i in range(200)]


def test_identical_models_give_zero_interval():
    a = rng.random(200)
    out = paired_bootstrap_by_user(USERS, a, a.copy())
    assert out == {"mean_diff": 0.0, "lo": 0.0, "hi": 0.0}


def test_constant_shift():
    b = rng.random(200)
    out = paired_bootstrap_by_user(USERS, b + 0.1, b, n_resamples=200)
    assert out["mean_diff"] == pytest.approx(0.1)
    assert out["lo"] == pytest.approx(0.1) and out["hi"] == pytest.approx(0.1)


def test_two_users_hand_case():
    # user A: diffs 1, 1 (sum 2, count 2); user B: diff 0 (sum 0, count 1).
    # Draw 2 users: AA -> 4/4 = 1 (p 1/4), BB -> 0 (p 1/4), AB -> 2/3 (p 1/2).
    users = ["A", "A", "B"]
    a, b = np.array([1.0, 1.0, 0.0]), np.zeros(3)
    means = bootstrap_user_means(users, a - b, n_resamples=4000, seed=0)
    values, counts = np.unique(np.round(means, 9), return_counts=True)
    np.testing.assert_allclose(values, [0.0, 2 / 3, 1.0])
    np.testing.assert_allclose(counts / 4000, [0.25, 0.5, 0.25], atol=0.03)
    out = paired_bootstrap_by_user(users, a, b, n_resamples=4000)
    assert out["mean_diff"] == pytest.approx(2 / 3)
    assert out["lo"] == 0.0 and out["hi"] == 1.0


def test_deterministic_and_shape_checks():
    a, b = rng.random(200), rng.random(200)
    assert paired_bootstrap_by_user(USERS, a, b, seed=3) == paired_bootstrap_by_user(USERS, a, b, seed=3)
    with pytest.raises(ValueError):
        paired_bootstrap_by_user(USERS, a, b[:10])
