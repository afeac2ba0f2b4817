import torch

from training.trainers.weights import BestWeights


def test_best_weights_keeps_the_best_copy_counts_worse_evaluations_and_restores():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    best = BestWeights(model, metric=0.5)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert best.offer(0.7, step=10) and (best.metric, best.step, best.worse) == (0.7, 10, 0)
    with torch.no_grad():
        model.weight.fill_(3.0)
    assert not best.offer(0.7, step=20) and not best.offer(0.6, step=30) and best.worse == 2
    best.restore()
    assert torch.equal(model.weight, torch.full((1, 2), 2.0)) and best.step == 10


def test_without_a_start_metric_the_first_offer_is_the_best_and_restore_waits_for_it():
    model = torch.nn.Linear(2, 1)
    before = model.weight.detach().clone()
    best = BestWeights(model)
    best.restore()  # nothing recorded: the weights stay
    assert torch.equal(model.weight, before) and best.metric is None
    assert best.offer(-1.0, step=1) and best.metric == -1.0
