"""Loss and optimisation: the weighted multi-task loss of one :class:`TrainBatch`, the learning-rate
schedule (warm-up, then constant, linear or cosine), the negative sampler of the sampled softmax
and the AdamW optimiser with weight decay on matrices only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from shopseq.config import TrainConfig
from shopseq.data.sequences import Sequences
from shopseq.models.behavior_model import BehaviorModel
from shopseq.models.item_text import catalogue_probs
from shopseq.train import objectives as obj
from shopseq.train.windows import TrainBatch


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate at optimiser step ``step`` (0-based): linear warm-up, then the schedule."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "linear":
        return floor + (cfg.lr - floor) * (1.0 - progress)
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


def batch_loss(
    model: BehaviorModel,
    tb: TrainBatch,
    cfg: TrainConfig,
    sampler: NegativeSampler | None,
) -> torch.Tensor:
    """Weighted multi-task loss over the real target positions of one batch."""
    if tb.causal_pass:
        states = model.backbone(model.embed(tb.inputs), tb.inputs.padding_mask, causal_pass=True)
    else:
        states = model(tb.inputs)  # [B, T, D]
    h = states[tb.loss_mask]  # [N, D] real positions only
    parts: dict[str, torch.Tensor] = {}
    if cfg.item_weight > 0:
        table = model.embed.items.weight  # [V, D], tied to the next-item head
        targets = tb.target_ids[tb.loss_mask]  # [N]
        if sampler is None:
            parts["item"] = obj.full_softmax_loss(h, table, targets)
        else:
            negatives = sampler.draw(len(targets))
            parts["item"] = obj.sampled_softmax_loss(h, table, targets, negatives, sampler.log_q)
    if cfg.behavior_weight > 0:
        logits = model.heads.behavior_logits(h)  # [N, C]
        parts["behavior"] = obj.behavior_loss(logits, tb.target_behavior_ids[tb.loss_mask])
    weights = {"item": cfg.item_weight, "behavior": cfg.behavior_weight}
    return obj.total_loss(parts, weights)


@dataclass
class NegativeSampler:
    """Negatives for the sampled softmax, with the log sampling probability of every id."""

    n_negatives: int
    per_position: bool  # True: n_negatives for each position; False: shared by the batch
    n_tokens: int
    probs: torch.Tensor | None  # [V] or None = uniform
    log_q: torch.Tensor  # [V]
    generator: torch.Generator

    def draw(self, n_positions: int) -> torch.Tensor:
        """[M] negatives shared by the batch's ``n_positions`` positions, or [N, M] per position."""
        shape = (n_positions, self.n_negatives) if self.per_position else (self.n_negatives,)
        return obj.sample_negatives(shape, self.probs, self.n_tokens, self.generator)


def make_sampler(
    cfg: TrainConfig,
    seqs: Sequences,
    n_tokens: int,
    generator: torch.Generator,
    spared: np.ndarray | None = None,
) -> NegativeSampler | None:
    """The sampled-softmax negatives of ``cfg`` (None for the full softmax).

    ``spared`` [n_tokens] bool: items never drawn (``models.item_text.spared_items``).
    """
    if cfg.loss == "full":
        return None
    if cfg.negatives == "uniform":
        probs = None
        log_q = obj.uniform_log_q(n_tokens)
    else:  # popularity
        probs = obj.popularity_probs(torch.from_numpy(seqs.item_ids), n_tokens)
        log_q = probs.log()
    kept = None if spared is None else catalogue_probs(probs, spared)
    if kept is not None:
        probs, log_q = kept, kept.log()
    per_position = cfg.negatives_per == "position"
    return NegativeSampler(cfg.n_negatives, per_position, n_tokens, probs, log_q, generator)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, norms or embedding tables)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_table = name.startswith("embed.")
        (decay if p.ndim >= 2 and not is_table else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel per step instead of ~10 per tensor; ~2x faster steps on CPU, same maths
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), fused=True)
