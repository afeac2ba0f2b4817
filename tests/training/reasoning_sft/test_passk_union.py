"""Pass@K and the ranking of the union of K answers (training/reasoning_sft/passk.py), by hand."""

from __future__ import annotations

import pytest

from training.eval.metrics import per_sample_metrics
from training.reasoning_sft.passk import answers_of, best_logprobs, pass_at_k, rank_union

# Three CoTs of one sample; each beam: (item, log P(item | prompt, CoT)), best first.
BEAMS = [
    [("a", -1.0), ("b", -1.5), ("c", -3.0)],
    [("b", -0.5), ("a", -2.0), ("d", -2.5)],
    [("a", -1.2), ("e", -1.3), ("c", -2.0)],
]


@pytest.mark.timeout(5)
def test_answers_and_pass_at_k():
    assert answers_of(BEAMS) == ["a", "b", "a"]
    assert answers_of([[], [("x", -1.0)]]) == ["x"]
    assert pass_at_k(answers_of(BEAMS), "b") and not pass_at_k(answers_of(BEAMS), "e")


@pytest.mark.timeout(5)
def test_union_ranking_puts_the_answers_first_then_best_log_probability():
    # best log P: a -1.0, b -0.5, c -2.0, d -2.5, e -1.3; answers {a, b} first: b (-0.5), a (-1.0);
    # then e (-1.3), c (-2.0), d (-2.5) even though e is no CoT's answer
    assert best_logprobs(BEAMS) == {"a": -1.0, "b": -0.5, "c": -2.0, "d": -2.5, "e": -1.3}
    assert rank_union(BEAMS, 5) == ["b", "a", "e", "c", "d"]
    assert rank_union(BEAMS, 2) == ["b", "a"]
    assert rank_union(BEAMS[:1], 3) == ["a", "b", "c"]  # one CoT: its beam as is


@pytest.mark.timeout(5)
def test_answers_beat_higher_scored_runners_up_and_ties_keep_first_appearance():
    beams = [[("x", -3.0), ("y", -0.1)], [("z", -3.0), ("x", -4.0)]]
    assert rank_union(beams, 3) == ["x", "z", "y"]  # x and z tie at -3.0: x appeared first


@pytest.mark.timeout(5)
def test_the_union_heads_the_list_so_pass_at_k_reads_off_its_first_items():
    targets = ["b", "e", "a", "d"]
    answers = answers_of(BEAMS)
    ranked = [rank_union(BEAMS, 3) for _ in targets]  # K = 3 CoTs, rank(samples, K)
    union = len(set(answers))  # 2: two CoTs answered a
    passes = [pass_at_k(answers, t) for t in targets]
    assert passes == [True, False, True, False]
    assert [t in r[:union] for r, t in zip(ranked, targets, strict=True)] == passes
    # the free third slot goes to the best runner-up (e), so HR@3 counts e while Pass@3 does not
    assert list(per_sample_metrics(ranked, targets, ks=(3,))["hr@3"]) == [1.0, 1.0, 1.0, 0.0]
