"""Output heads: next-item scores tied to the item embedding table, next-behaviour classifier."""

from __future__ import annotations

import torch
from torch import nn

from shopseq.models.item_text import ItemTable


class Heads(nn.Module):
    """States -> next-item scores (``h @ E_items^T``) and next-behaviour logits."""

    def __init__(
        self, item_embedding: nn.Embedding | ItemTable, d_model: int, n_behaviors: int
    ) -> None:
        super().__init__()
        self.item_embedding = item_embedding  # shared with EventEmbedding (tied weights)
        self.behavior = nn.Linear(d_model, n_behaviors + 1)  # class 0 = PAD, never a target

    def item_scores(self, h: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., n_tokens] scores over the whole id space (specials included)."""
        return h @ self.item_embedding.weight.T

    def behavior_logits(self, h: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., n_behaviors + 1] logits of the next event's behaviour."""
        return self.behavior(h)
