import numpy as np
import polars as pl
import pytest
import torch

from shopseq.data.batching import Batch, history_batch
from shopseq.data.dataset import Dataset, prepare
from shopseq.data.schema import MASK, PAD
from shopseq.data.sequences import SplitSpec
from shopseq.errors import ShopseqInputError
from shopseq.evaluate.runner import (
    Recommendation,
    evaluate_baseline,
    evaluate_phase,
    masked_scores,
    recommend,
)
from shopseq.models.baselines import BASELINES, MostPopular, make_baseline

SCHEMA = {"user_id": pl.Utf8, "item_id": pl.Utf8, "behavior": pl.Utf8, "timestamp": pl.Int64}
INF = float("inf")


def dataset(sequences: dict[str, list[str]], time_unit: str = "ordinal") -> Dataset:
    rows = [
        (user, item, "buy", i) for user, items in sequences.items() for i, item in enumerate(items)
    ]
    return prepare(pl.DataFrame(rows, schema=SCHEMA, orient="row"), SplitSpec(), time_unit)


class TableModel:
    """Scores read from a fixed [n_users, n_tokens] table; reads a window of ``max_len``."""

    def __init__(self, table: torch.Tensor, max_len: int = 1) -> None:
        self.table = table
        self.max_len = max_len
        self.seen_batches: list[Batch] = []

    def score(self, batch: Batch) -> torch.Tensor:
        self.seen_batches.append(batch)
        return self.table[batch.users]


def col(ds: Dataset, item: str) -> int:
    return int(ds.vocab.encode_items(pl.Series([item]))[0])


def test_masked_scores_filter_the_full_history_not_just_the_window():
    ds = dataset({"u": ["a", "b", "c", "d"], "w": ["e", "a"]})
    table = torch.arange(ds.vocab.n_tokens, dtype=torch.float32).repeat(2, 1) + 100
    model = TableModel(table, max_len=1)
    users, ends = np.array([0]), np.array([3])  # u's history: a b c (window of 1: c)
    batch = history_batch(ds.sequences, users, ends, model.max_len)
    assert batch.item_ids.tolist() == [[col(ds, "c")]]
    scores = masked_scores(model, batch, ds.sequences, ends, filter_seen=True)[0]
    masked = {i for i in "abcde" if scores[col(ds, i)] == -INF}
    assert masked == {"a", "b", "c"}  # a and b lie outside the window, d is after history_end
    assert scores[PAD] == -INF and scores[MASK] == -INF
    unfiltered = masked_scores(model, batch, ds.sequences, ends, filter_seen=False)[0]
    assert torch.isfinite(unfiltered[2:]).all()
    assert unfiltered[PAD] == -INF and unfiltered[MASK] == -INF


def test_masked_scores_filter_each_row_with_its_own_history():
    ds = dataset({"u": ["a", "b"], "v": ["c", "d", "e"], "w": ["b"]})
    model = TableModel(torch.zeros(3, ds.vocab.n_tokens), max_len=2)
    users, ends = np.array([1, 0, 2]), np.array([4, 2, 6])  # v: c d, u: a b, w: b
    batch = history_batch(ds.sequences, users, ends, model.max_len)
    scores = masked_scores(model, batch, ds.sequences, ends, filter_seen=True)
    masked = [{i for i in "abcde" if row[col(ds, i)] == -INF} for row in scores]
    assert masked == [{"c", "d"}, {"a", "b"}, {"b"}]


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_scores_are_fresh_tensors_the_runner_may_write_into(name):
    ds = dataset({"u1": ["a", "b", "c"], "u2": ["b", "c", "a"], "u3": ["c", "a"]}, "ms")
    model = make_baseline(name).fit(ds.train_sequences("test"), ds.vocab, ds.time_unit)
    ends = ds.sequences.offsets[1:]
    batch = history_batch(ds.sequences, np.arange(3), ends, 2)
    first = model.score(batch)
    expected = first.clone()
    masked_scores(model, batch, ds.sequences, ends, filter_seen=True)  # writes -inf into its copy
    first.fill_(-1.0)
    assert torch.equal(model.score(batch), expected)


