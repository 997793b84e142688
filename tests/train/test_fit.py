import pytest

from shopseq.config import apply_overrides, load_config
from shopseq.errors import ShopseqInputError
from shopseq.train.fit import objective_of


@pytest.mark.parametrize(
    ("arch", "objective", "message"),
    [
        ("gpt2", "masked", "needs a bidirectional arch"),
        ("gpt2", "both", "needs a bidirectional arch"),
        ("bert", "causal", "needs a causal arch"),
    ],
)
def test_objective_must_fit_the_arch(arch, objective, message):
    cfg = apply_overrides(load_config(), [f"model.arch={arch}", f"train.objective={objective}"])
    with pytest.raises(ShopseqInputError, match=message):
        objective_of(cfg)


def test_auto_objective_follows_the_arch():
    assert objective_of(load_config(None, ["model.arch=gpt2"])) == "causal"
    assert objective_of(load_config(None, ["model.arch=bert"])) == "masked"
