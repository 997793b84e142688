"""One epoch of fitting a BehaviorModel: a freshly seeded model, optimiser, windows and RNGs
(:class:`Fit`), the batches of its self-supervised objective (causal, masked or both) and the
optional moving average of its weights; :mod:`shopseq.train.loop` runs the epochs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from shopseq.config import RunConfig, TrainConfig
from shopseq.data.dataset import Dataset
from shopseq.data.schema import TIME_UNIT_ORDINAL
from shopseq.data.sequences import Sequences
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError
from shopseq.models.behavior_model import BehaviorModel
from shopseq.models.item_text import ItemSide, spared_items
from shopseq.train.optim import NegativeSampler, batch_loss, lr_at, make_optimizer, make_sampler
from shopseq.train.windows import TrainBatch, bucketed_batches, make_train_batch, training_windows


def build_model(cfg: RunConfig, vocab: Vocab, item_text: ItemSide | None = None) -> BehaviorModel:
    """A fresh model; ``cfg`` must already be :func:`effective_config` for its dataset.

    ``item_text`` is the side table ``model.item_text`` / ``item_attributes`` need.
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


def start_fit(cfg: RunConfig, ds: Dataset, phase: str, item_text: ItemSide | None = None) -> Fit:
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
    spared = spared_items(ds, seqs, cfg.model)
    sampler = make_sampler(tc, seqs, ds.vocab.n_tokens, generator, spared)
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
