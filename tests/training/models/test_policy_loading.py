"""load_policy: the single-file fast path equals transformers' from_pretrained, and refuses a mismatched checkpoint."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from training.models.policy import load_policy


@pytest.fixture
def saved(tiny_policy, tmp_path):
    model, tokenizer, _ = tiny_policy
    model.save_pretrained(tmp_path / "policy", safe_serialization=True)
    return tmp_path / "policy"


def test_fast_path_equals_from_pretrained(saved):
    fast = load_policy(saved)
    reference = AutoModelForCausalLM.from_pretrained(str(saved), dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, 9, 7, 3, 2]])
    with torch.no_grad():
        assert torch.equal(fast(input_ids=ids).logits, reference(input_ids=ids).logits)
    assert fast.lm_head.weight.data_ptr() == fast.model.embed_tokens.weight.data_ptr()  # still tied
    assert not any(t.is_meta for t in [*fast.parameters(), *fast.buffers()])


def test_checkpoint_that_does_not_match_its_config_is_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["intermediate_size"] *= 2
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match its config"):
        load_policy(saved)
