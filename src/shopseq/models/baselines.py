"""Count-based next-item baselines behind the :class:`Recommender` interface.

Every baseline is fitted on the training :class:`Sequences` of one phase only
(``Dataset.train_sequences(phase)``), so no target of that phase leaks into its counts.
Fitting uses numpy bincount / scipy.sparse over all events at once; scoring turns sparse rows
into a dense ``[B, n_tokens]`` float32 tensor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from shopseq.data.batching import Batch
from shopseq.data.schema import TIME_UNIT_ORDINAL
from shopseq.data.sequences import Sequences
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError

MS_PER_DAY = 86_400_000


class Baseline(ABC):
    """A recommender whose whole model is counts over training events."""

    name: ClassVar[str]
    max_len: int = 1

    def __init__(self) -> None:
        self._pop: np.ndarray | None = None  # [n_tokens] float64 item counts

    @abstractmethod
    def fit(self, train: Sequences, vocab: Vocab, time_unit: str) -> Self:
        """Count over ``train`` (the training inputs of one phase); returns self."""

    @abstractmethod
    def score(self, batch: Batch) -> torch.Tensor:
        """[B, n_tokens] float32, higher = better."""

    @property
    def pop(self) -> np.ndarray:
        """[n_tokens] training item counts (what the popularity backoff orders by)."""
        if self._pop is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")
        return self._pop

    def _fit_pop(self, train: Sequences, vocab: Vocab, weights: np.ndarray | None = None) -> None:
        self._pop = np.bincount(train.item_ids, weights=weights, minlength=vocab.n_tokens)

    def _backoff(self, scale: float) -> np.ndarray:
        """[n_tokens] popularity squeezed into ``[0, scale)``: orders what nothing else reaches."""
        return scale * self.pop / (self.pop.max(initial=0.0) + 1.0)


@dataclass(frozen=True)
class PopConfig:
    """Most popular: no options."""


class MostPopular(Baseline):
    """Score = number of training events of the item, the same list for everyone."""

    name = "pop"

    def __init__(self, config: PopConfig | None = None) -> None:
        super().__init__()
        self.config = config or PopConfig()

    def fit(self, train: Sequences, vocab: Vocab, time_unit: str) -> Self:
        self._fit_pop(train, vocab)
        return self

    def score(self, batch: Batch) -> torch.Tensor:
        return _same_for_everyone(self.pop, batch)


@dataclass(frozen=True)
class RecentPopConfig:
    half_life_days: float = 7.0  # an event this old counts half as much as the latest one


class RecentPopular(Baseline):
    """Item counts with exponential decay, relative to the latest training timestamp."""

    name = "recent-pop"

    def __init__(self, config: RecentPopConfig | None = None) -> None:
        super().__init__()
        self.config = config or RecentPopConfig()
        if self.config.half_life_days <= 0:
            raise ShopseqInputError("recent-pop: half_life_days must be > 0")

    def fit(self, train: Sequences, vocab: Vocab, time_unit: str) -> Self:
        if time_unit == TIME_UNIT_ORDINAL:
            raise ShopseqInputError(
                "recent-pop needs real timestamps, but this dataset has order-only (ordinal) "
                "timestamps"
            )
        latest = train.timestamps.max(initial=0)
        age_days = (latest - train.timestamps) / MS_PER_DAY
        self._fit_pop(train, vocab, weights=0.5 ** (age_days / self.config.half_life_days))
        return self

    def score(self, batch: Batch) -> torch.Tensor:
        return _same_for_everyone(self.pop, batch)


@dataclass(frozen=True)
class MarkovConfig:
    backoff: float = 1.0  # popularity backoff lies in [0, backoff): < 1 only breaks ties


class Markov(Baseline):
    """First-order Markov chain over consecutive training events of each user.

    Score of item j after history ending in i = count(i -> j) + backoff * pop(j) / (max pop + 1).
    Transition counts are integers and the backoff is below 1, so the order is: transitions first,
    ties (including never-seen transitions) broken by popularity.
    """

    name = "markov"

    def __init__(self, config: MarkovConfig | None = None) -> None:
        super().__init__()
        self.config = config or MarkovConfig()
        self._transitions: sp.csr_matrix | None = None  # [V, V] counts i -> j

    def fit(self, train: Sequences, vocab: Vocab, time_unit: str) -> Self:
        self._fit_pop(train, vocab)
        users = train.event_users()
        same_user = users[:-1] == users[1:]  # consecutive events of one user
        src, dst = train.item_ids[:-1][same_user], train.item_ids[1:][same_user]
        v = vocab.n_tokens
        counts = np.ones(len(src), dtype=np.float64)
        self._transitions = sp.csr_matrix((counts, (src, dst)), shape=(v, v))
        return self

    def score(self, batch: Batch) -> torch.Tensor:
        if self._transitions is None:
            raise RuntimeError("Markov is not fitted: call fit() first")
        last = batch.item_ids[:, -1].cpu().numpy()  # PAD (an empty row) when no history
        rows = self._transitions[last].toarray()  # [B, V]
        return torch.from_numpy((rows + self._backoff(self.config.backoff)).astype(np.float32))


@dataclass(frozen=True)
class ItemKNNConfig:
    n_last: int = 5  # history items whose neighbours are summed
    decay: float = 0.7  # weight of the r-th latest history item: decay ** r
    window: int | None = 10  # co-occurrence within this many events; None = whole sequence
    backward: float = 0.5  # with a window: weight of j seen *before* i (j after i weighs 1)
    backoff: float = 1e-6  # tiny popularity term for items no neighbour reaches


class ItemKNN(Baseline):
    """Item-item cosine similarity of co-occurrence in users' training sequences.

    With a window, every pair of events at most ``window`` apart in one user's sequence counts:
    C_ij += 1 when j comes after i, ``backward`` when j comes before i (order matters in
    shopping sequences), and n_i = training events of i. With ``window=None`` two items co-occur
    when one user has both (binary user-item matrix X, C = XᵀX, n_i = users of i).
    sim(i, j) = C_ij / sqrt(n_i n_j), no self-similarity. Score of j = Σ_r decay^r sim(h_r, j)
    over the last ``n_last`` history items h_0 (latest), h_1, ... plus a tiny popularity backoff.
    Defaults were tuned a little on Amazon Beauty's validation phase (never its test phase).
    """

    name = "itemknn"

    def __init__(self, config: ItemKNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or ItemKNNConfig()
        if self.config.n_last < 1 or (self.config.window is not None and self.config.window < 1):
            raise ShopseqInputError("itemknn: n_last and window must be >= 1")
        self.max_len = self.config.n_last
        self._similarity: sp.csr_matrix | None = None  # [V, V]

    def fit(self, train: Sequences, vocab: Vocab, time_unit: str) -> Self:
        self._fit_pop(train, vocab)
        v = vocab.n_tokens
        users = train.event_users()
        if self.config.window is None:
            x = sp.csr_matrix(
                (np.ones(train.n_events), (users, train.item_ids)), shape=(train.n_users, v)
            )
            x.data[:] = 1.0  # binary: an item a user repeats still co-occurs once
            co = (x.T @ x).tocsr()
            norm = np.asarray(x.sum(axis=0)).ravel()  # [V] users per item
        else:
            src, dst = [], []
            for d in range(1, self.config.window + 1):
                same_user = users[:-d] == users[d:]
                src.append(train.item_ids[:-d][same_user])
                dst.append(train.item_ids[d:][same_user])
            rows, cols = np.concatenate(src), np.concatenate(dst)  # rows happen before cols
            weights = np.r_[np.ones(len(rows)), np.full(len(rows), self.config.backward)]
            co = sp.csr_matrix((weights, (np.r_[rows, cols], np.r_[cols, rows])), shape=(v, v))
            norm = self.pop
        co.setdiag(0.0)
        co.eliminate_zeros()
        inv = 1.0 / np.sqrt(np.maximum(norm, 1.0))
        self._similarity = sp.csr_matrix(sp.diags(inv) @ co @ sp.diags(inv))
        return self

    def score(self, batch: Batch) -> torch.Tensor:
        if self._similarity is None:
            raise RuntimeError("ItemKNN is not fitted: call fit() first")
        n = min(self.config.n_last, batch.item_ids.shape[1])
        items = batch.item_ids[:, -n:].cpu().numpy()  # [B, n], latest last
        valid = ~batch.padding_mask[:, -n:].cpu().numpy()
        recency = self.config.decay ** np.arange(n - 1, -1, -1, dtype=np.float64)  # [n]
        rows = np.broadcast_to(np.arange(batch.size)[:, None], items.shape)
        weights = sp.csr_matrix(
            (np.broadcast_to(recency, items.shape)[valid], (rows[valid], items[valid])),
            shape=(batch.size, self._similarity.shape[0]),
        )
        scores = (weights @ self._similarity).toarray()  # [B, V]
        return torch.from_numpy((scores + self._backoff(self.config.backoff)).astype(np.float32))


def _same_for_everyone(values: np.ndarray, batch: Batch) -> torch.Tensor:
    """[B, V] one row for every user (a fresh copy: the runner writes into it)."""
    row = torch.from_numpy(values.astype(np.float32))  # [V]
    return row[None, :].repeat(batch.size, 1)


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (MostPopular, RecentPopular, Markov, ItemKNN)
}


def make_baseline(name: str) -> Baseline:
    """A baseline with its default config, by the name the CLI uses."""
    if name not in BASELINES:
        raise ShopseqInputError(f"unknown baseline '{name}'; choose one of: {', '.join(BASELINES)}")
    return BASELINES[name]()
