"""Train a BehaviorModel: length-bucketed windows, every position a target, early stopping on valid.

    metrics = train(ds, load_config("configs/amazon-beauty.yaml"), "runs/beauty")
    model, cfg = load_run("runs/beauty")

Training reads ``ds.train_sequences("valid")`` only, so no valid or test target is ever seen.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from shopseq.config import Objective, RunConfig, TrainConfig, load_config, save_config
from shopseq.data.batching import history_batch
from shopseq.data.dataset import Dataset
from shopseq.data.vocab import Vocab
from shopseq.models.behavior_model import BehaviorModel
from shopseq.models.item_text import (
    ItemSide,
    SideTable,
    check_table,
    load_item_text,
    save_item_text,
)
from shopseq.train.checkpoint import MODEL_FILE, load_checkpoint, save_checkpoint
from shopseq.train.fit import (
    Fit,
    build_model,
    effective_config,
    objective_of,
    start_fit,
    train_epoch,
)

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
SELECT_METRIC = "NDCG@10"
log = logging.getLogger(__name__)


def train(
    ds: Dataset,
    cfg: RunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    item_text: ItemSide | None = None,
) -> dict[str, Any]:
    """Fit on the valid phase's training inputs, early-stop on valid NDCG@10, test the best.

    Writes model.safetensors (best), config.json, vocab.json, metrics.json, checkpoint/ (last
    state, for ``resume``) and tb/ (TensorBoard scalars) under ``out_dir``; returns the metrics.
    With ``train.refit_for_test`` the test model is retrained on the test phase's training
    inputs (valid targets included) for the best epoch count, as the baselines are refit.
    ``item_text``, the side table of ``model.item_text`` / ``item_attributes``
    (``models.item_text.side_table``; a bare tensor = title embeddings), is kept in the run dir.
    With ``train.ema_decay`` > 0 the kept and tested weights are the moving average.
    """
    from torch.utils.tensorboard import SummaryWriter

    tc = cfg.train
    torch.set_num_threads(tc.num_threads)
    cfg = effective_config(cfg, ds)
    out = Path(out_dir)
    item_text = write_run_inputs(cfg, ds, out, item_text)
    fit = start_fit(cfg, ds, "valid", item_text)
    state = start_state(out, fit, resume)
    writer = SummaryWriter(str(out / "tb"))
    while stop_reason(state, tc) is None:
        run_epoch(fit, ds, tc, out, state, writer, progress)
    if tc.refit_for_test and "refit_seconds" not in state:
        refit_for_test(cfg, ds, out, state, writer, progress, item_text)
        save_fit_checkpoint(out, fit, state)  # records the refit, so a resume skips it
    writer.close()
    return finish(ds, out, state, tc)


def stop_reason(state: dict[str, Any], tc: TrainConfig) -> str | None:
    """Why the loop stops before another epoch (max_epochs, patience, max_seconds), or None."""
    if state["epoch"] >= tc.max_epochs:
        return "max_epochs"
    if state["bad"] >= tc.patience:
        return "patience"
    if tc.max_seconds and state["train_seconds"] >= tc.max_seconds:
        return "max_seconds"
    return None


def write_run_inputs(
    cfg: RunConfig, ds: Dataset, out: Path, item_text: ItemSide | None
) -> SideTable | None:
    """Create ``out`` with config.json, vocab.json and the checked item side table (if any)."""
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / CONFIG_FILE)
    ds.vocab.save(out / VOCAB_FILE)
    side = check_table(cfg.model, item_text, ds.vocab.n_tokens)
    if side is not None:
        save_item_text(side, out)
    return side


def start_state(out: Path, fit: Fit, resume: bool) -> dict[str, Any]:
    """The loop's bookkeeping: fresh, or (``resume``) the last checkpoint's, restoring ``fit``."""
    if resume and (out / CHECKPOINT_DIR / "state.json").exists():
        return load_checkpoint(
            out / CHECKPOINT_DIR, fit.model, fit.optimizer, fit.generator, fit.rng, fit.ema
        )
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad": 0}
    state |= {"history": [], "train_seconds": 0.0, "best_valid": {}}
    return state


def save_fit_checkpoint(out: Path, fit: Fit, state: dict[str, Any]) -> None:
    """Write the last state of ``fit`` and the loop's ``state`` to checkpoint/."""
    save_checkpoint(
        out / CHECKPOINT_DIR, fit.model, fit.optimizer, fit.generator, fit.rng, state, fit.ema
    )


