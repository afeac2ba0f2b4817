import torch

from tests.r2ec_kit import make_r2ec_kit
from training.rollout.reasoning_sampling import draw_top_k, sample_reasoning


def test_top_k_keeps_only_the_k_largest_logits():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).repeat(200, 1)
    g = torch.Generator().manual_seed(0)
    assert set(draw_top_k(logits, 1.5, 2, g).tolist()) == {1, 3}
    assert draw_top_k(logits, 0.0, 0).tolist() == [1] * 200  # temperature 0: greedy
    assert set(draw_top_k(logits, 50.0, 0, g).tolist()) == {0, 1, 2, 3}  # no cut, flat at a high temperature


def test_sampling_never_writes_banned_tokens_and_stops_at_think_end(one_torch_thread):
    model = make_r2ec_kit().model
    g = torch.Generator().manual_seed(0)
    groups = sample_reasoning(model.lm, [[1, 5, model.think_id], [1, 6, 7, model.think_id]], 3, model.think_end_id,
                              model.pad_id, model.banned_ids, max_new_tokens=8, temperature=1.5, top_k=200,
                              generator=g)
    assert [len(g) for g in groups] == [3, 3]
    for tokens, closed in (t for group in groups for t in group):
        assert not set(tokens) & set(model.banned_ids) and model.think_end_id not in tokens
        assert len(tokens) <= 8 and (closed or len(tokens) == 8)
    stopped = sample_reasoning(model.lm, [[1, 5, model.think_id]], 1, model.think_end_id, model.pad_id,
                               max_new_tokens=8, temperature=1.0, top_k=1)  # greedy via top-1
    assert stopped == sample_reasoning(model.lm, [[1, 5, model.think_id]], 1, model.think_end_id, model.pad_id,
                                       max_new_tokens=8, temperature=0.0)


def test_a_left_padded_prompt_sees_the_logits_it_sees_alone(one_torch_thread, monkeypatch):
    """Left padding in a batch changes nothing for the short prompt (mask and mask-based position ids)."""
    import training.rollout.reasoning_sampling as sampling

    model = make_r2ec_kit().model
    seen = []

    def recording(logits, *args):
        seen.append(logits.clone())
        return draw_top_k(logits, *args)

    monkeypatch.setattr(sampling, "draw_top_k", recording)
    short, long = [1, 5, model.think_id], [1, 6, 7, 8, 9, 10, 11, model.think_id]
    kwargs = dict(banned=model.banned_ids, max_new_tokens=5, temperature=0.0, top_k=0)
    alone = sample_reasoning(model.lm, [short], 1, model.think_end_id, model.pad_id, **kwargs)
    alone_logits, seen[:] = list(seen), []
    batched = sample_reasoning(model.lm, [long, short], 1, model.think_end_id, model.pad_id, **kwargs)
    assert batched[1] == alone[0]
    for one, two in zip(alone_logits, seen, strict=True):
        finite = torch.isfinite(one[0])
        assert torch.allclose(one[0][finite], two[1][finite], atol=1e-4)
