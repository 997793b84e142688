"""The one interface every next-item model offers to evaluation and recommendation."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from shopseq.data.batching import Batch


@runtime_checkable
class Recommender(Protocol):
    """Scores every item id for the next event after each history in a batch.

    ``max_len`` is the history window the model reads: the runner builds batches of the last
    ``max_len`` events. Seen-item filtering and special-id masking are the runner's job
    (:func:`shopseq.evaluate.runner.masked_scores`), so a model never has to do either.
    """

    max_len: int

    def score(self, batch: Batch) -> torch.Tensor:
        """A fresh [B, vocab.n_tokens] tensor (the runner masks it in place), higher = better.

        PAD/MASK columns may hold anything.
        """
        ...
