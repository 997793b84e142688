"""Train a BehaviorModel: length-bucketed windows, every position a target, early stopping on valid.

    metrics = train(ds, load_config("configs/amazon-beauty.yaml"), "runs/beauty")
    model, cfg = load_run("runs/beauty")

Training reads ``ds.train_sequences("valid")`` only, so no valid or test target is ever seen.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from shopseq.config import Objective, RunConfig, TrainConfig, load_config, save_config
from shopseq.data.batching import history_batch
from shopseq.data.dataset import Dataset
from shopseq.data.schema import TIME_UNIT_ORDINAL
from shopseq.data.sequences import Sequences
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError
from shopseq.models.behavior_model import BehaviorModel
from shopseq.models.item_text import check_table, load_item_text, save_item_text
from shopseq.train.checkpoint import MODEL_FILE, load_checkpoint, save_checkpoint
from shopseq.train.optim import NegativeSampler, batch_loss, lr_at, make_optimizer, make_sampler
from shopseq.train.windows import TrainBatch, bucketed_batches, make_train_batch, training_windows

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
SELECT_METRIC = "NDCG@10"
log = logging.getLogger(__name__)


def build_model(
    cfg: RunConfig, vocab: Vocab, item_text: torch.Tensor | None = None
) -> BehaviorModel:
    """A fresh model; ``cfg`` must already be :func:`effective_config` for its dataset.

    ``item_text`` [n_tokens, d_text] is the item text table ``model.item_text`` add/only needs.
    """
    return BehaviorModel(cfg.model, vocab, time_gaps=cfg.model.use_time_gap, item_text=item_text)


def objective_of(cfg: RunConfig) -> str:
    """The resolved self-supervised objective: causal, masked or both (checked against the arch).

    A causal attention mask cannot see the events after a masked one, so ``masked`` and ``both``
    need a bidirectional arch; ``both`` adds a next-event loss from a causally-masked pass of
    the same bidirectional backbone to the masked-event loss, on every batch.
    """
    objective = cfg.train.objective
    if objective == "auto":
        return "causal" if cfg.model.causal else "masked"
    if objective == "causal" and not cfg.model.causal:
        raise ShopseqInputError(
            f"train.objective 'causal' needs a causal arch (gpt2, llama), not '{cfg.model.arch}'; "
            "use objective 'both' to add a next-event loss to a bidirectional model"
        )
    if objective in ("masked", "both") and cfg.model.causal:
        raise ShopseqInputError(
            f"train.objective '{objective}' needs a bidirectional arch (set model.arch=bert): "
            f"'{cfg.model.arch}' is causal and cannot see the events after a masked one"
        )
    return objective


def objective_batches(fit: Fit, rows: np.ndarray, mask_prob: float) -> list[TrainBatch]:
    """The training batches of one step over windows ``rows``: one per pass of the objective."""
    starts, ends = fit.starts[rows], fit.ends[rows]
    causal = fit.objective == "causal"
    batches = [make_train_batch(fit.seqs, starts, ends, causal, mask_prob, fit.generator)]
    if fit.objective == "both":
        tb = make_train_batch(fit.seqs, starts, ends, True, mask_prob, fit.generator)
        batches.append(replace(tb, causal_pass=True))
    return batches


def effective_config(cfg: RunConfig, ds: Dataset) -> RunConfig:
    """``cfg`` with features the dataset lacks switched off (what gets saved in config.json)."""
    model = replace(
        cfg.model,
        use_time_gap=cfg.model.use_time_gap and ds.time_unit != TIME_UNIT_ORDINAL,
        use_category=cfg.model.use_category and bool(ds.vocab.categories),
        use_behavior=cfg.model.use_behavior and ds.vocab.n_behaviors > 1,
    )
    return replace(cfg, model=model)


@dataclass
class Fit:
    """What one training pass over a set of sequences needs: model, optimiser, windows, RNGs."""

    model: BehaviorModel
    optimizer: torch.optim.AdamW
    seqs: Sequences
    starts: np.ndarray  # [W] window starts (event index)
    ends: np.ndarray  # [W] window ends (exclusive)
    sampler: NegativeSampler | None
    generator: torch.Generator
    rng: np.random.Generator
    total_steps: int
    objective: str = "causal"  # resolved: causal | masked | both
    ema: AveragedModel | None = None  # moving average of the weights (train.ema_decay > 0)

    @property
    def eval_model(self) -> BehaviorModel:
        """The weights validation, the kept best and the test read: the average when kept."""
        return self.model if self.ema is None else cast(BehaviorModel, self.ema.module)


def start_fit(
    cfg: RunConfig, ds: Dataset, phase: str, item_text: torch.Tensor | None = None
) -> Fit:
    """A freshly seeded model and optimiser over the training inputs of ``phase``."""
    tc = cfg.train
    torch.manual_seed(tc.seed)  # parameter init and dropout
    model = build_model(cfg, ds.vocab, item_text)
    generator = torch.Generator().manual_seed(tc.seed)
    seqs = ds.train_sequences(phase)
    span = cfg.model.max_len + 1 if model.causal else cfg.model.max_len
    stride = span - 1 if model.causal else span
    starts, ends = training_windows(seqs, span, stride, tc.all_windows)
    total_steps = math.ceil(len(starts) / tc.batch_size) * tc.max_epochs
    text_items = cfg.model.item_text != "none"
    sampler = make_sampler(tc, seqs, ds.vocab.n_tokens, generator, text_items)
    optimizer = make_optimizer(model, tc)
    rng = np.random.default_rng(tc.seed)
    objective = objective_of(cfg)
    ema = moving_average(model, tc.ema_decay)
    return Fit(
        model, optimizer, seqs, starts, ends, sampler, generator, rng, total_steps, objective, ema
    )


def moving_average(model: BehaviorModel, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights (None for decay 0)."""
    if decay == 0.0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def train_epoch(
    fit: Fit, tc: TrainConfig, step: int, writer: Any, desc: str, progress: bool
) -> tuple[float, int]:
    """One pass over all windows in length-bucketed batches; returns (mean loss, next step)."""
    from tqdm.auto import tqdm

    tick = time.perf_counter()
    model = fit.model.train()
    losses: list[float] = []
    batches = bucketed_batches(fit.ends - fit.starts, tc.batch_size, fit.rng)
    bar = tqdm(batches, desc=desc, disable=not progress, leave=False)
    for n_seen, rows in enumerate(bar, start=1):
        lr = lr_at(step, tc, fit.total_steps)
        for group in fit.optimizer.param_groups:
            group["lr"] = lr
        passes = objective_batches(fit, rows, tc.mask_prob)
        loss = sum((batch_loss(model, tb, tc, fit.sampler) for tb in passes), torch.zeros(()))
        fit.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        fit.optimizer.step()
        if fit.ema is not None:
            fit.ema.update_parameters(model)
        step += 1
        losses.append(loss.item())
        if n_seen % 20 == 0:
            rate = n_seen * tc.batch_size / (time.perf_counter() - tick)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", seq_s=f"{rate:.0f}")
            writer.add_scalar("train/loss", losses[-1], step)
            writer.add_scalar("train/lr", lr, step)
    return float(np.mean(losses)), step


