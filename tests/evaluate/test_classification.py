import math

import numpy as np
import pytest

from shopseq.evaluate.classification import (
    best_f1_threshold,
    binary_log_loss,
    binary_report,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    f1_at,
    log_loss,
    macro_f1,
    pr_auc,
    reliability_bins,
    roc_auc,
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


def test_roc_auc_by_hand_with_a_tie():
    # pairs (pos, neg): (0.8, 0.1) win, (0.8, 0.4) win, (0.4, 0.1) win, (0.4, 0.4) tie -> 3.5 / 4
    scores = np.array([0.8, 0.4, 0.4, 0.1])
    labels = np.array([1, 1, 0, 0])
    assert roc_auc(scores, labels) == pytest.approx(3.5 / 4)


def test_roc_auc_matches_sklearn_and_is_nan_with_one_class():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 200) / 4  # many ties
    labels = rng.integers(0, 2, 200)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert math.isnan(roc_auc(scores, np.ones(200)))


def test_pr_auc_by_hand():
    # ranked: 0.9 (pos) 0.8 (neg) 0.7 (pos): AP = 1/2 * 1 + 1/2 * 2/3
    assert pr_auc(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])) == pytest.approx(5 / 6)


def test_pr_auc_matches_sklearn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, 300) / 5
    labels = rng.integers(0, 2, 300)
    assert pr_auc(scores, labels) == pytest.approx(average_precision_score(labels, scores))


def test_f1_at_and_the_threshold_tuned_for_it():
    probs = np.array([0.9, 0.6, 0.4, 0.2])
    labels = np.array([1, 0, 1, 0])
    got = f1_at(probs, labels, 0.5)  # predicts rows 0, 1: tp 1, p 1/2, r 1/2
    assert got == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    # thresholds 0.9: f1 2/3; 0.6: 1/2; 0.4: p 2/3 r 1 -> 4/5; 0.2: p 1/2 r 1 -> 2/3
    assert best_f1_threshold(probs, labels) == 0.4
    assert f1_at(probs, labels, 0.4)["f1"] == pytest.approx(0.8)


def test_binary_log_loss_by_hand():
    got = binary_log_loss(np.array([0.8, 0.3]), np.array([1, 0]))
    assert got == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)


def test_ece_and_reliability_bins_by_hand():
    probs = np.array([0.1, 0.2, 0.7, 0.9])
    labels = np.array([0, 1, 1, 1])
    bins = reliability_bins(probs, labels, n_bins=2)
    assert bins[0] == pytest.approx(
        {"lo": 0.0, "hi": 0.5, "count": 2, "mean_prob": 0.15, "positive_rate": 0.5}
    )
    assert bins[1]["count"] == 2 and bins[1]["mean_prob"] == pytest.approx(0.8)
    # 2/4 * |0.15 - 0.5| + 2/4 * |0.8 - 1.0| = 0.175 + 0.1
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.275)


def test_ece_puts_probability_one_in_the_last_bin():
    bins = reliability_bins(np.array([1.0]), np.array([1]), n_bins=4)
    assert [b["count"] for b in bins] == [0, 0, 0, 1]
    assert expected_calibration_error(np.array([1.0]), np.array([1]), 4) == 0.0


def test_binary_report_has_every_metric():
    report = binary_report(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0]), threshold=0.5)
    assert report["roc_auc"] == 1.0 and report["pr_auc"] == 1.0
    assert report["f1"] == pytest.approx(2 / 3)
    assert set(report) >= {"log_loss", "ece", "reliability", "threshold", "n", "positive_rate"}
