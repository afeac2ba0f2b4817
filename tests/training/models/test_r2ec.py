import pytest
import torch

from tests.r2ec_kit import make_r2ec_kit
from training.models.r2ec import R2ec, build_item_prompt_pieces, compute_similarity
from training.prompts import ANSWER, BOS


@pytest.fixture
def kit(one_torch_thread):
    return make_r2ec_kit()


def test_similarity_by_hand():
    user, items = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    plain = compute_similarity(user, items, normalize=False, temperature=1.0)
    assert torch.allclose(plain, torch.tensor([[2.0, 0.0, 1.0]]))
    # cosine / 0.5: 1/0.5, 0, (1/sqrt 2)/0.5
    assert torch.allclose(compute_similarity(user, items, normalize=True, temperature=0.5),
                          torch.tensor([[2.0, 0.0, 1.41421]]), atol=1e-5)


def test_item_prompts_are_the_item_text_ending_in_answer(kit):
    assert build_item_prompt_pieces("Film 7 (1995) Drama") == [BOS, "film", "7", "1995", "drama", ANSWER]
    vocab = kit.tokenizer.get_vocab()
    assert kit.model.item_prompts[6] == [vocab[t] for t in build_item_prompt_pieces(kit.catalog.texts()[6])]
    assert len({tuple(p) for p in kit.model.item_prompts}) == 12  # every item its own prompt


def test_rec_head_scores_every_item_with_the_documented_shapes(kit):
    model, d = kit.model, 32
    table = model.refresh_item_table()
    assert table.shape == (12, d) and model.table_refreshes == 1 and table.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(table, model.encode_items(range(12)), atol=1e-5)
        user = torch.randn(3, d)
        scores = model.score_all(user)  # hidden [B, d] x table [N, d] -> [B, N]
    assert scores.shape == (3, 12)
    assert torch.allclose(scores, compute_similarity(user, table, True, 0.02), atol=1e-5)
    prompts = [[1, 5, 6], [1, 5, 7, 8, 9]]
    for reasoning in (True, False):
        assert model.score_prompts(prompts, reasoning=reasoning, max_think_tokens=4).shape == (2, 12)


def test_user_state_is_the_hidden_state_at_answer(kit):
    model = kit.model
    prompts, completions = [[1, 5, 6, model.think_id], [1, 7, model.think_id]], []
    for thought, closed in (([20, 21], True), ([22, 23, 24], False)):
        completions.append(model.close_reasoning(thought, closed)[0])
    assert completions == [[20, 21, model.think_end_id, model.answer_id],
                           [22, 23, 24, model.think_end_id, model.answer_id]]
    with torch.no_grad():
        fwd = model.forward_rollouts(prompts, completions, [3, 3])
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            row = torch.tensor([p + c])
            hidden = model.hidden_states(row, torch.ones_like(row))[0]
            assert row[0, -1].item() == model.answer_id
            assert torch.allclose(fwd.user[i], hidden[-1], atol=1e-5)  # [d] at the <answer> position
    # actions: the sampled thought (+ </think> when the policy closed it); forced tokens carry no weight
    assert fwd.weights.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]
    assert fwd.logprobs.shape == (2, 5) and bool((fwd.logprobs[:, :3] < 0).all())


def test_wraps_an_hf_folder(kit, tmp_path):
    from training.models.policy import load_policy

    kit.model.lm.save_pretrained(tmp_path / "lm", safe_serialization=True)
    other = R2ec(load_policy(tmp_path / "lm"), kit.tokenizer, kit.catalog.texts())
    assert torch.allclose(other.refresh_item_table(), kit.model.refresh_item_table(), atol=1e-5)


def test_tokenizer_without_reasoning_tokens_is_refused(kit):
    from training.tokenization.builder import build_tokenizer

    with pytest.raises(ValueError, match="reasoning tokens"):
        R2ec(kit.model.lm, build_tokenizer(["<pad>", "<bos>", "<eos>", "<unk>"]), ["a"])