def train(
    ds: Dataset,
    cfg: RunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    item_text: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Fit on the valid phase's training inputs, early-stop on valid NDCG@10, test the best.

    Writes model.safetensors (best), config.json, vocab.json, metrics.json, checkpoint/ (last
    state, for ``resume``) and tb/ (TensorBoard scalars) under ``out_dir``; returns the metrics.
    With ``train.refit_for_test`` the test model is retrained on the test phase's training
    inputs (valid targets included) for the best epoch count, as the baselines are refit.
    ``item_text`` [n_tokens, d_text] (``model.item_text`` add/only) is kept in the run dir.
    With ``train.ema_decay`` > 0 the kept and tested weights are the moving average.
    """
    from torch.utils.tensorboard import SummaryWriter

    from shopseq.evaluate.runner import evaluate_phase

    tc = cfg.train
    torch.set_num_threads(tc.num_threads)
    cfg = effective_config(cfg, ds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / CONFIG_FILE)
    ds.vocab.save(out / VOCAB_FILE)
    item_text = check_table(cfg.model.item_text, item_text, ds.vocab.n_tokens)
    if item_text is not None:
        save_item_text(item_text, out)
    fit = start_fit(cfg, ds, "valid", item_text)
    model = fit.model

    state: dict[str, Any] = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad": 0}
    state |= {"history": [], "train_seconds": 0.0, "best_valid": {}}
    if resume and (out / CHECKPOINT_DIR / "state.json").exists():
        state = load_checkpoint(
            out / CHECKPOINT_DIR, model, fit.optimizer, fit.generator, fit.rng, fit.ema
        )
    writer = SummaryWriter(str(out / "tb"))
    while state["epoch"] < tc.max_epochs and state["bad"] < tc.patience:
        tick = time.perf_counter()
        desc = f"epoch {state['epoch'] + 1}"
        loss, state["step"] = train_epoch(fit, tc, state["step"], writer, desc, progress)
        epoch_seconds = time.perf_counter() - tick
        state["epoch"] += 1
        valid = evaluate_phase(
            fit.eval_model,
            ds,
            "valid",
            filter_seen=tc.filter_seen,
            batch_size=tc.eval_batch_size,
            progress=False,
        )
        state["train_seconds"] += time.perf_counter() - tick
        row = {
            "epoch": state["epoch"],
            "loss": loss,
            "seconds": epoch_seconds,
            "HR@10": valid["HR@10"],
            "NDCG@10": valid[SELECT_METRIC],
        }
        state["history"].append(row)
        writer.add_scalar("train/epoch_loss", row["loss"], state["epoch"])
        writer.add_scalar("train/epoch_seconds", epoch_seconds, state["epoch"])
        for key, value in valid.items():
            writer.add_scalar(f"valid/{key}", value, state["epoch"])
        if valid[SELECT_METRIC] > state["best"]:
            state |= {"best": valid[SELECT_METRIC], "best_epoch": state["epoch"], "bad": 0}
            state["best_valid"] = valid
            state["time_to_best"] = state["train_seconds"]
            save_model(fit.eval_model, str(out / MODEL_FILE))
        else:
            state["bad"] += 1
        log.info(
            f"epoch {state['epoch']}: loss {row['loss']:.4f} {epoch_seconds:.1f}s "
            f"valid HR@10 {valid['HR@10']:.4f} NDCG@10 {valid[SELECT_METRIC]:.4f}"
            f" (best {state['best']:.4f} @ {state['best_epoch']})"
        )
        save_checkpoint(
            out / CHECKPOINT_DIR, model, fit.optimizer, fit.generator, fit.rng, state, fit.ema
        )
    if tc.refit_for_test and "refit_seconds" not in state:
        state["selection_test"] = evaluate_phase(
            load_run(out)[0],
            ds,
            "test",
            filter_seen=tc.filter_seen,
            batch_size=tc.eval_batch_size,
            progress=False,
        )
        tick = time.perf_counter()
        refit = start_fit(cfg, ds, "test", item_text)
        step = 0
        for epoch in range(state["best_epoch"]):
            _, step = train_epoch(refit, tc, step, writer, f"refit {epoch + 1}", progress)
        save_model(refit.eval_model, str(out / MODEL_FILE))
        state["refit_seconds"] = time.perf_counter() - tick
        save_checkpoint(
            out / CHECKPOINT_DIR, model, fit.optimizer, fit.generator, fit.rng, state, fit.ema
        )
    writer.close()
    return finish(ds, out, state, tc)


PRETRAIN_BEHAVIOR_WEIGHT = 0.5


def pretrain(
    ds: Dataset,
    cfg: RunConfig,
    out_dir: str | Path,
    objective: Objective | None = None,
    progress: bool = True,
    item_text: torch.Tensor | None = None,
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
    from shopseq.evaluate.runner import evaluate_phase

    model, _ = load_run(out)
    test = evaluate_phase(
        model, ds, "test", filter_seen=tc.filter_seen, batch_size=tc.eval_batch_size, progress=False
    )
    seconds = [row["seconds"] for row in state["history"]]
    metrics: dict[str, Any] = {
        "valid": state["best_valid"],
        "test": test,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
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