def phase_metrics(
    model: BehaviorModel, ds: Dataset, phase: str, tc: TrainConfig
) -> dict[str, float]:
    """Ranking metrics of ``model`` on one phase, as the loop evaluates (no progress bar)."""
    from shopseq.evaluate.runner import evaluate_phase

    return evaluate_phase(
        model, ds, phase, filter_seen=tc.filter_seen, batch_size=tc.eval_batch_size, progress=False
    )


def run_epoch(
    fit: Fit,
    ds: Dataset,
    tc: TrainConfig,
    out: Path,
    state: dict[str, Any],
    writer: Any,
    progress: bool,
) -> None:
    """Fit one epoch, validate, keep the best weights and checkpoint; updates ``state``."""
    tick = time.perf_counter()
    desc = f"epoch {state['epoch'] + 1}"
    loss, state["step"] = train_epoch(fit, tc, state["step"], writer, desc, progress)
    epoch_seconds = time.perf_counter() - tick
    state["epoch"] += 1
    valid = phase_metrics(fit.eval_model, ds, "valid", tc)
    state["train_seconds"] += time.perf_counter() - tick
    record_epoch(state, writer, loss, epoch_seconds, valid)
    keep_if_best(fit, out, state, valid)
    log.info(
        f"epoch {state['epoch']}: loss {loss:.4f} {epoch_seconds:.1f}s "
        f"valid HR@10 {valid['HR@10']:.4f} NDCG@10 {valid[SELECT_METRIC]:.4f}"
        f" (best {state['best']:.4f} @ {state['best_epoch']})"
    )
    save_fit_checkpoint(out, fit, state)


def record_epoch(
    state: dict[str, Any], writer: Any, loss: float, seconds: float, valid: dict[str, float]
) -> None:
    """Append the epoch's row to ``state["history"]`` and its scalars to TensorBoard."""
    epoch = state["epoch"]
    row = {
        "epoch": epoch,
        "loss": loss,
        "seconds": seconds,
        "HR@10": valid["HR@10"],
        "NDCG@10": valid[SELECT_METRIC],
    }
    state["history"].append(row)
    writer.add_scalar("train/epoch_loss", loss, epoch)
    writer.add_scalar("train/epoch_seconds", seconds, epoch)
    for key, value in valid.items():
        writer.add_scalar(f"valid/{key}", value, epoch)


def keep_if_best(fit: Fit, out: Path, state: dict[str, Any], valid: dict[str, float]) -> None:
    """Save the weights as the run's model when valid NDCG@10 improves, else count a bad epoch."""
    if valid[SELECT_METRIC] > state["best"]:
        state |= {"best": valid[SELECT_METRIC], "best_epoch": state["epoch"], "bad": 0}
        state["best_valid"] = valid
        state["time_to_best"] = state["train_seconds"]
        save_model(fit.eval_model, str(out / MODEL_FILE))
    else:
        state["bad"] += 1


def refit_for_test(
    cfg: RunConfig,
    ds: Dataset,
    out: Path,
    state: dict[str, Any],
    writer: Any,
    progress: bool,
    item_text: ItemSide | None,
) -> None:
    """Retrain on the test phase's training inputs for the best epoch count: the run's model.

    The selected (best-valid) model's test metrics are kept first, as ``state["selection_test"]``.
    """
    tc = cfg.train
    state["selection_test"] = phase_metrics(load_run(out)[0], ds, "test", tc)
    tick = time.perf_counter()
    refit = start_fit(cfg, ds, "test", item_text)
    step = 0
    for epoch in range(state["best_epoch"]):
        _, step = train_epoch(refit, tc, step, writer, f"refit {epoch + 1}", progress)
    save_model(refit.eval_model, str(out / MODEL_FILE))
    state["refit_seconds"] = time.perf_counter() - tick


