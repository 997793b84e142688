import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from shopseq.data.schema import MASK, N_SPECIAL
from shopseq.train.objectives import (
    behavior_loss,
    full_softmax_loss,
    mask_items,
    popularity_probs,
    sample_negatives,
    sampled_softmax_loss,
    total_loss,
    uniform_log_q,
)

V, D = 12, 4  # 10 items + PAD + MASK


def setup():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(6, D, generator=g)
    table = torch.randn(V, D, generator=g)
    targets = torch.tensor([2, 3, 5, 11, 2, 7])
    return h, table, targets


def assert_sampled_loss_and_gradients_match(
    expected_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor,
) -> None:
    """sampled_softmax_loss and ``expected_fn`` of (h, table) agree, and so do both gradients."""
    h1, t1 = h.clone().requires_grad_(), table.clone().requires_grad_()
    h2, t2 = h.clone().requires_grad_(), table.clone().requires_grad_()
    got = sampled_softmax_loss(h1, t1, targets, negatives, log_q)
    expected = expected_fn(h2, t2)
    got.backward()
    expected.backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(h1.grad, h2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)


def test_full_softmax_by_hand_ignores_special_ids():
    h, table, targets = setup()
    logits = h @ table[N_SPECIAL:].T
    expected = F.cross_entropy(logits, targets - N_SPECIAL)
    torch.testing.assert_close(full_softmax_loss(h, table, targets), expected)


def test_sampled_softmax_equals_full_when_all_items_are_sampled():
    h, table, targets = setup()
    every_item = torch.arange(N_SPECIAL, V)
    sampled = sampled_softmax_loss(h, table, targets, every_item, uniform_log_q(V))
    torch.testing.assert_close(sampled, full_softmax_loss(h, table, targets))


def test_sampled_softmax_removes_accidental_hits():
    h, table, targets = setup()
    # the only negatives are the row's own answer: nothing is left to compete with it
    loss = sampled_softmax_loss(h[:1], table, targets[:1], targets[:1].repeat(3), uniform_log_q(V))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_sampled_softmax_masks_hits_only_in_their_rows_with_exact_gradients():
    h, table, targets = setup()
    negatives = torch.tensor([5, 4, 2, 5, 9])  # hits rows 0 and 4 (item 2), row 2 twice (5)
    log_q = uniform_log_q(V)

    def by_hand(h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        losses = []
        for row, target in enumerate(targets.tolist()):
            others = negatives[negatives != target]
            logits = torch.cat([table[target : target + 1], table[others]]) @ h[row]
            losses.append(-torch.log_softmax(logits, 0)[0])
        return torch.stack(losses).mean()

    assert_sampled_loss_and_gradients_match(by_hand, h, table, targets, negatives, log_q)


def test_per_position_negatives_match_a_shared_draw_row_by_row_with_exact_gradients():
    h, table, targets = setup()
    log_q = torch.log(popularity_probs(torch.tensor([2, 2, 2, 3, 9]), V))
    # each row its own negatives; rows 0 and 4 draw their own answer (item 2)
    negatives = torch.tensor([[2, 4, 9], [5, 5, 6], [8, 7, 3], [4, 10, 2], [2, 2, 3], [6, 9, 4]])

    def row_by_row(h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        rows = [
            sampled_softmax_loss(h[i : i + 1], table, targets[i : i + 1], negatives[i], log_q)
            for i in range(len(targets))
        ]
        return torch.stack(rows).mean()

    assert_sampled_loss_and_gradients_match(row_by_row, h, table, targets, negatives, log_q)


def test_per_position_sampled_softmax_equals_full_when_every_row_samples_all_items():
    h, table, targets = setup()
    every_item = torch.arange(N_SPECIAL, V).repeat(len(targets), 1)  # [N, V - N_SPECIAL]
    sampled = sampled_softmax_loss(h, table, targets, every_item, uniform_log_q(V))
    torch.testing.assert_close(sampled, full_softmax_loss(h, table, targets))


def test_log_q_correction_subtracts_log_probability():
    h, table, targets = setup()
    log_q = torch.log(popularity_probs(torch.tensor([2, 2, 2, 3]), V))
    negatives = torch.tensor([4, 5])
    row = 0  # target 2
    pos = h[row] @ table[2] - log_q[2]
    neg = h[row] @ table[negatives].T - log_q[negatives]
    expected = -torch.log_softmax(torch.cat([pos[None], neg]), 0)[0]
    got = sampled_softmax_loss(h[:1], table, targets[:1], negatives, log_q)
    torch.testing.assert_close(got, expected)


def test_popularity_probs_smooth_counts_and_skip_specials():
    probs = popularity_probs(torch.tensor([2, 2, 3]), 5, smoothing=1.0)
    assert probs.tolist() == pytest.approx([0, 0, 3 / 6, 2 / 6, 1 / 6])


def test_negatives_are_real_items_and_reproducible():
    a = sample_negatives((500,), None, V, torch.Generator().manual_seed(1))
    b = sample_negatives((500,), None, V, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.min() >= N_SPECIAL and a.max() < V
    probs = popularity_probs(torch.tensor([3]), V)
    pop = sample_negatives((40, 5), probs, V, torch.Generator())
    assert pop.shape == (40, 5) and pop.min() >= N_SPECIAL


def test_uniform_log_q():
    log_q = uniform_log_q(V)
    assert log_q[N_SPECIAL:].tolist() == pytest.approx([-math.log(V - N_SPECIAL)] * (V - N_SPECIAL))
    assert torch.isinf(log_q[:N_SPECIAL]).all()


def test_mask_items_masks_real_events_only_and_at_least_one_per_row():
    items = torch.tensor([[0, 0, 5, 6], [3, 4, 5, 6]])
    pad = items == 0
    masked, chosen = mask_items(items, pad, 0.0, torch.Generator().manual_seed(0))
    assert chosen.tolist() == [[False, False, False, True], [False, False, False, True]]
    assert masked[:, -1].tolist() == [MASK, MASK]
    _, chosen = mask_items(items, pad, 1.0, torch.Generator().manual_seed(0))
    assert chosen.tolist() == (~pad).tolist()


def test_behavior_loss_and_weighted_total():
    logits = torch.tensor([[0.0, 0.0, 0.0]])
    assert behavior_loss(logits, torch.tensor([1])).item() == pytest.approx(math.log(3))
    parts = {"item": torch.tensor(2.0), "behavior": torch.tensor(4.0)}
    assert total_loss(parts, {"item": 1.0, "behavior": 0.25}).item() == pytest.approx(3.0)


def test_full_softmax_chunks_do_not_change_the_loss():
    h, table, targets = setup()
    torch.testing.assert_close(
        full_softmax_loss(h, table, targets, chunk=4), full_softmax_loss(h, table, targets)
    )
