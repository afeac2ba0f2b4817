"""The shared-prompt Qwen3 forward of the beam search against the transformers model: same logits with left padding,
through beam re-indexing, and the same top items; used only where it applies."""

from __future__ import annotations

import pytest
import torch

from training.models.lean_decoder import LeanQwen3, lean_supported
from training.models.policy_recommender import build_item_trie
from training.padding import pad_rows
from training.rollout.beam import TrieBeamSearch, _HFForward, _LeanForward

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def history_prompts(tiny_policy) -> list[list[int]]:
    """Prompts of different lengths (so left padding matters) over the tiny policy's SIDs."""
    _, tokenizer, scheme = tiny_policy
    histories = [["1", "2", "3"], ["7"], ["4", "4", "9", "10", "11"]]
    return [tokenizer.convert_tokens_to_ids(["<bos>", "<hist>"] + [t for i in h for t in scheme.item_tokens(i)])
            for h in histories]


def test_prefill_logits_equal_the_transformers_model_with_left_padding(tiny_policy, history_prompts):
    model, tokenizer, _ = tiny_policy
    ids, attention = pad_rows(history_prompts, tokenizer.pad_token_id)
    with torch.inference_mode():
        ours, cache = LeanQwen3(model.eval()).prefill(ids, attention.bool())
        theirs = model(input_ids=ids, attention_mask=attention).logits[:, -1]
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert cache.length == ids.shape[1] and cache.keys[0].shape[0] == len(history_prompts)


def test_steps_through_reordered_beams_equal_the_transformers_cache(tiny_policy, history_prompts):
    model, tokenizer, _ = tiny_policy
    ids, attention = pad_rows(history_prompts, tokenizer.pad_token_id)
    n, width = len(history_prompts), 3
    # level 1: every prompt's 3 beams come from the prompt itself; level 2: beams swap and repeat parents
    parents = [torch.arange(n).repeat_interleave(width), torch.tensor([2, 0, 0, 3, 5, 4, 8, 8, 6])]
    tokens = [torch.tensor([5, 6, 7] * n), torch.tensor([8, 9, 10, 11, 5, 6, 7, 8, 9])]
    with torch.inference_mode():
        hf, lean = _HFForward(model.eval()), _LeanForward(model)
        assert torch.allclose(hf.prefill(ids, attention), lean.prefill(ids, attention), atol=1e-5)
        for parent, token in zip(parents, tokens, strict=True):
            assert torch.allclose(hf.step(parent, token), lean.step(parent, token), atol=1e-5)


def test_top_items_equal_with_and_without_the_lean_forward(tiny_policy, history_prompts):
    model, tokenizer, scheme = tiny_policy
    trie, _ = build_item_trie(scheme, tokenizer)
    exclude = [{"1", "2"}, set(), {"4", "9", "10"}]
    results = []
    for lean in (True, False):
        search = TrieBeamSearch(model.eval(), trie, scheme.depth, tokenizer.pad_token_id, beam_width=4, lean=lean)
        results.append(search.top_items(history_prompts, 4, exclude))
    for ours, theirs in zip(*results, strict=True):
        assert [i for i, _ in ours] == [i for i, _ in theirs]
        assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-5)


def test_lean_applies_to_plain_qwen3_only(tiny_policy):
    model, _, _ = tiny_policy
    assert lean_supported(model.eval())

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = model.config

    assert not lean_supported(Wrapped())
    sliding = model.config.use_sliding_window
    try:
        model.config.use_sliding_window = True
        assert not lean_supported(model)
    finally:
        model.config.use_sliding_window = sliding
