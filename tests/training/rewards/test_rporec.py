import math

import pytest
import torch

from training.rewards.registry import get_reward
from training.rewards.rporec import (
    compute_candidate_ndcg_reward,
    compute_clean_reward,
    compute_compression_reward,
    compute_entropy_reward,
    compute_format_reward,
    compute_rporec_reward,
    compute_similarity_reward,
    compute_token_entropy,
    high_entropy_token_mask,
    split_reasoning_output,
    top_count,
)

GOOD = "<think>likes noir</think><answer>Chinatown (1974)</answer>"
CHATTY = "Sure! <think>likes noir</think>\n<answer>Chinatown (1974)</answer>"


@pytest.mark.timeout(10)
def test_split_reasoning_output():
    assert split_reasoning_output(CHATTY) == ("likes noir", "Chinatown (1974)", "Sure! \n")
    assert split_reasoning_output("<think>a</think><answer> </answer>") is None


@pytest.mark.timeout(10)
def test_format_reward():
    completions = [
        GOOD,  # 1
        CHATTY,  # 1: extra text is r_clean's business
        "<answer>b</answer><think>a</think>",  # wrong order
        "<think>a</think>",  # no answer
        "<think>a</think><answer>  </answer>",  # empty answer
        "<think>a</think><think>b</think><answer>c</answer>",  # a tag twice
    ]
    assert compute_format_reward(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.timeout(10)
def test_clean_reward():
    # "Sure!" = 5 non-space characters outside: 1 - 5/100 = 0.95; kappa 10: 0.5; 150 characters: clipped to 0
    long_tail = GOOD + "x" * 150
    assert compute_clean_reward([GOOD, CHATTY, long_tail, "no tags"]) == pytest.approx([1.0, 0.95, 0.0, 0.0])
    assert compute_clean_reward([CHATTY], kappa=10) == pytest.approx([0.5])


@pytest.mark.timeout(10)
def test_ndcg_reward_over_the_candidate_set():
    scores = [[3.0, 1.0, 2.0], [2.0, 3.0, 1.0], [1.0, 2.0, 3.0], [1.0, 1.0, 0.0]]
    # ranks 0, 1, 2, 1 (a tie counts against v+): 1, 1/log2(3) = 0.6309298, 0 (rank 2 = k = cutoff), 0.6309298
    assert compute_candidate_ndcg_reward(scores) == pytest.approx([1.0, 0.6309298, 0.0, 0.6309298])
    # cutoff 3 keeps the last place: 1/log2(4) = 0.5
    assert compute_candidate_ndcg_reward(torch.tensor(scores[2:3]), cutoff=3) == pytest.approx([0.5])
    with pytest.raises(ValueError, match="1 \\+ k"):
        compute_candidate_ndcg_reward([[1.0]])


@pytest.mark.timeout(10)
def test_similarity_reward():
    cot = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    summary = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # cos 1, 0.7071, 0
    assert compute_similarity_reward(cot, summary, delta=0.7) == [1.0, 1.0, 0.0]
    assert compute_similarity_reward(cot, summary, delta=0.75) == [1.0, 0.0, 0.0]
    assert compute_similarity_reward(cot[:1], cot[:1], delta=1.0) == [0.0]  # strictly greater than delta


@pytest.mark.timeout(10)
def test_compression_reward():
    # 25/100 = 0.25; 80/50 clipped to 1; 10/10 = 1; empty CoT -> 0
    assert compute_compression_reward([100, 50, 10, 0], [25, 80, 10, 5]) == [0.25, 1.0, 1.0, 0.0]


@pytest.mark.timeout(10)
def test_top_count():
    assert [top_count(n) for n in (0, 1, 3, 5, 6, 10, 15)] == [0, 1, 1, 1, 2, 2, 3]


@pytest.mark.timeout(10)
def test_entropy_reward():
    five = [0.1, 0.2, 0.3, 0.4, 1.0]  # top 1 of 5: 1.0; mean 0.4 -> 0.6
    ten = [0.1 * i for i in range(10)]  # top 2: (0.9 + 0.8)/2 = 0.85; mean 0.45 -> 0.4
    flat = [0.5] * 4  # no salient token -> 0
    assert compute_entropy_reward([five, ten, flat, []]) == pytest.approx([0.6, 0.4, 0.0, 0.0])


@pytest.mark.timeout(10)
def test_total_reward_eq7():
    terms = {"fmt": [1.0, 1.0, 0.0], "clean": [0.5, 1.0, 1.0], "ndcg": [1.0, 0.5, 1.0],
             "sim": [1.0, 0.0, 1.0], "comp": [0.25, 1.0, 1.0], "ent": [0.1, 0.2, 0.3]}
    # 1 * (1 + 0.5 + 1 + 1 + 0.25 + 0.1) = 3.85; 1 + 1 + 0.5 + 0 + 1 + 0.2 = 3.7; r_fmt = 0 -> 0
    assert compute_rporec_reward(terms) == pytest.approx([3.85, 3.7, 0.0])
    no_ent = {name: values for name, values in terms.items() if name != "ent"}
    # alpha_clean = 2, alpha_ent = 0 (the -ent ablation): 1 + 1 + 1 + 1 + 0.25 = 4.25; 1 + 2 + 0.5 + 0 + 1 = 4.5
    assert compute_rporec_reward(no_ent, {"clean": 2.0, "ent": 0.0}) == pytest.approx([4.25, 4.5, 0.0])
    with pytest.raises(ValueError, match="missing reward terms"):
        compute_rporec_reward(no_ent)
    with pytest.raises(ValueError, match="unknown reward terms"):
        compute_rporec_reward(terms, {"format": 1.0})


@pytest.mark.timeout(10)
def test_token_entropy_eq11():
    probs = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    # 0.5 ln 2 + 2 * 0.25 ln 4 = 1.0397208; uniform over 3: ln 3 = 1.0986123
    assert torch.allclose(compute_token_entropy(probs.log()), torch.tensor([1.0397208, math.log(3)]), atol=1e-6)


@pytest.mark.timeout(10)
def test_high_entropy_mask_keeps_the_batch_top_20_percent():
    entropies = torch.tensor([[0.1, 0.9, 0.5, 0.2, 0.3], [0.8, 0.4, 0.7, 5.0, 5.0]])
    live = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    # 8 live tokens -> ceil(1.6) = 2 kept: 0.9 and 0.8; the padded 5.0s never count
    expected = torch.tensor([[False, True, False, False, False], [True, False, False, False, False]])
    assert torch.equal(high_entropy_token_mask(entropies, live), expected)
    ties = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]])  # top 1 of 5, threshold 1.0: all tied tokens kept
    assert high_entropy_token_mask(ties, torch.ones(1, 5)).tolist() == [[True, True, True, False, False]]
    assert not high_entropy_token_mask(entropies, torch.zeros(2, 5)).any()


@pytest.mark.timeout(10)
def test_rewards_are_registered():
    assert get_reward("rporec_fmt") is compute_format_reward
    assert get_reward("rporec_ndcg") is compute_candidate_ndcg_reward
    assert get_reward("rporec") is compute_rporec_reward
