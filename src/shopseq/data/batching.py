"""Typed batches: left-padded windows of the latest events before a point in each sequence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shopseq.data.schema import PAD
from shopseq.data.sequences import Sequences


@dataclass(frozen=True)
class Batch:
    """Left-padded event windows; the latest event sits at position -1."""

    item_ids: torch.Tensor  # [B, T] int64, PAD where padded
    behavior_ids: torch.Tensor  # [B, T] int64, 0 where padded
    timestamps: torch.Tensor  # [B, T] int64 (ms or ordinal), 0 where padded
    padding_mask: torch.Tensor  # [B, T] bool, True = padded (ignore)
    users: torch.Tensor  # [B] int64 user index into Sequences
    category_ids: torch.Tensor | None = None  # [B, T] int64, 0 where padded/unknown
    targets: torch.Tensor | None = None  # [B] int64 target item ids
    target_behavior_ids: torch.Tensor | None = None  # [B] int64 target behaviour ids

    @property
    def size(self) -> int:
        return int(self.item_ids.shape[0])


def window_index(
    offsets: np.ndarray, users: np.ndarray, ends: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Event indices of the last ``max_len`` events before ``ends``, left-padded.

    Returns (index [B, T] clipped into range, valid [B, T] bool).
    """
    starts = offsets[users]
    index = ends[:, None] - max_len + np.arange(max_len)[None, :]  # [B, T]
    valid = index >= starts[:, None]
    return np.where(valid, index, 0), valid


def history_batch(
    seqs: Sequences,
    users: np.ndarray,
    ends: np.ndarray,
    max_len: int,
    targets: np.ndarray | None = None,
) -> Batch:
    """A batch of the events ``[offsets[u], ends)`` (last ``max_len`` of them) for each user.

    ``targets`` are event indices whose item and behaviour become the batch targets.
    """
    users = np.asarray(users, dtype=np.int64)
    index, valid = window_index(seqs.offsets, users, np.asarray(ends, dtype=np.int64), max_len)

    def gather(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.where(valid, values[index], PAD).astype(np.int64))

    return Batch(
        item_ids=gather(seqs.item_ids),
        behavior_ids=gather(seqs.behavior_ids),
        timestamps=gather(seqs.timestamps),
        padding_mask=torch.from_numpy(~valid),
        users=torch.from_numpy(users),
        category_ids=None if seqs.category_ids is None else gather(seqs.category_ids),
        targets=None if targets is None else torch.from_numpy(seqs.item_ids[targets]),
        target_behavior_ids=(
            None if targets is None else torch.from_numpy(seqs.behavior_ids[targets])
        ),
    )
