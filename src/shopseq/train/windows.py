"""Windows and batches: cut each user's events into training windows, group windows of similar
length into batches, and turn a batch of windows into a :class:`TrainBatch` whose every real
position carries a target (the next event when causal, the masked event otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shopseq.data.batching import Batch, window_index
from shopseq.data.schema import PAD
from shopseq.data.sequences import Sequences
from shopseq.train import objectives as obj


@dataclass(frozen=True)
class TrainBatch:
    """Input windows plus, per position, the item (and behaviour) that position must predict."""

    inputs: Batch  # [B, T] windows
    target_ids: torch.Tensor  # [B, T] item ids to predict, PAD where nothing is predicted
    target_behavior_ids: torch.Tensor  # [B, T] behaviour ids to predict, 0 where nothing
    loss_mask: torch.Tensor  # [B, T] bool, True = this position is trained
    causal_pass: bool = False  # a bidirectional backbone run under a causal mask (objective both)


def training_windows(
    seqs: Sequences, span: int, stride: int, all_windows: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) [W] event ranges of at most ``span`` events, cut back from each user's end.

    Windows step back by ``stride`` so every event is a target once; users with < 2 events
    give none. With ``all_windows=False`` only each user's latest window is kept.
    """
    lengths = seqs.lengths
    eligible = lengths >= 2
    n_windows = np.where(eligible, np.ceil((lengths - span) / stride).clip(min=0) + 1, 0)
    if not all_windows:
        n_windows = np.minimum(n_windows, 1)
    n_windows = n_windows.astype(np.int64)
    users = np.repeat(np.arange(seqs.n_users), n_windows)
    k = np.arange(len(users)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    ends = seqs.offsets[users + 1] - k * stride
    starts = np.maximum(seqs.offsets[users], ends - span)
    keep = ends - starts >= 2
    return starts[keep], ends[keep]


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 64
) -> list[np.ndarray]:
    """Window indices grouped into batches of similar length (little padding), in random order.

    Shuffle, sort by length inside pools of ``pool`` batches, cut, then shuffle the batches.
    """
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    chunk = batch_size * pool
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def make_train_batch(
    seqs: Sequences,
    starts: np.ndarray,
    ends: np.ndarray,
    causal: bool,
    mask_prob: float,
    generator: torch.Generator,
) -> TrainBatch:
    """A left-padded batch of windows ``[starts, ends)`` with per-position targets.

    Causal: position t reads events <= t and predicts event t + 1. Masked: random events are
    replaced by MASK (behaviour/category hidden too) and predicted from both sides.
    """
    t = int((ends - starts).max())
    index, valid = window_index(starts, np.arange(len(starts)), ends, t)  # [B, T]

    def gather(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.where(valid, values[index], PAD).astype(np.int64))

    items, behaviors, stamps = (
        gather(seqs.item_ids),
        gather(seqs.behavior_ids),
        gather(seqs.timestamps),
    )
    cats = None if seqs.category_ids is None else gather(seqs.category_ids)
    pad = torch.from_numpy(~valid)
    users = torch.zeros(len(starts), dtype=torch.int64)
    if causal:
        inputs = Batch(
            items[:, :-1],
            behaviors[:, :-1],
            stamps[:, :-1],
            pad[:, :-1],
            users,
            None if cats is None else cats[:, :-1],
        )
        return TrainBatch(inputs, items[:, 1:], behaviors[:, 1:], ~pad[:, :-1])
    masked_items, chosen = obj.mask_items(items, pad, mask_prob, generator)
    inputs = Batch(
        masked_items,
        behaviors.masked_fill(chosen, 0),
        stamps,
        pad,
        users,
        None if cats is None else cats.masked_fill(chosen, 0),
    )
    return TrainBatch(inputs, items, behaviors, chosen)