PRETRAIN_BEHAVIOR_WEIGHT = 0.5


def pretrain(
    ds: Dataset,
    cfg: RunConfig,
    out_dir: str | Path,
    objective: Objective | None = None,
    progress: bool = True,
    item_text: ItemSide | None = None,
) -> dict[str, Any]:
    """Self-supervised pretraining on every user's sequence: a base run dir for ``finetune``.

    ``objective`` (causal | masked | both; default ``cfg.train.objective``) models the next or
    the masked events' items and behaviours: a behaviour weight of 0 becomes
    ``PRETRAIN_BEHAVIOR_WEIGHT`` (written to the run's config.json). Same layout as ``train``.
    """
    tc = replace(cfg.train, objective=objective or cfg.train.objective)
    if tc.behavior_weight == 0:
        log.info(f"pretrain: train.behavior_weight 0 -> {PRETRAIN_BEHAVIOR_WEIGHT}")
        tc = replace(tc, behavior_weight=PRETRAIN_BEHAVIOR_WEIGHT)
    cfg = replace(cfg, train=tc)
    objective_of(cfg)  # fail before any work
    return train(ds, cfg, out_dir, progress=progress, item_text=item_text)


def finish(ds: Dataset, out: Path, state: dict[str, Any], tc: TrainConfig) -> dict[str, Any]:
    """Test with the best-valid weights and write metrics.json."""
    model, _ = load_run(out)
    test = phase_metrics(model, ds, "test", tc)
    seconds = [row["seconds"] for row in state["history"]]
    metrics: dict[str, Any] = {
        "valid": state["best_valid"],
        "test": test,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "stopped_by": stop_reason(state, tc),
        "train_seconds": state["train_seconds"],
        "time_to_best_seconds": state.get("time_to_best", 0.0),
        "seconds_per_epoch_median": float(np.median(seconds)) if seconds else 0.0,
        "n_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "history": state["history"],
    }
    if "selection_test" in state:
        metrics["test_without_refit"] = state["selection_test"]
        metrics["refit_seconds"] = state["refit_seconds"]
    if tc.behavior_weight > 0:
        metrics["next_behavior"] = evaluate_behavior(model, ds, "test", tc.eval_batch_size)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    return metrics


def evaluate_behavior(
    model: BehaviorModel, ds: Dataset, phase: str, batch_size: int = 1024
) -> dict[str, object]:
    """Next-behaviour classification report (macro-F1, per class, log-loss) on one phase."""
    from shopseq.evaluate.classification import classification_report

    target = ds.phases[phase]
    probs, truth = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, target.n_targets, batch_size):
            chunk = slice(start, start + batch_size)
            batch = history_batch(
                ds.sequences, target.users[chunk], target.history_end[chunk], model.max_len
            )
            probs.append(model.behavior_probs(batch)[:, 1:])  # drop the PAD column
            truth.append(ds.sequences.behavior_ids[target.targets[chunk]] - 1)
    return classification_report(
        torch.cat(probs).numpy(), np.concatenate(truth), list(ds.vocab.behaviors)
    )


def load_run(run_dir: str | Path) -> tuple[BehaviorModel, RunConfig]:
    """The best model of a run dir (in eval mode) and its config."""
    root = Path(run_dir)
    cfg = load_config(root / CONFIG_FILE)
    model = build_model(cfg, Vocab.load(root / VOCAB_FILE), load_item_text(root))
    load_model(model, str(root / MODEL_FILE))
    return model.eval(), cfg
