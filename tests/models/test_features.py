import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from shopseq.data.labels import active_users, purchase_labels
from shopseq.data.sequences import Sequences, build_sequences
from shopseq.data.vocab import Vocab, build_vocab
from shopseq.errors import ShopseqInputError
from shopseq.models.features import fit_feature_baseline, sequence_features

H = 3_600_000
M = 60_000
CUTOFF = 48 * H
COLUMNS = ["user_id", "item_id", "behavior", "timestamp", "category_id"]


@pytest.fixture(autouse=True)
def one_thread():
    # OpenMP in HistGradientBoosting crawls when other jobs hold the cores.
    with threadpool_limits(limits=1):
        yield


def tiny_log() -> pl.DataFrame:
    rows = [
        ("u1", "i1", "view", 1 * H, "c1"),
        ("u1", "i2", "view", 1 * H + 10 * M, "c1"),
        ("u1", "i2", "cart", 3 * H, "c1"),  # gap > 30 min: a new session
        ("u1", "i2", "buy", 25 * H, "c1"),  # next UTC day
        ("u1", "i3", "cart", 47 * H + 30 * M, "c2"),
        ("u1", "i3", "buy", 49 * H, "c2"),  # after the cut-off
        ("u2", "i1", "fav", 10 * H, "c1"),
        ("u3", "i1", "view", 50 * H, "c1"),  # only after the cut-off
    ]
    return pl.DataFrame(rows, schema=COLUMNS, orient="row")


def encode(events: pl.DataFrame, vocab: Vocab | None = None) -> tuple[Sequences, Vocab]:
    vocab = vocab or build_vocab(events)
    return build_sequences(events, vocab), vocab


def features_of(events: pl.DataFrame, raw_users: list[str], vocab: Vocab | None = None):
    seqs, vocab = encode(events, vocab)
    users = np.searchsorted(seqs.users, raw_users)
    X, names = sequence_features(seqs, users, CUTOFF, vocab)
    return [dict(zip(names, row.tolist(), strict=True)) for row in X], X


def test_features_by_hand():
    (u1, u2, u3), X = features_of(tiny_log(), ["u1", "u2", "u3"])
    assert X.dtype == np.float32
    assert u1 == pytest.approx(
        {
            "n_events": 5,
            "hours_since_last_event": 0.5,
            "hours_since_first_event": 47,
            "n_sessions": 4,
            "events_per_session": 1.25,
            "n_days_active": 2,
            "events_last_1h": 1,
            "events_last_24h": 2,
            "n_distinct_items": 3,
            "n_distinct_categories": 2,
            "n_view": 2,
            "share_view": 0.4,
            "hours_since_last_view": 48 - 1 - 10 / 60,
            "last_is_view": 0,
            "n_cart": 2,
            "share_cart": 0.4,
            "hours_since_last_cart": 0.5,
            "last_is_cart": 1,
            "n_fav": 0,
            "share_fav": 0,
            "hours_since_last_fav": 47,  # never: the longest observable (cut-off - log start)
            "last_is_fav": 0,
            "n_buy": 1,
            "share_buy": 0.2,
            "hours_since_last_buy": 23,
            "last_is_buy": 0,
            "n_carted_not_bought": 1,
        }
    )
    assert u2["n_events"] == 1 and u2["last_is_fav"] == 1 and u2["hours_since_last_event"] == 38
    assert u2["events_last_24h"] == 0 and u2["n_carted_not_bought"] == 0
    assert u3["n_events"] == 0 and u3["n_sessions"] == 0
    assert u3["hours_since_last_event"] == 47 and u3["hours_since_first_event"] == 0


def test_features_follow_the_order_of_the_users_asked_for():
    _, forward = features_of(tiny_log(), ["u1", "u2"])
    _, backward = features_of(tiny_log(), ["u2", "u1"])
    np.testing.assert_array_equal(forward, backward[::-1])


