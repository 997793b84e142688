"""Classification metrics (pure numpy): next-behaviour macro-F1, per-class report, log-loss;
yes/no tasks (purchase, churn) ROC-AUC, PR-AUC, F1 at a tuned threshold, log-loss, ECE + bins."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[C, C] counts: row = true class, column = predicted class (class ids 0..C-1)."""
    flat = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[C] precision, recall and F1 per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    actual = cm.sum(1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(0) + cm.sum(1)) > 0
    if not present.any():
        return 0.0
    return float(precision_recall_f1(cm)[2][present].mean())


def log_loss(probs: np.ndarray, y_true: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true class: probs [N, C], y_true [N] -> float."""
    probs = np.asarray(probs, dtype=np.float64)
    picked = probs[np.arange(len(y_true)), np.asarray(y_true, dtype=np.int64)]
    return float(-np.log(np.clip(picked, eps, 1.0)).mean())


def classification_report(
    probs: np.ndarray, y_true: np.ndarray, names: Sequence[str]
) -> dict[str, object]:
    """Macro-F1, accuracy, log-loss and per-class precision/recall/F1/support.

    probs [N, C] over classes ``names`` (column i = class i), y_true [N] class indices.
    """
    n_classes = len(names)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(probs).argmax(1)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    precision, recall, f1 = precision_recall_f1(cm)
    support = cm.sum(1)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    return {
        "macro_f1": macro_f1(y_true, y_pred, n_classes),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "log_loss": log_loss(probs, y_true),
        "per_class": per_class,
    }


# ---------------------------------------------------------------- binary tasks (purchase, churn)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC of scores [N] for labels [N] in {0, 1} (Mann-Whitney, ties count one half).

    NaN without both classes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)  # 1-based, ties share their mean rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """[N] 1-based ranks of ``values`` ascending, tied values sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1  # [N] tie-group of each sorted position
    first = np.flatnonzero(starts)  # 0-based first position of each group
    last = np.r_[first[1:], len(values)] - 1
    ranks = np.empty(len(values))
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def pr_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision: sum over score thresholds of (recall step) x precision there.

    Tied scores form one threshold (as scikit-learn's ``average_precision_score``); NaN
    without positives.
    """
    precision, recall = _pr_curve(scores, labels)
    if recall.size == 0:
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) [K] at each distinct score threshold, highest threshold first."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.float64)
    n_pos = labels.sum()
    if n_pos == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    predicted = (np.arange(len(s)) + 1)[last_of_tie]
    return tp / predicted, tp / n_pos


def f1_at(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of predicting 1 where ``probs >= threshold``."""
    predicted = np.asarray(probs) >= threshold
    truth = np.asarray(labels).astype(bool)
    tp = float((predicted & truth).sum())
    precision = tp / predicted.sum() if predicted.any() else 0.0
    recall = tp / truth.sum() if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def best_f1_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold with the highest F1 on (validation) ``probs``/``labels``.

    Only observed scores are candidates; ties in F1 go to the highest threshold. 0.5 when
    there is no positive.
    """
    precision, recall = _pr_curve(probs, labels)
    if recall.size == 0:
        return 0.5
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    thresholds = np.unique(np.asarray(probs, dtype=np.float64))[::-1]  # highest first
    return float(thresholds[int(np.argmax(f1))])


def binary_log_loss(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean binary cross-entropy of probabilities ``probs`` [N] against ``labels`` [N]."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Equal-width probability bins: [lo, hi), count, mean predicted probability, positive rate.

    The last bin is closed at 1. The data of a reliability plot (empty bins included, count 0).
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    index = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y, minlength=n_bins)
    return [
        {
            "lo": b / n_bins,
            "hi": (b + 1) / n_bins,
            "count": int(counts[b]),
            "mean_prob": float(sum_p[b] / counts[b]) if counts[b] else 0.0,
            "positive_rate": float(sum_y[b] / counts[b]) if counts[b] else 0.0,
        }
        for b in range(n_bins)
    ]


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE: sum over bins of (share of rows) x |mean predicted probability - positive rate|."""
    bins = reliability_bins(probs, labels, n_bins)
    n = max(1, len(np.asarray(probs)))
    return float(sum(b["count"] / n * abs(b["mean_prob"] - b["positive_rate"]) for b in bins))


def binary_report(
    probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5, n_bins: int = 10
) -> dict[str, object]:
    """ROC-AUC, PR-AUC, F1 at ``threshold`` (tune it on validation), log-loss, ECE, bins."""
    labels = np.asarray(labels)
    return {
        "roc_auc": roc_auc(probs, labels),
        "pr_auc": pr_auc(probs, labels),
        "threshold": float(threshold),
        **f1_at(probs, labels, threshold),
        "log_loss": binary_log_loss(probs, labels),
        "ece": expected_calibration_error(probs, labels, n_bins),
        "n": int(len(labels)),
        "positive_rate": float(labels.mean()) if len(labels) else 0.0,
        "reliability": reliability_bins(probs, labels, n_bins),
    }
