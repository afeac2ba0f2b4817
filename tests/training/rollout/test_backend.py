import copy

import torch

from training.models.policy_recommender import build_item_trie
from training.rollout.backend import BatchedTrieEngine, RolloutEngine


def test_engine_samples_ranks_and_syncs_weights_exactly(tiny_policy, history_prompts):
    model, tokenizer, scheme = tiny_policy
    trie, _ = build_item_trie(scheme, tokenizer)
    engine_model = copy.deepcopy(model).eval()
    engine: RolloutEngine = BatchedTrieEngine(engine_model, trie, scheme.depth, tokenizer.pad_token_id, 5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    before = engine.top_items(history_prompts, 3)
    engine.sync_weights(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(engine_model.state_dict().values(), model.state_dict().values(),
                                                 strict=True))
    after = engine.top_items(history_prompts, 3)
    reference = BatchedTrieEngine(model.eval(), trie, scheme.depth, tokenizer.pad_token_id, 5).top_items(
        history_prompts, 3)
    assert after == reference and after != before
    groups = engine.sample(history_prompts, 4, generator=torch.Generator().manual_seed(0))
    assert [len(g) for g in groups] == [4, 4, 4] and all(c.item in trie for g in groups for c in g)
