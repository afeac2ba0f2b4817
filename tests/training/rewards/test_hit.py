from training.rewards.hit import compute_hit_reward


def test_hit_is_one_exactly_on_the_target():
    # target "42": samples 0 and 2 are the target -> 1.0; "420" and "4" share text but are other items -> 0.0
    assert compute_hit_reward(["42", "420", "42", "4"], "42") == [1.0, 0.0, 1.0, 0.0]


def test_hit_compares_ids_not_text():
    # " 42" (padded) and "042" are not the item "42"
    assert compute_hit_reward([" 42", "042"], "42") == [0.0, 0.0]


def test_hit_target_absent_and_empty_group():
    assert compute_hit_reward(["1", "2", "3"], "9") == [0.0, 0.0, 0.0]
    assert compute_hit_reward([], "9") == []
