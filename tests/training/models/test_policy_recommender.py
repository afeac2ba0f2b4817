import pytest

from training.data.types import Sample
from training.eval.metrics import invalid_rate
from training.models.policy_recommender import PolicyRecommender


def _samples(n=6):
    return [Sample(f"u{i}:3", f"u{i}", (str(1 + i % 12), str(1 + (i + 1) % 12), "not-an-item"), "5")
            for i in range(n)]


def test_rank_returns_only_catalog_items_invalid_rate_zero(tiny_policy, tiny_catalog):
    model, tokenizer, scheme = tiny_policy
    rec = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=10)
    ranked = rec.rank(_samples(), k=10)
    assert all(len(r) == 10 for r in ranked)
    assert invalid_rate(ranked, tiny_catalog, 10) == 0.0


def test_rank_excludes_seen_items(tiny_policy, tiny_catalog):
    model, tokenizer, scheme = tiny_policy
    rec = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=12)  # full width: exact
    plain = rec.rank(_samples(1), k=7)[0]
    filtered = rec.rank(_samples(1), k=5, exclude=[{plain[0], plain[1], "not-an-item"}])[0]
    assert filtered == plain[2:7]


@pytest.mark.parametrize("backend", ["batched", "hf_generate"])
def test_rank_returns_k_unseen_items_for_users_with_a_long_past(tiny_policy, tiny_catalog, backend):
    model, tokenizer, scheme = tiny_policy
    rec = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=2, backend=backend)
    seen = [set(tiny_catalog.item_ids[i:i + 9]) for i in range(4)]  # 9 of 12 items seen
    ranked = rec.rank(_samples(4), k=3, exclude=seen)
    assert [len(set(r)) for r in ranked] == [3] * 4
    assert all(not set(r) & s for r, s in zip(ranked, seen, strict=True))


def test_k_above_catalog_size_returns_every_item(tiny_policy, tiny_catalog):
    model, tokenizer, scheme = tiny_policy
    rec = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=4)
    assert [sorted(r) for r in rec.rank(_samples(2), k=50)] == [sorted(tiny_catalog.item_ids)] * 2
    assert [len(r) for r in rec.rank(_samples(2), k=50, exclude=[{"1"}, set()])] == [11, 12]


def test_hf_generate_backend_agrees(tiny_policy, tiny_catalog):
    model, tokenizer, scheme = tiny_policy
    batched = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=6)
    hf = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=6, backend="hf_generate")
    assert batched.rank(_samples(), 6) == hf.rank(_samples(), 6)