def test_recommend_is_the_top_k_of_the_masked_scores():
    ds = dataset({"u1": ["a", "b", "c"], "u2": ["d", "e"], "u3": ["f", "g", "h", "a"]})
    gen = torch.Generator().manual_seed(0)
    table = torch.rand(ds.sequences.n_users, ds.vocab.n_tokens, generator=gen)
    table[:, [PAD, MASK]] = 10.0  # special ids must never be recommended however high
    model = TableModel(table, max_len=2)
    recs = recommend(model, ds, ["u3", "u1"], k=3)
    users = np.array([2, 0])
    ends = ds.sequences.offsets[users + 1]
    batch = history_batch(ds.sequences, users, ends, model.max_len)
    scores = masked_scores(model, batch, ds.sequences, ends, filter_seen=True)
    for rec, row in zip(recs, scores, strict=True):
        top = row.topk(3)
        assert isinstance(rec, Recommendation)
        assert rec.items == ds.vocab.decode_items(top.indices.numpy())
        assert rec.scores == pytest.approx(top.values.tolist())
    assert [r.user for r in recs] == ["u3", "u1"]
    assert not {"f", "g", "h", "a"} & set(recs[0].items)  # u3's whole sequence is seen


def test_recommend_returns_fewer_items_when_the_catalogue_runs_out():
    ds = dataset({"u1": ["a", "b", "c"], "u2": ["a", "d"]})
    model = TableModel(torch.zeros(2, ds.vocab.n_tokens))
    (rec,) = recommend(model, ds, ["u1"], k=10)
    assert rec.items == ["d"]
    assert len(recommend(model, ds, ["u1"], k=10, filter_seen=False)[0].items) == 4


def test_recommend_names_unknown_users():
    ds = dataset({"u1": ["a", "b"]})
    model = TableModel(torch.zeros(1, ds.vocab.n_tokens))
    with pytest.raises(ShopseqInputError) as err:
        recommend(model, ds, ["u1", "nobody"], k=2)
    assert str(err.value) == "unknown user 'nobody': not in this dataset"


def test_evaluate_phase_ranks_targets_against_masked_scores_by_hand():
    # test targets: u1 -> c, u2 -> e; valid targets: u1 -> b, u2 -> d.
    ds = dataset({"u1": ["a", "b", "c"], "u2": ["a", "d", "e"]})
    scores = {"a": 9.0, "b": 1.0, "c": 5.0, "d": 5.0, "e": 7.0}
    row = torch.zeros(ds.vocab.n_tokens)
    for item, value in scores.items():
        row[col(ds, item)] = value
    row[[PAD, MASK]] = 100.0
    model = TableModel(row.repeat(2, 1))
    test = evaluate_phase(model, ds, "test", ks=(1, 2), progress=False)
    # u1: a, b seen -> e 7 > c 5 = d 5 -> pessimistic rank 3; u2: a, d seen -> e first.
    assert test["HR@1"] == 0.5 and test["HR@2"] == 0.5
    assert test["MRR@2"] == 0.5
    optimistic = evaluate_phase(model, ds, "test", ks=(2,), ties="optimistic", progress=False)
    assert optimistic["MRR@2"] == pytest.approx((1 / 2 + 1) / 2)
    # valid, a seen: u1 target b (1) ranks behind e, c, d -> 4; u2 target d (5) ties c -> 3.
    valid = evaluate_phase(model, ds, "valid", ks=(4,), progress=False)
    assert valid["MRR@4"] == pytest.approx((1 / 4 + 1 / 3) / 2)
    unfiltered = evaluate_phase(model, ds, "valid", ks=(1,), filter_seen=False, progress=False)
    assert unfiltered["HR@1"] == 0.0  # a (9) wins when seen items stay


def test_the_model_never_sees_the_targets():
    ds = dataset({"u1": ["a", "b", "c"], "u2": ["a", "d", "e"]})
    model = TableModel(torch.zeros(2, ds.vocab.n_tokens), max_len=3)
    evaluate_phase(model, ds, "test", progress=False, batch_size=1)
    assert len(model.seen_batches) == 2
    for batch in model.seen_batches:
        assert batch.targets is None and batch.target_behavior_ids is None
        assert col(ds, "c") not in batch.item_ids.tolist()[0]
        assert col(ds, "e") not in batch.item_ids.tolist()[0]


class TinyModule(torch.nn.Module):
    max_len = 2

    def __init__(self, n_tokens: int) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.linspace(0, 1, n_tokens))
        self.modes: list[bool] = []

    def score(self, batch: Batch) -> torch.Tensor:
        self.modes.append(self.training)
        assert not torch.is_grad_enabled()
        return self.bias.expand(batch.size, -1)


