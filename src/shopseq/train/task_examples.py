"""The labelled examples of the yes/no tasks (purchase, churn): what each task asks, per user.

    parts = binary_examples(ds, "purchase", cfg.finetune)  # {"fit", "holdout", "test"}
    batch = user_batch(ds, parts["fit"], rows, max_len)

Users are labelled at two global cut-offs of the temporal split: the train cut-off (the valid
cut-off) and the test cut-off. Inputs are a user's events strictly before the cut-off; train
labels read only events before the test cut-off, so nothing of the test period reaches training.
Users held out at the train cut-off pick the epoch and tune the F1 threshold of :func:`report`.
Both ``finetune`` and ``text_classifier`` train and score on these examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shopseq.config import BinaryTask, FinetuneConfig, choices
from shopseq.data.batching import Batch, history_batch
from shopseq.data.dataset import Dataset
from shopseq.data.labels import churn_labels, history_ends, purchase_labels
from shopseq.data.sequences import resolve_cutoffs, truncate
from shopseq.errors import ShopseqInputError
from shopseq.evaluate import classification as clf
from shopseq.models.behavior_model import append_mask_slot

BINARY_TASKS = choices(BinaryTask)
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Examples:
    """Users labelled at one cut-off: their input history ends and their labels."""

    users: np.ndarray  # [n] user index
    ends: np.ndarray  # [n] exclusive event index: inputs are events before the cut-off
    labels: np.ndarray  # [n] int8
    cutoff: int  # ms

    def take(self, rows: np.ndarray) -> Examples:
        return Examples(self.users[rows], self.ends[rows], self.labels[rows], self.cutoff)


def user_batch(ds: Dataset, ex: Examples, rows: np.ndarray, max_len: int) -> Batch:
    """Rows' last ``max_len`` events before the cut-off, then a cut-off slot to predict from.

    The slot is a MASK event stamped with the cut-off, so the time since the user's last
    event (recency, the strongest purchase/churn signal) reaches the model through its
    time-gap embedding; a causal model's state there has read the whole window.
    """
    batch = append_mask_slot(history_batch(ds.sequences, ex.users[rows], ex.ends[rows], max_len))
    stamps = batch.timestamps.clone()
    stamps[:, -1] = ex.cutoff
    return replace(batch, timestamps=stamps)


# ---------------------------------------------------------------- labels


def binary_examples(ds: Dataset, task: str, ft: FinetuneConfig) -> dict[str, Examples]:
    """{"fit", "holdout", "test"} examples of a yes/no task on a temporal split."""
    if ds.spec.kind != "temporal":
        raise ShopseqInputError(
            f"task '{task}' is labelled at global cut-offs: prepare the dataset with a temporal "
            f"split, not '{ds.spec.kind}'"
        )
    train_cut, test_cut = resolve_cutoffs(ds.sequences, ds.spec)
    train = labelled(ds, task, ft, train_cut, label_end=test_cut)
    test = labelled(ds, task, ft, test_cut, label_end=None)
    holdout = stratified_holdout(train.labels, ft.holdout_share, np.random.default_rng(ft.seed))
    parts = {"fit": train.take(np.flatnonzero(~holdout)), "holdout": train.take(holdout)}
    parts["test"] = test
    for name, part in parts.items():
        if np.unique(part.labels).size < 2:
            raise ShopseqInputError(
                f"task '{task}': the {name} examples have one class only "
                f"({len(part.labels)} users); change the horizon or the cut-offs"
            )
    return parts


def stratified_holdout(labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """[n] bool: a random ``share`` of each class (at least one row of each) held out."""
    holdout = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        holdout[rows[: max(1, round(share * len(rows)))]] = True
    return holdout


def labelled(
    ds: Dataset, task: str, ft: FinetuneConfig, cutoff: int, label_end: int | None
) -> Examples:
    """Users active before ``cutoff`` with labels read from ``[cutoff, label_end)`` only."""
    seqs = ds.sequences
    if label_end is not None:  # labels must not read the test period
        seqs = truncate(seqs, history_ends(seqs, label_end))
    if task == "purchase":
        horizon = {"horizon_events": ft.horizon_events} if ft.horizon_events > 0 else {}
        users, labels = purchase_labels(
            seqs,
            cutoff,
            buy_behavior_id=ds.vocab.behavior_id("buy"),
            horizon_ms=None if horizon else round(ft.horizon_hours * HOUR_MS),
            time_unit=ds.time_unit,
            log_end=label_end,
            **horizon,
        )
    elif task == "churn":
        horizon_ms = round(ft.churn_days * 24 * HOUR_MS)
        users, labels = churn_labels(
            seqs, cutoff, horizon_ms, time_unit=ds.time_unit, log_end=label_end
        )
    else:
        raise ShopseqInputError(f"task '{task}' is not a yes/no task ({', '.join(BINARY_TASKS)})")
    ends = history_ends(ds.sequences, cutoff)[users]
    return Examples(users, ends, labels, cutoff)


# ---------------------------------------------------------------- scoring


def user_batches(ds: Dataset, ex: Examples, max_len: int, size: int) -> Iterator[np.ndarray]:
    """Row indices of ``ex`` in batches of similar history length (in a fixed order)."""
    order = np.argsort(ex.ends - ds.sequences.offsets[ex.users], kind="stable")
    yield from (order[i : i + size] for i in range(0, len(order), size))


def report(
    probs_holdout: np.ndarray, probs_test: np.ndarray, parts: dict[str, Examples]
) -> dict[str, Any]:
    """Test report with the F1 threshold tuned on the holdout users."""
    threshold = clf.best_f1_threshold(probs_holdout, parts["holdout"].labels)
    result = clf.binary_report(probs_test, parts["test"].labels, threshold)
    result["valid_roc_auc"] = clf.roc_auc(probs_holdout, parts["holdout"].labels)
    return result
