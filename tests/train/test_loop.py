import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from shopseq.config import RunConfig, apply_overrides
from shopseq.data.batching import history_batch
from shopseq.data.dataset import prepare
from shopseq.data.sequences import SplitSpec
from shopseq.data.synth import SynthConfig, synth
from shopseq.evaluate.runner import evaluate_phase, masked_scores, recommend
from shopseq.train.fit import build_model, effective_config
from shopseq.train.loop import load_run, train
from shopseq.train.optim import batch_loss, make_optimizer
from shopseq.train.windows import make_train_batch, training_windows

torch.set_num_threads(1)  # the CI box has 2 cores shared with other jobs

TINY = [
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.max_len=10",
    "train.batch_size=64",
    "train.num_threads=1",
]


@pytest.fixture(scope="module")
def small_ds():
    events = synth(SynthConfig(n_users=120, n_items=80, n_categories=5, n_days=20, seed=3))
    return prepare(events, SplitSpec())


def test_tiny_model_overfits_20_sequences(toy_events):
    rng = np.random.default_rng(0)
    rows = rng.permutation(120).reshape(20, 6).tolist()  # distinct items: no ambiguous prefix
    events = toy_events(rows)
    ds = prepare(events, SplitSpec(), "ordinal")
    cfg = apply_overrides(RunConfig(), [*TINY, "model.d_model=32", "model.dropout=0.0"])
    cfg = effective_config(cfg, ds)
    torch.manual_seed(0)
    model = build_model(cfg, ds.vocab)
    optimizer = make_optimizer(model, replace(cfg.train, lr=1e-2))
    seqs = ds.sequences
    starts, ends = training_windows(seqs, 11, 10, True)
    tb = make_train_batch(seqs, starts, ends, True, 0.0, torch.Generator())
    for _ in range(100):
        loss = batch_loss(model, tb, cfg.train, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05  # from ~log(120) = 4.8
    model.eval()
    with torch.no_grad():
        scores = model.heads.item_scores(model(tb.inputs))  # [B, T, V]
    hits = scores.argmax(-1)[tb.loss_mask] == tb.target_ids[tb.loss_mask]
    assert hits.float().mean().item() == 1.0


def test_zero_loss_weight_leaves_that_head_untouched(small_ds):
    cfg = effective_config(
        apply_overrides(RunConfig(), [*TINY, "train.behavior_weight=0"]), small_ds
    )
    torch.manual_seed(0)
    model = build_model(cfg, small_ds.vocab)
    head = [p.detach().clone() for p in model.heads.behavior.parameters()]
    embed = model.embed.items.weight.detach().clone()
    optimizer = make_optimizer(model, replace(cfg.train, weight_decay=0.1))
    seqs = small_ds.train_sequences("valid")
    starts, ends = training_windows(seqs, 11, 10, True)
    for _ in range(3):
        tb = make_train_batch(seqs, starts[:32], ends[:32], True, 0.0, torch.Generator())
        loss = batch_loss(model, tb, cfg.train, None)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for before, after in zip(head, model.heads.behavior.parameters(), strict=True):
        assert torch.equal(before, after)
    assert not torch.equal(embed, model.embed.items.weight)
    # and a positive weight does train it
    cfg = replace(cfg, train=replace(cfg.train, behavior_weight=1.0))
    loss = batch_loss(model, tb, cfg.train, None)
    loss.backward()
    assert model.heads.behavior.weight.grad is not None


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["model.arch=bert", "train.loss=sampled", "train.n_negatives=20"],
        ["train.loss=sampled", "train.n_negatives=8", "train.negatives_per=position"],
    ],
)
def test_train_writes_run_dir_and_reloads_identically(small_ds, tmp_path, extra):
    cfg = apply_overrides(
        RunConfig(), [*TINY, "train.max_epochs=2", "train.behavior_weight=0.5", *extra]
    )
    metrics = train(small_ds, cfg, tmp_path, progress=False)
    for name in ("model.safetensors", "config.json", "vocab.json", "metrics.json"):
        assert (tmp_path / name).exists()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["epochs_run"] == 2 and 1 <= saved["best_epoch"] <= 2
    assert saved["stopped_by"] == "max_epochs"
    assert set(saved) >= {"valid", "test", "best_epoch", "epochs_run", "train_seconds"}
    assert "NDCG@10" in saved["test"] and "HR@10" in saved["valid"]
    report = saved["next_behavior"]
    assert set(report["per_class"]) == set(small_ds.vocab.behaviors)
    assert 0.0 <= report["macro_f1"] <= 1.0 and report["log_loss"] > 0
    model, loaded_cfg = load_run(tmp_path)
    assert loaded_cfg.model.use_time_gap  # synthetic data has real timestamps
    again = evaluate_phase(model, small_ds, "test", progress=False)
    assert again == pytest.approx(metrics["test"])


