import math

import numpy as np
import polars as pl
import pytest
import torch

from shopseq.data.batching import history_batch
from shopseq.data.dataset import Dataset, prepare
from shopseq.data.sequences import Sequences, SplitSpec
from shopseq.errors import ShopseqInputError
from shopseq.models.base import Recommender
from shopseq.models.baselines import (
    BASELINES,
    ItemKNN,
    ItemKNNConfig,
    Markov,
    MostPopular,
    RecentPopConfig,
    RecentPopular,
    make_baseline,
)

DAY_MS = 86_400_000
SCHEMA = {"user_id": pl.Utf8, "item_id": pl.Utf8, "behavior": pl.Utf8, "timestamp": pl.Int64}


def dataset(sequences: dict[str, list[str]], times: dict[str, list[int]] | None = None) -> Dataset:
    """One "view" event per item; timestamps are positions unless given (then unit ms)."""
    rows = [
        (user, item, "view", (times[user][i] if times else i))
        for user, items in sequences.items()
        for i, item in enumerate(items)
    ]
    events = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    return prepare(events, SplitSpec(), "ms" if times else "ordinal")


TOY = {"u1": ["a", "b", "c"], "u2": ["a", "b"], "u3": ["b", "d"]}


def scores_after(model, ds: Dataset, histories: list[list[str]]) -> np.ndarray:
    """[len(histories), n_tokens] scores of ``model`` after each raw-item history."""
    lengths = [len(h) for h in histories]
    items = np.concatenate([ds.vocab.encode_items(pl.Series(h)) for h in histories])
    seqs = Sequences(
        users=np.array([f"x{i}" for i in range(len(histories))]),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        item_ids=items,
        behavior_ids=np.ones_like(items),
        timestamps=np.zeros_like(items),
    )
    users = np.arange(len(histories))
    batch = history_batch(seqs, users, seqs.offsets[1:], model.max_len)
    scores = model.score(batch)
    assert scores.shape == (len(histories), ds.vocab.n_tokens)
    assert scores.dtype == torch.float32
    return scores.numpy()


def column(ds: Dataset, item: str) -> int:
    return int(ds.vocab.encode_items(pl.Series([item]))[0])


def test_most_popular_counts_training_events():
    ds = dataset(TOY)
    model = MostPopular().fit(ds.sequences, ds.vocab, ds.time_unit)
    scores = scores_after(model, ds, [["a"], ["d", "c"]])
    counts = {item: 2 if item == "a" else 3 if item == "b" else 1 for item in "abcd"}
    for item, count in counts.items():
        assert scores[0, column(ds, item)] == count
    np.testing.assert_array_equal(scores[0], scores[1])  # the same list for everyone


def test_recent_pop_halves_the_weight_of_an_event_one_half_life_older():
    ds = dataset(
        {"u1": ["a", "b"], "u2": ["c", "a"]},
        times={"u1": [0, 14 * DAY_MS], "u2": [7 * DAY_MS, 14 * DAY_MS]},
    )
    model = RecentPopular(RecentPopConfig(half_life_days=7.0)).fit(ds.sequences, ds.vocab, "ms")
    scores = scores_after(model, ds, [["a"]])[0]
    assert scores[column(ds, "a")] == pytest.approx(1.0 + 0.25)  # 14 days old + latest
    assert scores[column(ds, "b")] == pytest.approx(1.0)
    assert scores[column(ds, "c")] == pytest.approx(0.5)


def test_recent_pop_refuses_ordinal_timestamps():
    ds = dataset(TOY)
    with pytest.raises(ShopseqInputError) as err:
        RecentPopular().fit(ds.sequences, ds.vocab, ds.time_unit)
    assert str(err.value) == (
        "recent-pop needs real timestamps, but this dataset has order-only (ordinal) timestamps"
    )


def test_markov_scores_transitions_then_popularity():
    ds = dataset({"u1": ["a", "b", "c"], "u2": ["a", "b"], "u3": ["b", "d"], "u4": ["d", "e"]})
    model = Markov().fit(ds.sequences, ds.vocab, ds.time_unit)
    after_b, after_e = scores_after(model, ds, [["c", "b"], ["e"]])
    # b -> c once, b -> d once: both beat every item never seen after b, whatever its popularity.
    assert math.floor(after_b[column(ds, "c")]) == 1
    assert math.floor(after_b[column(ds, "d")]) == 1
    assert after_b[column(ds, "d")] > after_b[column(ds, "c")]  # tie broken by pop (2 > 1)
    assert after_b[column(ds, "a")] < 1 and after_b[column(ds, "a")] > after_b[column(ds, "e")]
    # Nothing ever followed e: pure popularity, b (3 events) first.
    ranked = sorted("abcde", key=lambda i: -after_e[column(ds, i)])
    assert ranked[0] == "b" and ranked[-2:] in (["c", "e"], ["e", "c"])