def test_torch_models_are_scored_in_eval_mode_without_gradients():
    ds = dataset({"u1": ["a", "b", "c"], "u2": ["a", "d", "e"]})
    model = TinyModule(ds.vocab.n_tokens)
    assert model.training
    evaluate_phase(model, ds, "test", progress=False)
    assert model.modes == [False]
    assert model.training  # a trainer evaluating between epochs keeps its mode
    (rec,) = recommend(model, ds, ["u1"], k=1)
    assert rec.items == ["e"]  # highest bias among unseen items


def test_evaluate_baseline_counts_only_each_phase_training_inputs():
    # v only ever occurs as a valid target, t only as a test target: if the counts leaked,
    # each would be the most popular unseen item and rank first.
    ds = dataset(
        {"u1": ["a", "v", "t"], "u2": ["a", "v", "t"], "u3": ["a", "v", "t"], "u4": ["b", "c", "e"]}
    )
    results = evaluate_baseline("pop", ds, ks=(1, 5), progress=False)
    # test: a, v seen, b (1) and c (1) beat t (0), which ties e -> rank 4 (u4's e: a, v above).
    assert results["test"]["HR@1"] == 0.0
    assert results["test"]["MRR@5"] == pytest.approx(1 / 4)
    # valid: pop a 3, b 1; v ranks after b, tied with c, e, t -> 5 (u4's c: behind a, ties v e t).
    assert results["valid"]["MRR@5"] == pytest.approx(1 / 5)
    optimistic = evaluate_baseline("pop", ds, ks=(5,), ties="optimistic", progress=False)
    assert optimistic["test"]["MRR@5"] == pytest.approx(1 / 3)
    assert optimistic["valid"]["MRR@5"] == pytest.approx(1 / 2)


def test_unknown_phase_and_empty_phase_are_input_errors():
    ds = dataset({"u1": ["a", "b"]})  # a test target, no valid one
    model = TableModel(torch.zeros(1, ds.vocab.n_tokens))
    with pytest.raises(
        ShopseqInputError, match="unknown phase 'train'; choose one of: valid, test"
    ):
        evaluate_phase(model, ds, "train", progress=False)
    with pytest.raises(ShopseqInputError, match="the valid phase has no target events"):
        evaluate_phase(model, ds, "valid", progress=False)


def load_beauty(path) -> Dataset:
    """S3-Rec Beauty straight from the file (one user per line), timestamps = position."""
    users, items, positions = [], [], []
    with open(path) as f:
        for line in f:
            user, *seq = line.split()
            users += [user] * len(seq)
            items += seq
            positions += range(len(seq))
    events = pl.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "behavior": ["buy"] * len(items),
            "timestamp": positions,
        },
        schema=SCHEMA,
    )
    return prepare(events, SplitSpec(), "ordinal")


@pytest.mark.realdata
def test_beauty_most_popular_pins_the_protocol(real_data):
    """Leave-one-out, full catalogue, seen items filtered, most popular on Amazon Beauty."""
    ds = load_beauty(real_data("amazon-beauty/Beauty.txt"))
    assert (ds.sequences.n_users, ds.vocab.n_items, ds.sequences.n_events) == (22363, 12101, 198502)

    model = MostPopular().fit(ds.train_sequences("test"), ds.vocab, ds.time_unit)
    pessimistic = evaluate_phase(model, ds, "test", ks=(10,), progress=False)
    assert round(pessimistic["HR@10"], 4) == 0.0130
    assert round(pessimistic["NDCG@10"], 4) == 0.0059

    optimistic = evaluate_phase(model, ds, "test", ks=(10,), ties="optimistic", progress=False)
    assert round(optimistic["HR@10"], 4) == 0.0141
    assert round(optimistic["NDCG@10"], 4) == 0.0063

    # Counting ALL events includes every test target itself (a leak). It is here only because
    # it reproduces the published S3-Rec PopRec row exactly (HR@10 0.0152, NDCG@10 0.0068):
    # the published figure is inflated by the leak, our protocol gives the two numbers above.
    leaky = MostPopular().fit(ds.sequences, ds.vocab, ds.time_unit)
    leaked = evaluate_phase(leaky, ds, "test", ks=(10,), progress=False)
    assert round(leaked["HR@10"], 4) == 0.0152
    assert round(leaked["NDCG@10"], 4) == 0.0068
