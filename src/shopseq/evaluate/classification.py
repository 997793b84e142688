"""Next-behaviour classification metrics: macro-F1, a per-class report, log-loss (pure numpy)."""

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
