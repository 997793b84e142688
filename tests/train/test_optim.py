from dataclasses import replace

import pytest

from shopseq.config import TrainConfig
from shopseq.train.optim import lr_at


def test_lr_schedule_by_hand():
    cfg = TrainConfig(lr=1.0, warmup_steps=4, schedule="linear", min_lr_ratio=0.0)
    assert [lr_at(s, cfg, 14) for s in (0, 1, 3)] == [0.25, 0.5, 1.0]
    assert lr_at(4, cfg, 14) == 1.0
    assert lr_at(9, cfg, 14) == pytest.approx(0.5)
    assert lr_at(14, cfg, 14) == 0.0
    cos = replace(cfg, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(9, cos, 14) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(14, cos, 14) == pytest.approx(0.1)
    assert lr_at(100, replace(cfg, schedule="constant"), 14) == 1.0
