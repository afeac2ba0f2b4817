import math

import pytest
import torch

from training.algorithms.rechead_losses import (
    build_candidates,
    compute_full_softmax_ce_loss,
    compute_sampled_ce_loss,
    sample_negatives,
)
from training.models.rechead import Rechead, compute_gate, fuse_user_vector, select_primary

N_ITEMS, TEXT_DIM, DIM = 7, 16, 8


def make_model(**kwargs) -> Rechead:
    torch.manual_seed(0)
    kwargs = {"dim": DIM, "n_heads": 2, "dropout": 0.0, **kwargs}
    return Rechead(torch.randn(N_ITEMS, TEXT_DIM), **kwargs).eval()


def make_inputs(batch: int = 4, parsed=None):
    g = torch.Generator().manual_seed(1)
    his, cot, ans = (torch.randn(batch, TEXT_DIM, generator=g) for _ in range(3))
    mask = torch.tensor(parsed) if parsed is not None else torch.ones(batch, dtype=torch.bool)
    return his, cot, ans, mask


@pytest.mark.timeout(30)
def test_output_shapes_and_item_matrix():
    model = make_model()
    users = model.encode_user(*make_inputs(batch=4))
    assert users.shape == (4, DIM)
    assert model.score_all(users).shape == (4, N_ITEMS)
    matrix = model.item_matrix()
    assert matrix.shape == (N_ITEMS, DIM) and matrix.dtype == torch.float32 and not matrix.requires_grad
    assert torch.allclose(model.score_all(users), users @ matrix.T, atol=1e-5)
    candidates = torch.tensor([[0, 3, 3], [6, 1, 2], [2, 2, 2], [5, 0, 4]])
    expected = model.score_all(users).gather(1, candidates)
    assert torch.allclose(model.score_candidates(users, candidates), expected, atol=1e-5)


@pytest.mark.timeout(30)
def test_mean_pooling_also_gives_user_vectors():
    assert make_model(pooling="mean").encode_user(*make_inputs(batch=3)).shape == (3, DIM)


@pytest.mark.timeout(30)
def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="gamma"):
        Rechead(torch.randn(N_ITEMS, TEXT_DIM), gamma=1.0)
    with pytest.raises(ValueError, match="pooling"):
        Rechead(torch.randn(N_ITEMS, TEXT_DIM), pooling="cls")


