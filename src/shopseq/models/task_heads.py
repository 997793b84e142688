"""Task heads for fine-tuning: a binary classifier on the state after a user's last event."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BinaryHead(nn.Module):
    """[B, D] last-position states -> [B] logits of a yes/no question (purchase, churn)."""

    def __init__(self, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.norm(h))).squeeze(-1)  # [B]

    def init_from_probe(self, weight: torch.Tensor, bias: float) -> None:
        """Start from a fitted linear probe on the normalised states (weight [D])."""
        with torch.no_grad():
            self.out.weight.copy_(weight[None])
            self.out.bias.fill_(bias)


def binary_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy: logits [B], labels [B] in {0, 1} -> scalar."""
    return F.binary_cross_entropy_with_logits(logits, labels.float())
