import pytest

from training.cot.curriculum import insertion_probability, interleave, schedule_kinds


@pytest.mark.timeout(5)
def test_insertion_probability_matches_hand_computation():
    # p = min(1, 1.5 * (i / 10) * (4 / 10))
    assert insertion_probability(1, 10, 4) == pytest.approx(0.06)
    assert insertion_probability(5, 10, 4) == pytest.approx(0.30)
    assert insertion_probability(10, 10, 4) == pytest.approx(0.60)
    assert insertion_probability(10, 10, 4, gamma=1.0) == pytest.approx(0.40)
    assert insertion_probability(4, 10, 20) == 1.0  # 1.5 * 0.4 * 2 = 1.2, capped
    assert insertion_probability(3, 10, 0) == 0.0
    for bad in [(0, 10, 4), (11, 10, 4), (1, 0, 4)]:
        with pytest.raises(ValueError):
            insertion_probability(*bad)


@pytest.mark.timeout(5)
def test_every_batch_appears_once_per_epoch_in_stream_order():
    align, reason = [f"a{i}" for i in range(12)], [f"r{i}" for i in range(5)]
    for epoch in (1, 2, 3, 4):
        out = interleave(align, reason, epoch, seed=7)
        assert [b for k, b in out if k == "align"] == align and [b for k, b in out if k == "reason"] == reason
        assert all(b.startswith(k[0]) for k, b in out)
        assert interleave(align, reason, epoch, seed=7) == out  # deterministic


@pytest.mark.timeout(5)
def test_curriculum_epochs_insert_after_alignment_batches_and_append_the_rest():
    # p(i) = min(1, 1.5 * i/4 * 20/4) = 1 for every i: one reasoning batch after each alignment batch
    assert schedule_kinds(4, 20, epoch=1) == ["align", "reason"] * 4 + ["reason"] * 16
    # gamma 0: nothing inserted, all reasoning appended at the end of the epoch
    assert schedule_kinds(3, 2, epoch=2, gamma=0.0) == ["align"] * 3 + ["reason"] * 2
    assert schedule_kinds(0, 2, epoch=1) == ["reason", "reason"]
    for seed in range(20):
        kinds = schedule_kinds(10, 10, epoch=1, seed=seed)
        assert kinds[0] == "align"
        body = "".join(k[0] for k in kinds).rstrip("r")
        assert "rr" not in body  # at most one insertion per alignment batch before the tail


@pytest.mark.timeout(20)
def test_curriculum_follows_p_insert_on_average():
    # N_align = N_reason = 10: p = .15, .30, .45, .60, .75, .90, 1, 1, 1, 1 -> 7.15 inserted on average
    runs = [schedule_kinds(10, 10, epoch=1, seed=s) for s in range(2000)]
    first = sum(k[1] == "reason" for k in runs) / len(runs)
    assert first == pytest.approx(0.15, abs=0.03)
    # p(10) = 1, so every insertion (and no tail batch) directly follows an alignment batch
    mean_inserted = sum("".join(x[0] for x in k).count("ar") for k in runs) / len(runs)
    assert mean_inserted == pytest.approx(7.15, abs=0.1)


@pytest.mark.timeout(20)
def test_from_the_third_epoch_mixing_is_uniform():
    runs = [schedule_kinds(10, 10, epoch=3, seed=s) for s in range(2000)]
    for position in (0, 9, 19):
        share = sum(k[position] == "reason" for k in runs) / len(runs)
        assert share == pytest.approx(0.5, abs=0.05)
    assert schedule_kinds(10, 10, epoch=3, seed=1) != schedule_kinds(10, 10, epoch=4, seed=1)


@pytest.mark.timeout(5)
def test_epochs_are_numbered_from_one():
    with pytest.raises(ValueError, match="numbered from 1"):
        schedule_kinds(3, 3, epoch=0)
