"""Training objectives as pure functions over flattened real positions (N = real tokens).

Padded positions never reach these functions: the loop gathers the states of real positions
first, so padding costs no head or loss compute.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from shopseq.data.schema import MASK, N_SPECIAL


def full_softmax_loss(
    h: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor, chunk: int = 256
) -> torch.Tensor:
    """Cross-entropy over the whole catalogue.

    h [N, D] states, item_table [V, D] (row i = item id i), targets [N] item ids -> scalar.
    Rows go in chunks so each [chunk, V] logits block stays small enough for the allocator to
    reuse (one [N, V] block is page-faulted afresh every step: ~20% slower on CPU).
    """
    items = item_table[N_SPECIAL:]  # PAD/MASK are never an answer: not even a column
    total = h.new_zeros(())
    for h_part, t_part in zip(h.split(chunk), targets.split(chunk), strict=True):
        logits = h_part @ items.T  # [chunk, V - N_SPECIAL]
        total = total + F.cross_entropy(logits, t_part - N_SPECIAL, reduction="sum")
    return total / max(1, len(targets))


def sample_negatives(
    shape: tuple[int, ...], probs: torch.Tensor | None, n_tokens: int, generator: torch.Generator
) -> torch.Tensor:
    """Negative item ids of ``shape`` ([M] shared, or [N, M] per position), drawn with
    replacement: uniform over items, or from ``probs`` [V]."""
    if probs is None:
        return torch.randint(N_SPECIAL, n_tokens, shape, generator=generator)
    flat = torch.multinomial(probs, math.prod(shape), replacement=True, generator=generator)
    return flat.view(shape)


def uniform_log_q(n_tokens: int) -> torch.Tensor:
    """[V] log sampling probability of each id under uniform sampling (specials: -inf)."""
    log_q = torch.full((n_tokens,), -math.log(n_tokens - N_SPECIAL))
    log_q[:N_SPECIAL] = float("-inf")
    return log_q


def popularity_probs(item_ids: torch.Tensor, n_tokens: int, smoothing: float = 1.0) -> torch.Tensor:
    """[V] item sampling probabilities proportional to (training count + smoothing)."""
    counts = torch.bincount(item_ids, minlength=n_tokens).double() + smoothing
    counts[:N_SPECIAL] = 0.0
    return (counts / counts.sum()).float()


def sampled_softmax_loss(
    h: torch.Tensor,
    item_table: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """Sampled softmax with logQ correction.

    h [N, D], item_table [V, D], targets [N], negatives item ids: [M] shared by all N positions
    or [N, M] drawn for each position; log_q [V] log sampling probability of every id -> scalar.
    Subtracting log q makes the sampled loss an unbiased-ish estimate of the full softmax; a
    negative equal to a row's target is removed from that row.
    """
    pos = (h * item_table[targets]).sum(-1) - log_q[targets]  # [N]
    if negatives.ndim == 2:
        # [N, M, D] @ [N, D, 1]: every position against its own negatives
        neg = torch.bmm(item_table[negatives], h[:, :, None])[:, :, 0] - log_q[negatives]
        neg = neg.masked_fill(negatives == targets[:, None], float("-inf"))
    else:
        neg = torch.addmm(-log_q[negatives][None, :], h, item_table[negatives].T)  # [N, M]
        # Only rows whose target was drawn need masking (~M / V of them): find those first
        # rather than comparing all N x M pairs (that full compare + fill was ~10% of a step).
        drawn = torch.zeros(len(item_table), dtype=torch.bool, device=h.device)
        drawn[negatives] = True
        rows = drawn[targets].nonzero()[:, 0]  # [R]
        hits = negatives[None, :] == targets[rows, None]  # [R, M]
        neg[rows] = neg[rows].masked_fill(hits, float("-inf"))
    # -log softmax of the answer among [answer, negatives], without building that [N, 1 + M]
    return (torch.logaddexp(pos, neg.logsumexp(dim=1)) - pos).mean()


def behavior_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-behaviour cross-entropy: logits [N, C], targets [N] behaviour ids (>= 1) -> scalar."""
    return F.cross_entropy(logits, targets)


def mask_items(
    item_ids: torch.Tensor, padding_mask: torch.Tensor, mask_prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT4Rec masking: (inputs with MASK at chosen positions [B, T], chosen [B, T] bool).

    Every window gets at least one masked event: its latest one when the draw chose none,
    which is also the position inference predicts.
    """
    real = ~padding_mask
    draw = torch.rand(item_ids.shape, generator=generator) < mask_prob
    chosen = draw & real  # [B, T]
    none = ~chosen.any(dim=1)  # [B]
    chosen[:, -1] |= none & real[:, -1]
    return item_ids.masked_fill(chosen, MASK), chosen


def total_loss(parts: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Weighted sum of the task losses (tasks with weight 0 are not in ``parts``)."""
    return sum((weights[name] * loss for name, loss in parts.items()), torch.zeros(()))
