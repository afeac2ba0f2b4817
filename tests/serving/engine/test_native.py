"""The native direct engine on a tiny (untrained) policy bundle: exact scores, distinct unseen catalog items."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from serving.engine import DirectEngine, DirectQuery
from serving.engine.batcher import MicroBatcher
from serving.engine.native import NativeDirectEngine
from serving.errors import RequestInvalid
from tests.conftest import make_tiny_dataset, make_tiny_policy
from training.bundle import BundleError, write_bundle
from training.catalog import Catalog
from training.prompts import PROMPT_LAYOUT_VERSION

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.timeout(120)]
GENERATION = {"identifier_scheme": "sid", "prompt_layout": PROMPT_LAYOUT_VERSION, "max_history": 20,
              "beam_width": 4, "backend": "batched", "max_prompt_tokens": 480}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A policy bundle written the way `training.pipeline.policy_files` writes one, from the tiny policy."""
    catalog = Catalog(make_tiny_dataset().items.values())
    model, tokenizer, scheme = make_tiny_policy(catalog)

    def fill(tmp):
        catalog.save(tmp / "catalog.json")
        scheme.save(tmp / "identifiers")
        tokenizer.save_pretrained(tmp / "tokenizer")
        model.save_pretrained(tmp / "policy", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "policy")

    root = tmp_path_factory.mktemp("native") / "bundle"
    write_bundle(root, fill, "policy", "tiny", {"name": "tiny"}, {}, generation=GENERATION)
    return root


@pytest.fixture(scope="module")
def engine(bundle) -> NativeDirectEngine:
    return NativeDirectEngine.from_bundle(bundle, device="cpu")


def _exact_logprob(rec, sample, item) -> float:
    """log P(item | prompt) by teacher forcing."""
    prompt, ids = rec.prompt_ids(sample), rec.item_ids[item]
    with torch.no_grad():
        logits = rec.model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(logprobs[len(prompt) - 1 + j, t].item() for j, t in enumerate(ids))


def test_items_are_distinct_unseen_catalog_items_with_exact_log_probs(engine):
    from training.inference import build_request

    query = DirectQuery(("1", "2", "3"), k=5, user_id="u1")
    items = engine.recommend_batch([query])[0]
    ids = [i.item_id for i in items]
    assert len(ids) == 5 == len(set(ids)) and all(i in engine.catalog for i in ids)
    assert not {"1", "2", "3"} & set(ids)
    scores = [i.score for i in items]
    assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    sample = build_request(engine.catalog, query.history, user_id="u1")
    for item in items:
        assert item.score == pytest.approx(_exact_logprob(engine.recommender, sample, item.item_id), abs=1e-4)
        assert item.title == engine.catalog.info(item.item_id).title


def test_a_batch_answers_each_query_as_alone(engine):
    queries = [DirectQuery(("1", "2", "3"), 5), DirectQuery(("7",), 2), DirectQuery(("4", "9", "10", "11"), 6),
               DirectQuery(("5",), 3, exclude_seen=False)]
    together = engine.recommend_batch(queries)
    for query, got in zip(queries, together, strict=True):
        alone = engine.recommend_batch([query])[0]
        assert [i.item_id for i in got] == [i.item_id for i in alone]
        assert [i.score for i in got] == pytest.approx([i.score for i in alone], abs=1e-4)
        assert len(got) == query.k


def test_k_above_the_unseen_items_returns_all_of_them(engine):
    items = engine.recommend_batch([DirectQuery(tuple(str(i) for i in range(1, 10)), k=50)])[0]
    assert sorted(i.item_id for i in items) == ["10", "11", "12"]


def test_bad_queries_fail_alone(engine):
    out = engine.recommend_batch([DirectQuery((), 3), DirectQuery(("1", "nope"), 3), DirectQuery(("1",), 3),
                                  DirectQuery(("1",), 0)])
    assert isinstance(out[0], RequestInvalid) and "history is empty" in out[0].detail
    assert isinstance(out[1], RequestInvalid) and "unknown item" in out[1].detail
    assert len(out[2]) == 3
    assert isinstance(out[3], RequestInvalid)
    lenient = NativeDirectEngine(engine.recommender, drop_unknown=True)
    assert len(lenient.recommend_batch([DirectQuery(("1", "nope"), 3)])[0]) == 3


def test_describe_warm_and_protocol(engine, bundle):
    assert isinstance(engine, DirectEngine)
    engine.warm()
    facts = engine.describe()
    version = json.loads((bundle / "manifest.json").read_text())["bundle_version"]
    assert facts == {"engine": "native", "bundle": "tiny", "kind": "policy", "bundle_version": version,
                     "beam_width": 4, "n_items": 12, "max_history": 20, "device": "cpu"}
    json.dumps(facts)


def test_a_pinned_version_must_match(bundle):
    with pytest.raises(BundleError, match="pins 'deadbeef'"):
        NativeDirectEngine.from_bundle(bundle, expected_version="deadbeef")


def test_through_the_batcher_concurrent_queries_share_a_search_and_errors_stay_theirs(engine):
    calls = []

    def recommend(queries):
        calls.append(len(queries))
        return engine.recommend_batch(queries)

    async def main():
        batcher = MicroBatcher(recommend, max_batch_size=8, batch_wait_ms=50, max_queue=8)
        queries = [DirectQuery(("1", "2"), 3), DirectQuery(("nope",), 3), DirectQuery(("8",), 4)]
        out = await asyncio.gather(*(batcher.submit(q, timeout_s=30) for q in queries), return_exceptions=True)
        batcher.close()
        return out

    out = asyncio.run(main())
    assert calls == [3]
    assert len(out[0]) == 3 and isinstance(out[1], RequestInvalid) and len(out[2]) == 4
