import json

import pytest

from benchmarks.common import per_sample_ndcg, policy_config
from benchmarks.quality import add_intervals, mean_of_seeds, seed_lines


def _predictions(path, ranks):
    """One sample per (user, rank): the target sits at `rank` of the list (None = missing)."""
    rows = []
    for i, (user, rank) in enumerate(ranks):
        ranked = [f"x{j}" for j in range(20)]
        if rank is not None:
            ranked[rank] = "t"
        rows.append({"sample_id": f"{user}:{i}", "user_id": user, "history": [], "target": "t", "ranked": ranked})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_per_sample_ndcg_hand_values(tmp_path):
    users, values = per_sample_ndcg(_predictions(tmp_path / "p.jsonl", [("a", 0), ("b", 2), ("c", None)]))
    assert users == ["a", "b", "c"]
    assert values == pytest.approx([1.0, 0.5, 0.0])


def test_intervals_against_sasrec_on_identical_samples(tmp_path):
    ranks_ref = [("a", 2), ("a", 2), ("b", 2), ("c", 2)]
    ranks_better = [("a", 0), ("a", 0), ("b", 0), ("c", 0)]
    rows = [
        {"name": "sasrec", "protocol": "temporal", "metrics": {"ndcg@10": 0.5}, "notes": "",
         "predictions": _predictions(tmp_path / "ref.jsonl", ranks_ref)},
        {"name": "sft", "protocol": "temporal", "metrics": {"ndcg@10": 1.0}, "notes": "",
         "predictions": _predictions(tmp_path / "sft.jsonl", ranks_better)},
    ]
    add_intervals(rows)
    assert rows[1]["ci95"]["ndcg@10"] == [0.5, 0.5]  # every sample gains exactly 1 - 0.5
    assert rows[1]["metrics"]["ratio_ndcg@10_vs_sasrec"] == pytest.approx(2.0)
    assert "ci95" not in rows[0]


def test_intervals_refuse_different_samples(tmp_path):
    rows = [
        {"name": "sasrec", "protocol": "loo", "metrics": {"ndcg@10": 0.5}, "notes": "",
         "predictions": _predictions(tmp_path / "ref.jsonl", [("a", 1)])},
        {"name": "pop", "protocol": "loo", "metrics": {"ndcg@10": 0.5}, "notes": "",
         "predictions": _predictions(tmp_path / "pop.jsonl", [("b", 1)])},
    ]
    with pytest.raises(RuntimeError, match="same samples"):
        add_intervals(rows)


def test_policy_run_names_carry_a_settings_hash():
    a = policy_config("default", "temporal", [])
    b = policy_config("default", "temporal", ["sft.max_epochs=3"])
    assert a.name.startswith("sft-temporal-") and a.name != b.name
    assert policy_config("default", "temporal", []).name == a.name


@pytest.mark.timeout(30)
def test_policy_run_names_ignore_the_settings_of_other_jobs():
    a = policy_config("default", "temporal", [])
    assert policy_config("default", "temporal", ["rl.steps=7", "rechead.dim=16", "device=cpu"]).name == a.name


@pytest.mark.timeout(30)
def test_mean_of_seeds_std_uses_every_seed_value():
    from benchmarks.quality import mean_of_seeds

    rows = [{"metrics": {"ndcg@10": v, "hr@10": 2 * v}, "seconds": {"train": 1.0}} for v in (0.06, 0.07, 0.08)]
    row = mean_of_seeds(rows)
    assert row["metrics"]["ndcg@10"] == pytest.approx(0.07)
    assert row["metrics"]["ndcg@10_std"] == pytest.approx((2 * 0.01**2 / 3) ** 0.5)  # population std by hand
    assert row["ndcg@10_per_seed"] == [0.06, 0.07, 0.08]


def test_seed_lines_give_mean_std_and_each_seed():
    runs = [{"name": "sft", "protocol": "loo", "metrics": {"ndcg@10": v, "hr@10": 2 * v},
             "seconds": {"train": 10.0}} for v in (0.04, 0.05, 0.06)]
    row = mean_of_seeds(runs)
    kept = {"name": "sasrec", "protocol": "loo", "metrics": {"ndcg@10": 0.07, "ndcg@10_std": 0.001}}
    no_seeds = {"name": "pop", "protocol": "loo", "metrics": {"ndcg@10": 0.01}}
    assert seed_lines([row, kept, no_seeds]) == [
        "- loo `sft`: 0.0500 ± 0.0082 (seeds 0.0400 / 0.0500 / 0.0600)",  # population std of 0.04/0.05/0.06
        "- loo `sasrec`: 0.0700 ± 0.0010",
    ]
