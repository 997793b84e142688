import pytest
import torch
from torch import nn

from shopseq.models.dropout import RandDropout, use_rand_dropout


def test_drops_share_p_and_rescales_the_kept_values():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    out = RandDropout(0.3).train()(x)
    assert out.unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)  # expectation kept


def test_gradient_flows_through_kept_positions_only():
    torch.manual_seed(0)
    x = torch.randn(64, 8, requires_grad=True)
    out = RandDropout(0.5).train()(x)
    out.sum().backward()
    kept = out != 0
    assert torch.equal(x.grad[kept], torch.full_like(x.grad[kept], 2.0))
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))


def test_identity_in_eval_mode_and_at_p_0_and_zero_at_p_1():
    x = torch.randn(5, 3)
    assert torch.equal(RandDropout(0.5).eval()(x), x)
    assert torch.equal(RandDropout(0.0).train()(x), x)
    assert torch.equal(RandDropout(1.0).train()(x), torch.zeros_like(x))


def test_same_seed_same_mask():
    x = torch.randn(32, 16)
    torch.manual_seed(3)
    a = RandDropout(0.5).train()(x)
    torch.manual_seed(3)
    b = RandDropout(0.5).train()(x)
    assert torch.equal(a, b)


def test_use_rand_dropout_replaces_every_plain_dropout_keeping_p():
    model = nn.Sequential(nn.Dropout(0.1), nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.4)))
    use_rand_dropout(model)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert [type(m) for m in drops] == [RandDropout, RandDropout]
    assert [m.p for m in drops] == [0.1, 0.4]