def test_markov_counts_only_transitions_inside_one_user():
    ds = dataset({"u1": ["a", "b"], "u2": ["c", "d"]})
    model = Markov().fit(ds.sequences, ds.vocab, ds.time_unit)
    after_b = scores_after(model, ds, [["b"]])[0]
    assert after_b[column(ds, "c")] < 1  # u1's b is not followed by u2's c


def test_itemknn_is_cosine_of_co_occurrence():
    ds = dataset(TOY)
    model = ItemKNN(ItemKNNConfig(n_last=1, window=None, backoff=0.0)).fit(
        ds.sequences, ds.vocab, "ordinal"
    )
    after_a = scores_after(model, ds, [["a"]])[0]
    # a is in 2 users, b in 3, c in 1; a co-occurs with b twice and with c once.
    assert after_a[column(ds, "b")] == pytest.approx(2 / math.sqrt(2 * 3))
    assert after_a[column(ds, "c")] == pytest.approx(1 / math.sqrt(2 * 1))
    assert after_a[column(ds, "d")] == 0.0
    assert after_a[column(ds, "a")] == 0.0  # no self-similarity


def test_itemknn_sums_recency_weighted_neighbours_of_the_last_items():
    ds = dataset(TOY)
    config = ItemKNNConfig(n_last=2, decay=0.5, window=None, backoff=0.0)
    model = ItemKNN(config).fit(ds.sequences, ds.vocab, "ordinal")
    after_da = scores_after(model, ds, [["c", "d", "a"]])[0]  # c falls outside n_last=2
    # sim(a, b) = 2/sqrt(6) at weight 1; sim(d, b) = 1/sqrt(3) at weight 0.5.
    assert after_da[column(ds, "b")] == pytest.approx(2 / math.sqrt(6) + 0.5 / math.sqrt(3))
    assert after_da[column(ds, "c")] == pytest.approx(1 / math.sqrt(2))  # from a only


def test_itemknn_window_only_counts_near_events():
    ds = dataset({"u1": ["a", "b", "c"]})
    model = ItemKNN(ItemKNNConfig(n_last=1, window=1, backoff=0.0)).fit(
        ds.sequences, ds.vocab, "ordinal"
    )
    after_a = scores_after(model, ds, [["a"]])[0]
    assert after_a[column(ds, "b")] == pytest.approx(1.0)
    assert after_a[column(ds, "c")] == 0.0


def test_itemknn_weighs_items_that_came_before_by_backward():
    ds = dataset({"u1": ["a", "b"], "u2": ["c", "a"]})
    config = ItemKNNConfig(n_last=1, window=2, backward=0.25, backoff=0.0)
    model = ItemKNN(config).fit(ds.sequences, ds.vocab, "ordinal")
    after_a = scores_after(model, ds, [["a"]])[0]
    # a has 2 events, b and c one each: b followed a (weight 1), c preceded a (0.25).
    assert after_a[column(ds, "b")] == pytest.approx(1 / math.sqrt(2))
    assert after_a[column(ds, "c")] == pytest.approx(0.25 / math.sqrt(2))


def test_popularity_backoff_orders_items_no_neighbour_reaches():
    ds = dataset({"u1": ["a", "b"], "u2": ["c", "d"], "u3": ["c", "e"]})
    model = ItemKNN().fit(ds.sequences, ds.vocab, "ordinal")
    after_a = scores_after(model, ds, [["a"]])[0]
    assert after_a[column(ds, "b")] > after_a[column(ds, "c")] > after_a[column(ds, "d")] > 0


def test_fit_uses_only_the_sequences_handed_in():
    ds = dataset(TOY)
    train = ds.train_sequences("test")  # drops each user's last event
    model = MostPopular().fit(train, ds.vocab, ds.time_unit)
    np.testing.assert_array_equal(
        model.pop, np.bincount(train.item_ids, minlength=ds.vocab.n_tokens)
    )
    assert model.pop[column(ds, "c")] == 0  # c only ever appears as u1's test target


def test_every_baseline_is_a_recommender_and_scores_every_token():
    ds = dataset(TOY, times={u: [i * DAY_MS for i in range(len(s))] for u, s in TOY.items()})
    for name, cls in BASELINES.items():
        model = make_baseline(name)
        assert isinstance(model, cls)
        assert isinstance(model, Recommender)
        model.fit(ds.sequences, ds.vocab, ds.time_unit)
        assert np.isfinite(scores_after(model, ds, [["a"], ["b", "d"]])).all()


def test_unknown_baseline_names_the_choices():
    with pytest.raises(ShopseqInputError) as err:
        make_baseline("x")
    assert str(err.value) == "unknown baseline 'x'; choose one of: pop, recent-pop, markov, itemknn"


def test_scoring_before_fit_is_an_error():
    ds = dataset(TOY)
    with pytest.raises(RuntimeError, match="not fitted"):
        scores_after(Markov(), ds, [["a"]])
