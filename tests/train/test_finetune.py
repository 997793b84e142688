import numpy as np
import pytest
import torch

from shopseq.config import load_config
from shopseq.data.dataset import prepare
from shopseq.data.sequences import SplitSpec
from shopseq.errors import ShopseqInputError
from shopseq.evaluate.classification import roc_auc
from shopseq.train.finetune import binary_probs, finetune, load_finetuned
from shopseq.train.loop import pretrain
from shopseq.train.task_examples import binary_examples

torch.set_num_threads(1)
TINY = [
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.max_len=12",
    "train.batch_size=64",
    "train.num_threads=1",
    "train.max_epochs=2",
    "train.warmup_steps=2",
    "finetune.epochs=2",
    "finetune.horizon_hours=48",
    "finetune.churn_days=1",
]


@pytest.fixture(scope="module")
def base(ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    pretrain(ds, load_config(None, TINY), out, "causal", progress=False)
    return out


@pytest.mark.parametrize("peft", ["none", "lora"])
@pytest.mark.parametrize("task", ["purchase", "churn", "next-behavior", "next-item"])
def test_finetune_records_before_after_and_trainable_share(ds, base, tmp_path, task, peft):
    cfg = load_config(None, TINY)
    m = finetune(base, ds, task, peft, cfg, tmp_path, progress=False)
    metric = m["select_metric"]
    assert metric in m["after"] and metric in m["before"]
    assert 0 < m["trainable_params"] <= m["total_params"]
    if peft == "lora":
        assert m["trainable_share"] < 0.5
        assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    else:
        assert (tmp_path / "model.safetensors").exists()
    assert {"config.json", "vocab.json", "metrics.json", "finetune.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert [row["epoch"] for row in m["history"]] == [0, 1, 2] and 0 <= m["best_epoch"] <= 2


def test_a_loaded_run_reproduces_its_test_metric(ds, base, tmp_path):
    cfg = load_config(None, TINY)
    m = finetune(base, ds, "purchase", "lora", cfg, tmp_path, progress=False)
    model, saved = load_finetuned(tmp_path)
    assert saved.finetune.peft == "lora" and saved.finetune.task == "purchase"
    test = binary_examples(ds, "purchase", saved.finetune)["test"]
    assert roc_auc(binary_probs(model, ds, test), test.labels) == m["after"]["roc_auc"]


def test_events_after_the_test_cutoff_change_no_finetuned_prediction(ds, split, base, tmp_path):
    planted = split.planted()
    cfg = load_config(None, TINY)
    finetune(base, ds, "purchase", "lora", cfg, tmp_path / "clean", progress=False)
    finetune(base, planted, "purchase", "lora", cfg, tmp_path / "planted", progress=False)
    test = binary_examples(ds, "purchase", cfg.finetune)["test"]
    clean, _ = load_finetuned(tmp_path / "clean")
    dirty, _ = load_finetuned(tmp_path / "planted")
    assert np.array_equal(binary_probs(clean, ds, test), binary_probs(dirty, ds, test))


def test_binary_tasks_need_a_temporal_split(split, base, tmp_path):
    loo = prepare(split.events(), SplitSpec(kind="loo"))
    with pytest.raises(ShopseqInputError, match="temporal split, not 'loo'"):
        finetune(base, loo, "churn", "none", load_config(None, TINY), tmp_path, progress=False)


def test_unknown_task_is_named(ds, base, tmp_path):
    with pytest.raises(ShopseqInputError, match="unknown finetune.task 'ltv'; choose one of: "):
        finetune(base, ds, "ltv", "none", load_config(None, TINY), tmp_path, progress=False)


def test_pretrain_both_trains_a_bidirectional_model_with_a_causal_pass(ds, tmp_path):
    cfg = load_config(None, [*TINY, "model.arch=bert"])
    m = pretrain(ds, cfg, tmp_path, "both", progress=False)
    assert "NDCG@10" in m["test"]
    saved = load_config(tmp_path / "config.json")
    assert saved.train.objective == "both" and saved.train.behavior_weight > 0
