import math

import pytest
import torch

from shopseq.evaluate.ranking import (
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    ranking_metrics,
    ranks_from_scores,
    recall_at_k,
)

INF = float("inf")


def test_hand_computed_metrics_for_ranks_1_3_11():
    ranks = torch.tensor([1, 3, 11])
    assert hit_rate_at_k(ranks, 10).tolist() == [1.0, 1.0, 0.0]
    assert ndcg_at_k(ranks, 10).tolist() == pytest.approx([1.0, 0.5, 0.0])  # 1/log2(4) = 0.5
    assert mrr_at_k(ranks, 10).tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    metrics = ranking_metrics(ranks, ks=(10,))
    assert metrics["HR@10"] == pytest.approx(2 / 3)
    assert metrics["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert metrics["MRR@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert metrics["Recall@10"] == pytest.approx(2 / 3)


def test_cut_off_excludes_ranks_beyond_k():
    ranks = torch.tensor([1, 3, 11])
    metrics = ranking_metrics(ranks, ks=(1, 3, 20))
    assert metrics["HR@1"] == pytest.approx(1 / 3)
    assert metrics["NDCG@3"] == pytest.approx((1 + 0.5) / 3)
    assert metrics["MRR@20"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 3)
    assert metrics["NDCG@20"] == pytest.approx((1 + 0.5 + 1 / math.log2(12)) / 3)


def test_ranking_metrics_has_every_metric_at_every_k():
    metrics = ranking_metrics(torch.tensor([2]), ks=(5, 10, 20))
    assert set(metrics) == {
        f"{m}@{k}" for m in ("HR", "NDCG", "MRR", "Recall") for k in (5, 10, 20)
    }
    assert metrics["NDCG@5"] == pytest.approx(1 / math.log2(3))
    assert metrics["MRR@5"] == pytest.approx(0.5)


def test_ranking_metrics_of_no_user_is_nan():
    metrics = ranking_metrics(torch.zeros(0, dtype=torch.long), ks=(10,))
    assert math.isnan(metrics["HR@10"])


def test_recall_over_several_targets_is_the_share_found():
    ranks = torch.tensor([[1, 4, 12], [30, 40, 50]])  # [B, n_targets]
    assert recall_at_k(ranks, 10).tolist() == pytest.approx([2 / 3, 0.0])
    assert recall_at_k(torch.tensor([3, 11]), 10).tolist() == [1.0, 0.0]


def test_ranks_without_ties():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [4.0, 3.0, 2.0, 1.0]])
    targets = torch.tensor([2, 3])
    assert ranks_from_scores(scores, targets).tolist() == [2, 4]
    assert ranks_from_scores(scores, targets, ties="optimistic").tolist() == [2, 4]


def test_ties_rank_pessimistically_or_optimistically():
    # target 1 scores 0.5; one item above it, two other items tie with it.
    scores = torch.tensor([[0.5, 0.5, 0.9, 0.5, 0.1]])
    targets = torch.tensor([1])
    assert ranks_from_scores(scores, targets, ties="pessimistic").tolist() == [4]
    assert ranks_from_scores(scores, targets, ties="optimistic").tolist() == [2]
    assert ranks_from_scores(scores, targets).tolist() == [4]  # pessimistic is the default


def test_constant_scores_rank_the_target_last_by_default():
    scores = torch.zeros(2, 100)
    targets = torch.tensor([0, 57])
    assert ranks_from_scores(scores, targets).tolist() == [100, 100]
    assert ranks_from_scores(scores, targets, ties="optimistic").tolist() == [1, 1]


def test_masked_items_never_rank_above_the_target():
    scores = torch.tensor([[-INF, -INF, 0.2, 0.1, -INF]])
    targets = torch.tensor([3])
    assert ranks_from_scores(scores, targets).tolist() == [2]
    # Even when the target holds the lowest finite score, -inf items stay below it.
    assert ranks_from_scores(scores, targets, ties="optimistic").tolist() == [2]
    assert ranks_from_scores(torch.tensor([[-INF, -INF, -5.0]]), torch.tensor([2])).tolist() == [1]


def test_a_masked_target_ties_with_every_masked_item_pessimistically():
    scores = torch.tensor([[-INF, -INF, 0.2, -INF]])
    assert ranks_from_scores(scores, torch.tensor([3])).tolist() == [4]


def test_nan_target_score_ranks_last():
    scores = torch.tensor([[0.1, float("nan"), 0.3]])
    assert ranks_from_scores(scores, torch.tensor([1])).tolist() == [3]
    assert ranks_from_scores(scores, torch.tensor([1]), ties="optimistic").tolist() == [3]


def test_k_bigger_than_the_catalogue_counts_every_target():
    scores = torch.tensor([[0.3, 0.2, 0.1], [0.1, 0.2, 0.3]])
    ranks = ranks_from_scores(scores, torch.tensor([2, 0]))
    assert ranks.tolist() == [3, 3]
    metrics = ranking_metrics(ranks, ks=(50,))
    assert metrics["HR@50"] == 1.0
    assert metrics["NDCG@50"] == pytest.approx(0.5)
    assert metrics["MRR@50"] == pytest.approx(1 / 3)


def test_unknown_tie_rule_and_bad_k_are_refused():
    with pytest.raises(ValueError, match="ties must be"):
        ranks_from_scores(torch.zeros(1, 3), torch.tensor([0]), ties="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be >= 1"):
        ranking_metrics(torch.tensor([1]), ks=(0,))
