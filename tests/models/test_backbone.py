import pytest
import torch

from shopseq.config import ModelConfig
from shopseq.models.backbone import Backbone, causal_attention_mask

torch.set_num_threads(1)


def test_causal_attention_mask_sees_real_past_and_itself():
    pad = torch.tensor([[True, False, False]])
    mask = causal_attention_mask(pad)[0, 0]
    assert mask.tolist() == [[True, False, False], [False, True, False], [False, True, True]]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_causal_pass_of_a_bidirectional_backbone_hides_the_future(attention):
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="bert", d_model=16, n_layers=2, n_heads=2, max_len=8, attention=attention
    )
    bb = Backbone(cfg).eval()
    x = torch.randn(2, 5, 16)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[1, :2] = True
    changed = x.clone()
    changed[:, -1] = torch.randn(2, 16)  # only the last event differs
    with torch.no_grad():
        a, b = bb(x, pad, causal_pass=True), bb(changed, pad, causal_pass=True)
        torch.testing.assert_close(a[:, :-1], b[:, :-1])
        assert not torch.allclose(a[:, -1], b[:, -1])
        # without the causal pass the earlier positions see the change
        assert not torch.allclose(bb(x, pad)[:, :-1], bb(changed, pad)[:, :-1])
