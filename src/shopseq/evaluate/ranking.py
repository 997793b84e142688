"""Full-catalogue ranking metrics: pure, vectorised functions of scores and 1-based ranks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch

Ties = Literal["pessimistic", "optimistic"]


def ranks_from_scores(
    scores: torch.Tensor, targets: torch.Tensor, ties: Ties = "pessimistic"
) -> torch.Tensor:
    """1-based rank of each target item among all columns of ``scores``.

    scores [B, V] (higher = better; masked items hold -inf), targets [B] column ids -> [B] int64.
    Pessimistic: 1 + #(score > target's) + #(other items with score == target's), so a model
    that scores everything equally ranks last, not first. Optimistic: 1 + #(score > target's).
    """
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"ties must be 'pessimistic' or 'optimistic', not {ties!r}")
    column = targets.to(device=scores.device, dtype=torch.long)[:, None]  # [B, 1]
    target_scores = scores.gather(1, column)  # [B, 1]
    # #(s >= t) counts the target itself, so it is the pessimistic rank in one pass.
    compare = torch.ge if ties == "pessimistic" else torch.gt
    # Comparing straight into a float buffer and summing that is ~5x faster on CPU than summing
    # a bool tensor (int64 accumulation); float32 counts are exact below 2**24 columns.
    count_dtype = torch.float32 if scores.shape[1] < 2**24 else torch.float64
    beats = compare(scores, target_scores, out=torch.empty_like(scores, dtype=count_dtype))
    ranks = beats.sum(dim=1).long() + (ties == "optimistic")  # [B]
    # A NaN target score compares false with everything: rank it last, never first.
    return torch.where(target_scores[:, 0].isnan(), scores.shape[1], ranks)


def hit_rate_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """[B] 1.0 where the target is in the top k, else 0.0."""
    return (ranks <= k).float()


def ndcg_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """[B] 1 / log2(rank + 1) inside the top k, else 0 (one relevant item: IDCG = 1)."""
    gain = 1.0 / torch.log2(ranks.double() + 1.0)
    return torch.where(ranks <= k, gain, torch.zeros_like(gain)).float()


def mrr_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """[B] 1 / rank inside the top k, else 0."""
    reciprocal = 1.0 / ranks.double()
    return torch.where(ranks <= k, reciprocal, torch.zeros_like(reciprocal)).float()


def recall_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """[B] share of a user's targets inside the top k.

    ranks [B] (one target each: recall == hit rate) or [B, n_targets] (each target ranked against
    the full catalogue, the other targets included, so #(rank <= k) = |top-k ∩ targets|).
    """
    hits = (ranks <= k).float()
    return hits if hits.dim() == 1 else hits.mean(dim=1)


def ranking_metrics(ranks: torch.Tensor, ks: Iterable[int] = (5, 10, 20)) -> dict[str, float]:
    """Means over users of HR, NDCG, MRR and Recall at every k, keyed e.g. ``"NDCG@10"``.

    ranks [B] one target per user. With no user at all every metric is NaN.
    """
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        for name, metric in (
            ("HR", hit_rate_at_k),
            ("NDCG", ndcg_at_k),
            ("MRR", mrr_at_k),
            ("Recall", recall_at_k),
        ):
            values = metric(ranks, k)
            out[f"{name}@{k}"] = float(values.double().mean()) if values.numel() else float("nan")
    return out
