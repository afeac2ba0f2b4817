import pytest

import training.rewards  # noqa: F401  (registers every reward)
from training.rewards.format_reward import compute_direct_format_reward, compute_list_format_reward
from training.rewards.hit import compute_hit_reward
from training.rewards.lcs import compute_list_lcs_reward
from training.rewards.prefix import compute_prefix_reward
from training.rewards.rank import compute_rank_ndcg_reward
from training.rewards.registry import REWARDS, get_reward, register_reward


def test_every_reward_is_registered_under_its_name():
    assert get_reward("hit") is compute_hit_reward
    assert get_reward("rank_ndcg") is compute_rank_ndcg_reward
    assert get_reward("prefix") is compute_prefix_reward
    assert get_reward("list_lcs") is compute_list_lcs_reward
    assert get_reward("format_direct") is compute_direct_format_reward
    assert get_reward("format_list") is compute_list_format_reward


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown reward 'hits'") as err:
        get_reward("hits")
    for name in ("hit", "rank_ndcg", "prefix", "list_lcs", "format_direct", "format_list"):
        assert name in str(err.value)


def test_a_name_cannot_be_taken_twice():
    try:

        @register_reward("_test_dummy")
        def first(items):
            return [0.0 for _ in items]

        assert register_reward("_test_dummy")(first) is first  # re-registering the same function is harmless
        with pytest.raises(ValueError, match="already registered"):

            @register_reward("_test_dummy")
            def second(items):
                return [1.0 for _ in items]

        assert get_reward("_test_dummy") is first
    finally:
        REWARDS.pop("_test_dummy", None)
