import pytest
import torch

from shopseq.config import load_config

torch.set_num_threads(1)


@pytest.mark.parametrize(("start_competes", "best_epoch"), [(True, 0), (False, 1)])
def test_fit_epochs_keeps_the_start_only_when_it_competes(start_competes, best_epoch):
    from torch import nn

    from shopseq.train.finetune_loop import fit_epochs

    model = nn.Linear(2, 1)
    scores = iter([0.9, 0.6, 0.5])  # the start scores best; training only hurts
    weights = []

    def validate() -> float:
        weights.append(model.weight.detach().clone())
        return next(scores)

    ft = load_config(None, ["finetune.epochs=2", "finetune.patience=5"]).finetune
    x = torch.ones(4, 2)
    fit = fit_epochs(
        model, ft, lambda: [x], lambda b: model(b).square().mean(), validate, False, start_competes
    )
    assert fit["best_epoch"] == best_epoch
    assert torch.equal(model.weight, weights[best_epoch])