@pytest.mark.parametrize("seed", [0, 1])
def test_events_at_or_after_the_cutoff_never_change_the_features(seed):
    rng = np.random.default_rng(seed)
    n = 300
    events = pl.DataFrame(
        {
            "user_id": [f"u{u}" for u in rng.integers(0, 20, n)],
            "item_id": [f"i{i}" for i in rng.integers(0, 15, n)],
            "behavior": rng.choice(["view", "cart", "fav", "buy"], n).tolist(),
            "timestamp": rng.integers(0, 96 * H, n),
            "category_id": [f"c{c}" for c in rng.integers(0, 4, n)],
        }
    )
    planted = pl.concat(
        [
            events,
            pl.DataFrame(
                {
                    "user_id": [f"u{u}" for u in rng.integers(0, 25, 80)],
                    "item_id": [f"i{i}" for i in rng.integers(0, 15, 80)],
                    "behavior": rng.choice(["cart", "buy"], 80).tolist(),
                    "timestamp": CUTOFF + rng.integers(0, 48 * H, 80),  # the cut-off itself too
                    "category_id": [f"c{c}" for c in rng.integers(0, 6, 80)],
                }
            ),
        ]
    )
    vocab = build_vocab(planted)
    users = [f"u{u}" for u in range(20)]
    _, before = features_of(events, users, vocab)
    _, after = features_of(planted, users, vocab)
    np.testing.assert_array_equal(before, after)


def intent_log(seed: int, n_users: int) -> pl.DataFrame:
    """Users who cart something in the last 2 h before the cut-off buy after it (3% noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for t in rng.integers(0, CUTOFF - 3 * H, rng.integers(3, 12)):
            rows.append((f"u{u}", f"i{rng.integers(50)}", "view", int(t)))
        intent = rng.random() < 0.5
        if intent:
            rows.append((f"u{u}", "i7", "cart", int(CUTOFF - rng.integers(1, 2 * H))))
        if intent != (rng.random() < 0.03):
            rows.append((f"u{u}", "i7", "buy", int(CUTOFF + rng.integers(0, 12 * H))))
    rows.append(("end", "i0", "view", CUTOFF + 24 * H))
    return pl.DataFrame(rows, schema=COLUMNS[:4], orient="row")


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_baseline_learns_a_planted_purchase_signal(kind):
    seqs, vocab = encode(intent_log(seed=0, n_users=600))
    users, y = purchase_labels(
        seqs, CUTOFF, buy_behavior_id=vocab.behavior_id("buy"), horizon_ms=24 * H
    )
    X, _ = sequence_features(seqs, users, CUTOFF, vocab)
    train, test = np.arange(len(users)) < 400, np.arange(len(users)) >= 400
    model = fit_feature_baseline(X[train], y[train], kind=kind, seed=0)
    auc = roc_auc_score(y[test], model.predict_proba(X[test])[:, 1])
    assert auc > 0.9


def test_baseline_is_deterministic_for_a_seed():
    seqs, vocab = encode(intent_log(seed=1, n_users=200))
    users = active_users(seqs, CUTOFF)
    _, y = purchase_labels(seqs, CUTOFF, buy_behavior_id=vocab.behavior_id("buy"), horizon_ms=H)
    X, _ = sequence_features(seqs, users, CUTOFF, vocab)
    a = fit_feature_baseline(X, y, kind="gbm", seed=3).predict_proba(X)
    b = fit_feature_baseline(X, y, kind="gbm", seed=3).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_baseline_refuses_one_class_labels_and_unknown_kinds():
    X = np.ones((4, 2), dtype=np.float32)
    with pytest.raises(ShopseqInputError, match=r"needs labels of both classes, got \[0\]$"):
        fit_feature_baseline(X, np.zeros(4, dtype=np.int8))
    with pytest.raises(ShopseqInputError, match="unknown baseline kind 'svm'; choose one of"):
        fit_feature_baseline(X, np.array([0, 1, 0, 1]), kind="svm")  # type: ignore[arg-type]