@pytest.mark.timeout(30)
def test_gate_by_hand():
    # gamma * sigmoid(logit - 0.5): 0.5 * sigmoid(0) = 0.25; 0.5 * sigmoid(1) = 0.5 * 0.7310586 = 0.3655293
    gate = compute_gate(torch.tensor([[0.5], [1.5]]), gamma=0.5)
    assert torch.allclose(gate, torch.tensor([[0.25], [0.3655293]]), atol=1e-6)
    # h_u = 0.25 * [2, -2] + [1, 1] = [1.5, 0.5]
    fused = fuse_user_vector(torch.tensor([[2.0, -2.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[0.25]]))
    assert torch.allclose(fused, torch.tensor([[1.5, 0.5]]))


@pytest.mark.timeout(30)
def test_module_gate_by_hand():
    model = Rechead(torch.randn(N_ITEMS, TEXT_DIM), dim=2, n_heads=1, gamma=0.5)
    with torch.no_grad():
        model.f_gate.weight.fill_(1.0)
        model.f_gate.bias.zero_()
    r_sel, r_rea = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    # f_gate([1, 0, 0, 2]) = 3 -> 0.5 * sigmoid(2.5) = 0.5 * 0.9241418 = 0.4620709
    gate = model.gate_for(r_sel, r_rea)
    assert torch.allclose(gate, torch.tensor([[0.4620709]]), atol=1e-6)
    # h_u = 0.4620709 * [0, 2] + [1, 0] = [1, 0.9241418]
    assert torch.allclose(fuse_user_vector(r_rea, r_sel, gate), torch.tensor([[1.0, 0.9241418]]), atol=1e-6)


@pytest.mark.timeout(30)
def test_gate_stays_inside_zero_gamma():
    enc = make_model(gamma=0.3).encode_user_parts(*make_inputs(batch=6))
    assert bool(((enc.gate > 0) & (enc.gate < 0.3)).all())


@pytest.mark.timeout(30)
def test_select_primary_switches_on_the_parse_mask():
    r_answer, r_history = torch.tensor([[1.0, 1.0], [2.0, 2.0]]), torch.tensor([[-1.0, -1.0], [-2.0, -2.0]])
    out = select_primary(r_answer, r_history, torch.tensor([True, False]))
    assert torch.equal(out, torch.tensor([[1.0, 1.0], [-2.0, -2.0]]))


@pytest.mark.timeout(30)
def test_unparsed_answers_are_ignored_and_parsed_ones_used():
    model = make_model()
    his, cot, ans, _ = make_inputs(batch=2)
    mask = torch.tensor([True, False])
    before = model.encode_user(his, cot, ans, mask)
    after = model.encode_user(his, cot, ans + 5.0, mask)
    assert not torch.allclose(before[0], after[0])  # parsed: the answer matters
    assert torch.allclose(before[1], after[1], atol=1e-6)  # unparsed: r_sel = r_x, the answer is unused
    enc = model.encode_user_parts(his, cot, ans, mask)
    assert torch.allclose(enc.primary[1], model.f_his(his[1:2])[0], atol=1e-6)
    assert torch.allclose(enc.primary[0], model.f_ans(ans[0:1])[0], atol=1e-6)


@pytest.mark.timeout(30)
def test_state_dict_round_trip_rebuilds_the_same_head():
    model = make_model()
    clone = Rechead(torch.zeros(N_ITEMS, TEXT_DIM), **{k: v for k, v in model.hparams.items()
                                                       if k not in ("n_items", "text_dim")}).eval()
    clone.load_state_dict(model.state_dict())
    inputs = make_inputs(batch=3)
    assert torch.allclose(clone.encode_user(*inputs), model.encode_user(*inputs))
    assert torch.allclose(clone.item_matrix(), model.item_matrix())


@pytest.mark.timeout(30)
def test_sampled_negatives_never_hit_the_target_and_are_seeded():
    targets = torch.tensor([0, 3, 6, 3])
    first = sample_negatives(targets, N_ITEMS, 50, torch.Generator().manual_seed(0))
    again = sample_negatives(targets, N_ITEMS, 50, torch.Generator().manual_seed(0))
    assert first.shape == (4, 50) and torch.equal(first, again)
    assert bool((first != targets[:, None]).all()) and int(first.min()) >= 0 and int(first.max()) < N_ITEMS
    assert set(first[1].tolist()) == {0, 1, 2, 4, 5, 6}  # 50 draws over 6 items cover them all here
    assert torch.equal(build_candidates(targets, first)[:, 0], targets)
    with pytest.raises(ValueError, match="at least 2 items"):
        sample_negatives(targets[:1] * 0, 1, 3)


@pytest.mark.timeout(30)
def test_sampled_ce_by_hand():
    # -log(e^2 / (e^2 + e^1 + e^0)) = log(1 + e^-1 + e^-2) = 0.4076059; uniform row: log 3 = 1.0986123
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert compute_sampled_ce_loss(scores).item() == pytest.approx((0.4076059 + math.log(3)) / 2, abs=1e-6)
    # tau = 2: scores [1, 0.5, 0] -> log(1 + e^-0.5 + e^-1) = 0.6802696
    assert compute_sampled_ce_loss(scores[:1], temperature=2.0).item() == pytest.approx(0.6802696, abs=1e-6)


@pytest.mark.timeout(30)
def test_full_softmax_ce_by_hand():
    scores = torch.tensor([[0.0, 1.0, 2.0]])
    assert compute_full_softmax_ce_loss(scores, torch.tensor([2])).item() == pytest.approx(0.4076059, abs=1e-6)
