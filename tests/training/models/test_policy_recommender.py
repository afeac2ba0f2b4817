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
    rec = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=5)
    plain = rec.rank(_samples(1), k=5)[0]
    filtered = rec.rank(_samples(1), k=5, exclude=[{plain[0], plain[1]}])[0]
    assert plain[0] not in filtered and plain[1] not in filtered
    assert filtered[:3] == plain[2:5]


def test_hf_generate_backend_agrees(tiny_policy, tiny_catalog):
    model, tokenizer, scheme = tiny_policy
    batched = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=6)
    hf = PolicyRecommender(model, tokenizer, scheme, tiny_catalog, beam_width=6, backend="hf_generate")
    assert batched.rank(_samples(), 6) == hf.rank(_samples(), 6)
