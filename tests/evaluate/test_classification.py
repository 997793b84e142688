import math

import numpy as np
import pytest

from shopseq.evaluate.classification import (
    classification_report,
    confusion_matrix,
    log_loss,
    macro_f1,
)


def test_confusion_matrix_counts_true_rows_predicted_columns():
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_macro_f1_by_hand():
    # class 0: p=1, r=1/2, f1=2/3; class 1: p=1/3, r=1, f1=1/2; class 2: f1=0
    got = macro_f1(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert got == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_macro_f1_ignores_classes_absent_from_truth_and_predictions():
    assert macro_f1(np.array([0, 1]), np.array([0, 1]), 5) == 1.0


def test_log_loss_by_hand():
    probs = np.array([[0.5, 0.5], [0.1, 0.9]])
    assert log_loss(probs, np.array([0, 1])) == pytest.approx(-(math.log(0.5) + math.log(0.9)) / 2)


def test_report_has_per_class_support_and_metrics():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    report = classification_report(probs, np.array([0, 1, 1]), ["view", "buy"])
    assert report["accuracy"] == pytest.approx(2 / 3)
    per_class = report["per_class"]
    assert isinstance(per_class, dict)
    assert per_class["buy"]["support"] == 2
    assert per_class["buy"]["recall"] == pytest.approx(0.5)
    assert per_class["view"]["precision"] == pytest.approx(0.5)
