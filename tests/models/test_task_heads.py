import torch

from shopseq.models.task_heads import BinaryHead, binary_loss


def test_binary_head_gives_one_logit_per_row():
    head = BinaryHead(8)
    assert head(torch.randn(5, 8)).shape == (5,)


def test_head_started_from_a_probe_computes_the_probe_on_normalised_states():
    head = BinaryHead(4, dropout=0.0).eval()
    weight = torch.tensor([1.0, -2.0, 0.5, 0.0])
    head.init_from_probe(weight, bias=0.25)
    h = torch.randn(3, 4)
    expected = torch.nn.functional.layer_norm(h, (4,)) @ weight + 0.25
    torch.testing.assert_close(head(h), expected)


def test_binary_loss_by_hand():
    logits = torch.tensor([0.0, 2.0])
    labels = torch.tensor([1, 0])
    # -log(sigmoid(0)) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2)
    expected = (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(2.0)))) / 2
    torch.testing.assert_close(binary_loss(logits, labels), expected)
