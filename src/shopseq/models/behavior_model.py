"""The Behaviour Transformer: event tokens -> `transformers` backbone -> heads."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from shopseq.config import ModelConfig
from shopseq.data.batching import Batch
from shopseq.data.schema import MASK, PAD
from shopseq.data.vocab import Vocab
from shopseq.models.backbone import Backbone
from shopseq.models.dropout import use_rand_dropout
from shopseq.models.embedding import EventEmbedding, zero_padding_rows
from shopseq.models.heads import Heads
from shopseq.models.item_text import ItemSide, check_table


class BehaviorModel(nn.Module):
    """SASRec-class (causal) or BERT4Rec-class (bidirectional, masked) sequence model.

    Implements the Recommender protocol: ``max_len`` and ``score(batch) -> [B, n_tokens]``.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        vocab: Vocab,
        time_gaps: bool,
        item_text: ItemSide | None = None,
    ) -> None:
        """``item_text``: the side table ``cfg.item_text`` / ``item_attributes`` need
        (models/item_text.py; a bare tensor = title embeddings)."""
        super().__init__()
        self.cfg = cfg
        self.causal = cfg.causal
        # events per input window; a bidirectional model keeps one slot for the MASK token
        self.max_len = cfg.max_len if cfg.causal else cfg.max_len - 1
        self.embed = EventEmbedding(
            cfg,
            vocab.n_tokens,
            vocab.n_behaviors,
            len(vocab.categories),
            time_gaps,
            check_table(cfg, item_text, vocab.n_tokens),
        )
        self.backbone = Backbone(cfg)
        self.heads = Heads(self.embed.items, cfg.d_model, vocab.n_behaviors)
        init_weights(self, cfg.init)
        use_rand_dropout(self)

    def forward(self, batch: Batch) -> torch.Tensor:
        """[B, T, D] contextual states; position t of a causal model has seen events <= t."""
        x = self.embed(batch)  # [B, T, D]
        return self.backbone(x, batch.padding_mask)  # [B, T, D]

    def score(self, batch: Batch) -> torch.Tensor:
        """[B, n_tokens] next-item scores after each window (the latest event sits at -1)."""
        return self.heads.item_scores(self.last_states(batch))

    def last_states(self, batch: Batch, chunk: int = 512) -> torch.Tensor:
        """[B, D] the state that predicts the next event after each window.

        Rows are run in chunks of similar length, each cut to its longest history, so short
        histories cost no compute on padding; predictions do not depend on padding.
        """
        if not self.causal:
            batch = append_mask_slot(batch)
        lengths = (~batch.padding_mask).sum(1)  # [B]
        order = lengths.argsort()
        out = torch.empty(batch.size, self.cfg.d_model, device=batch.item_ids.device)
        for rows in order.split(chunk):
            t = max(1, int(lengths[rows].max()))
            out[rows] = self(take(batch, rows, t))[:, -1]
        return out

    def behavior_probs(self, batch: Batch) -> torch.Tensor:
        """[B, n_behaviors + 1] next-behaviour probabilities (column 0 = PAD, always ~0)."""
        logits = self.heads.behavior_logits(self.last_states(batch))
        logits[:, PAD] = float("-inf")
        return logits.softmax(-1)


def init_weights(model: nn.Module, init: str) -> None:
    """Re-draw every trainable matrix xavier-normal for ``xavier``; ``normal`` keeps each module's.

    Padding rows of embedding tables are zeroed again (they are never trained).
    """
    if init == "normal":
        return
    for p in model.parameters():
        if p.requires_grad and p.ndim >= 2:
            nn.init.xavier_normal_(p)
    zero_padding_rows(model)


def append_mask_slot(batch: Batch) -> Batch:
    """The batch with one MASK event after each window: a bidirectional model predicts it."""

    def push(values: torch.Tensor, fill: torch.Tensor | int) -> torch.Tensor:
        tail = torch.as_tensor(fill, dtype=values.dtype).expand(values.shape[0], 1)
        return torch.cat([values, tail], dim=1)

    return replace(
        batch,
        item_ids=push(batch.item_ids, MASK),
        behavior_ids=push(batch.behavior_ids, 0),
        timestamps=push(batch.timestamps, batch.timestamps[:, -1:]),
        padding_mask=push(batch.padding_mask, False),
        category_ids=None if batch.category_ids is None else push(batch.category_ids, 0),
    )


def take(batch: Batch, rows: torch.Tensor, t: int) -> Batch:
    """Rows ``rows`` of a batch, keeping only the last ``t`` positions."""

    def cut(values: torch.Tensor | None) -> torch.Tensor | None:
        return None if values is None else values[rows, -t:]

    return Batch(
        item_ids=batch.item_ids[rows, -t:],
        behavior_ids=batch.behavior_ids[rows, -t:],
        timestamps=batch.timestamps[rows, -t:],
        padding_mask=batch.padding_mask[rows, -t:],
        users=batch.users[rows],
        category_ids=cut(batch.category_ids),
    )
