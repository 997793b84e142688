"""Evaluate a model on a phase of a split, and recommend: both through :func:`masked_scores`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from shopseq.data.batching import Batch, history_batch
from shopseq.data.dataset import Dataset
from shopseq.data.schema import MASK, PAD
from shopseq.data.sequences import PHASES, Sequences, event_ranges
from shopseq.errors import ShopseqInputError
from shopseq.evaluate.ranking import Ties, ranking_metrics, ranks_from_scores
from shopseq.models.base import Recommender
from shopseq.models.baselines import make_baseline

# A [rows, V] float32 score block at most this size is recycled by the allocator; a larger one
# is mapped afresh and page-faulted on every batch (masking and ranking ~3x slower on CPU).
SCORE_BLOCK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Recommendation:
    user: str
    items: list[str]  # raw item ids, best first
    scores: list[float]


def masked_scores(
    model: Recommender, batch: Batch, seqs: Sequences, history_end: np.ndarray, filter_seen: bool
) -> torch.Tensor:
    """[B, n_tokens] the model's scores with PAD, MASK (and seen items) set to -inf.

    Seen = every item of the user's full history ``[offsets[u], history_end)``, not only the
    ``max_len`` window the model reads.
    """
    scores = model.score(_to_model_device(batch, model)).float()  # [B, V], ours to write into
    scores[:, [PAD, MASK]] = -torch.inf
    if filter_seen:
        starts = seqs.offsets[batch.users.cpu().numpy()]
        lengths = np.asarray(history_end, dtype=np.int64) - starts  # [B]
        rows = np.repeat(np.arange(len(lengths)), lengths)  # batch row of every seen event
        events = event_ranges(starts, lengths)
        index = (
            torch.from_numpy(rows).to(scores.device),
            torch.from_numpy(seqs.item_ids[events]).to(scores.device),
        )
        scores.index_put_(index, torch.tensor(-torch.inf, device=scores.device))
    return scores


def evaluate_phase(
    model: Recommender,
    ds: Dataset,
    phase: str,
    *,
    ks: Iterable[int] = (5, 10, 20),
    filter_seen: bool = True,
    ties: Ties = "pessimistic",
    batch_size: int = 1024,
    progress: bool = True,
) -> dict[str, float]:
    """Full-catalogue next-item metrics of ``model`` on one phase ("valid" or "test")."""
    if phase not in ds.phases:
        raise ShopseqInputError(f"unknown phase '{phase}'; choose one of: {', '.join(PHASES)}")
    target = ds.phases[phase]
    if target.n_targets == 0:
        raise ShopseqInputError(f"the {phase} phase has no target events to evaluate")
    ranks = []
    # Users go in order of history length so each batch is cut to similar lengths (no compute
    # on padding); the metrics are means, so the order does not change them.
    lengths = target.history_end - ds.sequences.offsets[target.users]
    order = np.argsort(np.minimum(lengths, model.max_len), kind="stable")
    rows = block_rows(ds.vocab.n_tokens, batch_size)
    starts = range(0, target.n_targets, rows)
    with _inference(model):
        for start in tqdm(starts, desc=f"evaluate {phase}", unit="batch", disable=not progress):
            chunk = order[start : start + rows]
            ends = target.history_end[chunk]
            # The batch carries no targets: a model cannot peek at what it must predict.
            batch = history_batch(ds.sequences, target.users[chunk], ends, model.max_len)
            scores = masked_scores(model, batch, ds.sequences, ends, filter_seen)
            items = torch.from_numpy(ds.sequences.item_ids[target.targets[chunk]])
            ranks.append(ranks_from_scores(scores, items, ties).cpu())
    return ranking_metrics(torch.cat(ranks), ks)


def block_rows(n_columns: int, batch_size: int) -> int:
    """Users per scoring batch: at most ``batch_size``, with the [rows, n_columns] block small."""
    return max(1, min(batch_size, SCORE_BLOCK_BYTES // (4 * n_columns)))


def evaluate_baseline(
    name: str,
    ds: Dataset,
    *,
    ks: Iterable[int] = (5, 10, 20),
    filter_seen: bool = True,
    ties: Ties = "pessimistic",
    batch_size: int = 1024,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """{"valid": metrics, "test": metrics}; each phase fits on its own training inputs."""
    ks = tuple(ks)
    results = {}
    for phase in PHASES:
        model = make_baseline(name).fit(ds.train_sequences(phase), ds.vocab, ds.time_unit)
        results[phase] = evaluate_phase(
            model,
            ds,
            phase,
            ks=ks,
            filter_seen=filter_seen,
            ties=ties,
            batch_size=batch_size,
            progress=progress,
        )
    return results


def recommend(
    model: Recommender,
    ds: Dataset,
    users: Sequence[str],
    k: int = 10,
    filter_seen: bool = True,
    *,
    batch_size: int = 1024,
) -> list[Recommendation]:
    """Top-``k`` items after each user's whole sequence, from the same masked scores as evaluation.

    Fewer than ``k`` items come back when fewer are left unmasked; PAD/MASK never do.
    """
    if k < 1:
        raise ShopseqInputError(f"k must be >= 1, not {k}")
    index = _user_index(ds.sequences, users)
    out: list[Recommendation] = []
    rows = block_rows(ds.vocab.n_tokens, batch_size)
    with _inference(model):
        for start in range(0, len(index), rows):
            chunk = index[start : start + rows]
            ends = ds.sequences.offsets[chunk + 1]
            batch = history_batch(ds.sequences, chunk, ends, model.max_len)
            scores = masked_scores(model, batch, ds.sequences, ends, filter_seen)
            top = scores.topk(min(k, scores.shape[1]), dim=1)
            values, ids = top.values.cpu().numpy(), top.indices.cpu().numpy()
            for row, u in enumerate(chunk.tolist()):
                keep = np.isfinite(values[row])
                out.append(
                    Recommendation(
                        user=str(ds.sequences.users[u]),
                        items=ds.vocab.decode_items(ids[row][keep]),
                        scores=values[row][keep].tolist(),
                    )
                )
    return out


@contextmanager
def _inference(model: Recommender) -> Iterator[None]:
    """no_grad, and eval mode for an ``nn.Module`` (its previous mode restored afterwards)."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)


def _user_index(seqs: Sequences, users: Sequence[str]) -> np.ndarray:
    """[n] user indices of raw user ids; unknown ids are an error naming them."""
    raw = np.asarray([str(u) for u in users], dtype=str)
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.clip(np.searchsorted(seqs.users, raw), 0, max(seqs.n_users - 1, 0))
    known = seqs.users[pos] == raw if seqs.n_users else np.zeros(raw.size, dtype=bool)
    if not known.all():
        missing = ", ".join(f"'{u}'" for u in raw[~known][:5])
        more = f" (and {int((~known).sum()) - 5} more)" if (~known).sum() > 5 else ""
        raise ShopseqInputError(f"unknown user {missing}{more}: not in this dataset")
    return pos.astype(np.int64)


def _to_model_device(batch: Batch, model: Recommender) -> Batch:
    """The batch on the device of an ``nn.Module``'s parameters (unchanged for CPU models)."""
    if not isinstance(model, torch.nn.Module):
        return batch
    param = next(model.parameters(), None)
    if param is None or param.device == batch.item_ids.device:
        return batch
    moved = {
        f.name: getattr(batch, f.name).to(param.device)
        for f in fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }
    return replace(batch, **moved)