@pytest.mark.parametrize(
    ("extra", "epochs", "reason"),
    [
        (["train.max_seconds=1e-9"], 1, "max_seconds"),  # spent after the first epoch
        (["train.max_seconds=1e6"], 3, "max_epochs"),
    ],
)
def test_the_loop_says_what_stopped_it(small_ds, tmp_path, extra, epochs, reason):
    cfg = apply_overrides(RunConfig(), [*TINY, "train.max_epochs=3", "train.patience=100", *extra])
    metrics = train(small_ds, cfg, tmp_path, progress=False)
    assert (metrics["epochs_run"], metrics["stopped_by"]) == (epochs, reason)


def test_recommend_scores_are_the_evaluation_scores(small_ds, tmp_path):
    cfg = apply_overrides(RunConfig(), [*TINY, "train.max_epochs=1"])
    train(small_ds, cfg, tmp_path, progress=False)
    model, _ = load_run(tmp_path)
    seqs = small_ds.sequences
    users = np.arange(10)
    ends = seqs.offsets[users + 1]
    with torch.no_grad():
        batch = history_batch(seqs, users, ends, model.max_len)
        expected = masked_scores(model, batch, seqs, ends, True).topk(5)
    recs = recommend(model, small_ds, [str(u) for u in seqs.users[users]], k=5)
    for row, rec in enumerate(recs):
        assert rec.scores == pytest.approx(expected.values[row].tolist(), abs=0)
        assert rec.items == small_ds.vocab.decode_items(expected.indices[row].numpy())


@pytest.mark.parametrize("extra", [[], ["train.ema_decay=0.9"]])
def test_resume_continues_and_seeds_make_runs_identical(small_ds, tmp_path, extra):
    cfg = apply_overrides(RunConfig(), [*TINY, "train.max_epochs=2", "train.patience=100", *extra])
    full = train(small_ds, cfg, tmp_path / "a", progress=False)
    first = train(
        small_ds, apply_overrides(cfg, ["train.max_epochs=1"]), tmp_path / "b", progress=False
    )
    assert first["epochs_run"] == 1
    resumed = train(small_ds, cfg, tmp_path / "b", resume=True, progress=False)
    assert resumed["epochs_run"] == 2
    losses = [[row["loss"] for row in m["history"]] for m in (full, resumed)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert resumed["test"] == pytest.approx(full["test"], rel=1e-5)


def test_ema_run_keeps_and_tests_the_moving_average_not_the_last_weights(small_ds, tmp_path):
    cfg = apply_overrides(RunConfig(), [*TINY, "train.max_epochs=1", "train.ema_decay=0.9"])
    metrics = train(small_ds, cfg, tmp_path, progress=False)
    kept = load_file(str(tmp_path / "model.safetensors"))
    last = load_file(str(tmp_path / "checkpoint" / "model.safetensors"))
    average = load_file(str(tmp_path / "checkpoint" / "ema.safetensors"))
    name = "embed.items.weight"
    torch.testing.assert_close(kept[name], average[f"module.{name}"], rtol=0, atol=0)
    assert not torch.allclose(kept[name], last[name])  # the raw weights are not what is kept
    model, _ = load_run(tmp_path)
    assert evaluate_phase(model, small_ds, "valid", progress=False) == metrics["valid"]


def test_refit_for_test_retrains_for_the_best_epoch_count(small_ds, tmp_path):
    cfg = apply_overrides(RunConfig(), [*TINY, "train.max_epochs=2", "train.refit_for_test=true"])
    metrics = train(small_ds, cfg, tmp_path, progress=False)
    assert "test_without_refit" in metrics and metrics["refit_seconds"] > 0
    model, _ = load_run(tmp_path)  # the refit model is the one a run dir serves
    again = evaluate_phase(model, small_ds, "test", progress=False)
    assert again == pytest.approx(metrics["test"])
