import numpy as np
import polars as pl
import pytest
import torch

from shopseq.data.batching import history_batch
from shopseq.data.labels import churn_labels, history_ends, purchase_labels
from shopseq.data.sequences import Sequences, build_sequences
from shopseq.data.vocab import Vocab, build_vocab
from shopseq.errors import ShopseqInputError

H = 3_600_000  # one hour in ms
CUTOFF = 10 * H
HORIZON = 5 * H
COLUMNS = ["user_id", "item_id", "behavior", "timestamp"]


def tiny_log() -> pl.DataFrame:
    rows = [
        ("u1", "a", "view", 1 * H),
        ("u1", "b", "cart", 2 * H),
        ("u1", "b", "buy", 11 * H),  # buy inside the horizon
        ("u2", "a", "view", 3 * H),
        ("u2", "c", "view", 12 * H),  # active after, no buy
        ("u3", "c", "view", 4 * H),
        ("u3", "c", "buy", 16 * H),  # buy after the horizon
        ("u4", "a", "view", 11 * H),  # no event before the cut-off: not a labelled user
        ("u5", "d", "buy", 5 * H),
        ("u5", "d", "buy", CUTOFF - 1),  # last ms before the cut-off: an input, not a label
    ]
    return pl.DataFrame(rows, schema=COLUMNS, orient="row")


def encode(events: pl.DataFrame, vocab: Vocab | None = None) -> tuple[Sequences, Vocab]:
    vocab = vocab or build_vocab(events)
    return build_sequences(events, vocab), vocab


def labels_by_user(seqs: Sequences, users: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    return dict(zip(seqs.users[users].tolist(), labels.tolist(), strict=True))


def test_purchase_labels_with_a_time_horizon_by_hand():
    seqs, vocab = encode(tiny_log())
    users, labels = purchase_labels(
        seqs, CUTOFF, buy_behavior_id=vocab.behavior_id("buy"), horizon_ms=HORIZON
    )
    assert labels.dtype == np.int8
    assert labels_by_user(seqs, users, labels) == {"u1": 1, "u2": 0, "u3": 0, "u5": 0}


def test_purchase_labels_with_an_event_horizon_by_hand():
    seqs, vocab = encode(tiny_log())
    buy = vocab.behavior_id("buy")
    users, labels = purchase_labels(seqs, CUTOFF, buy_behavior_id=buy, horizon_events=1)
    assert labels_by_user(seqs, users, labels) == {"u1": 1, "u2": 0, "u3": 1, "u5": 0}
    users, labels = purchase_labels(seqs, CUTOFF, buy_behavior_id=buy, horizon_events=2)
    assert labels_by_user(seqs, users, labels)["u3"] == 1


def test_churn_labels_by_hand():
    seqs, _ = encode(tiny_log())
    users, labels = churn_labels(seqs, CUTOFF, HORIZON)
    assert labels_by_user(seqs, users, labels) == {"u1": 0, "u2": 0, "u3": 1, "u5": 1}


def test_history_ends_stop_strictly_before_the_cutoff():
    seqs, _ = encode(tiny_log())
    ends = history_ends(seqs, CUTOFF)
    n_inputs = dict(zip(seqs.users.tolist(), (ends - seqs.offsets[:-1]).tolist(), strict=True))
    assert n_inputs == {"u1": 2, "u2": 1, "u3": 1, "u4": 0, "u5": 2}


def test_time_horizon_past_the_end_of_the_log_is_refused():
    seqs, _ = encode(tiny_log())
    expected = (
        f"churn horizon runs past the end of the log: cut-off {CUTOFF} + {7 * H} ms = "
        f"{17 * H} > log end {16 * H + 1}; use an earlier cut-off or a shorter horizon"
    )
    with pytest.raises(ShopseqInputError) as err:
        churn_labels(seqs, CUTOFF, 7 * H)
    assert str(err.value) == expected
    # An explicit end of the observed period lets the caller vouch for the window.
    users, _ = churn_labels(seqs, CUTOFF, 7 * H, log_end=17 * H)
    assert len(users) == 4


def test_ordinal_timestamps_are_refused_for_time_horizons():
    seqs, vocab = encode(tiny_log())
    with pytest.raises(ShopseqInputError, match=r"^churn labels with a time horizon need real"):
        churn_labels(seqs, CUTOFF, HORIZON, time_unit="ordinal")
    buy = vocab.behavior_id("buy")
    with pytest.raises(ShopseqInputError, match=r"^purchase labels with a time horizon need real"):
        purchase_labels(seqs, CUTOFF, buy_behavior_id=buy, horizon_ms=HORIZON, time_unit="ordinal")
    users, _ = purchase_labels(
        seqs, CUTOFF, buy_behavior_id=buy, horizon_events=3, time_unit="ordinal"
    )
    assert len(users) == 4


def test_purchase_horizon_needs_exactly_one_kind():
    seqs, vocab = encode(tiny_log())
    buy = vocab.behavior_id("buy")
    message = "purchase horizon: give exactly one of horizon_ms, horizon_events"
    with pytest.raises(ShopseqInputError, match=f"^{message}$"):
        purchase_labels(seqs, CUTOFF, buy_behavior_id=buy)
    with pytest.raises(ShopseqInputError, match=f"^{message}$"):
        purchase_labels(seqs, CUTOFF, buy_behavior_id=buy, horizon_ms=H, horizon_events=2)


def test_a_cutoff_before_every_event_is_refused():
    seqs, _ = encode(tiny_log())
    with pytest.raises(ShopseqInputError, match="no user has an event before the cut-off 0"):
        churn_labels(seqs, 0, HORIZON)


# ---- planted events: the future never reaches the inputs, the far future never the labels ----


def random_log(seed: int, n_users: int = 30, n_events: int = 400) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "user_id": [f"u{u}" for u in rng.integers(0, n_users, n_events)],
            "item_id": [f"i{i}" for i in rng.integers(0, 20, n_events)],
            "behavior": rng.choice(["view", "cart", "fav", "buy"], n_events).tolist(),
            "timestamp": rng.integers(0, 20 * H, n_events),
        }
    )


def plant(events: pl.DataFrame, seed: int, start: int, stop: int) -> pl.DataFrame:
    """``events`` plus buys and views at times in [start, stop), for old and brand-new users."""
    rng = np.random.default_rng(seed)
    n = 60
    users = [f"u{u}" for u in rng.integers(0, 30, n - 5)] + [f"new{k}" for k in range(5)]
    extra = pl.DataFrame(
        {
            "user_id": users,
            "item_id": [f"i{i}" for i in rng.integers(0, 20, n)],
            "behavior": rng.choice(["view", "buy"], n).tolist(),
            "timestamp": rng.integers(start, stop, n),
        }
    )
    return pl.concat([events, extra])


def model_inputs(events: pl.DataFrame, vocab: Vocab) -> dict[str, np.ndarray]:
    """Each labelled user's input window (item, behaviour, time), keyed by raw user id."""
    seqs, _ = encode(events, vocab)
    users, _ = churn_labels(seqs, CUTOFF, HORIZON, log_end=40 * H)
    batch = history_batch(seqs, users, history_ends(seqs, CUTOFF)[users], max_len=50)
    window = torch.stack([batch.item_ids, batch.behavior_ids, batch.timestamps], dim=-1).numpy()
    return dict(zip(seqs.users[users].tolist(), window, strict=True))


def all_labels(events: pl.DataFrame, vocab: Vocab) -> dict[str, tuple[int, ...]]:
    seqs, _ = encode(events, vocab)
    buy = vocab.behavior_id("buy")
    out: dict[str, list[int]] = {}
    for users, labels in (
        purchase_labels(seqs, CUTOFF, buy_behavior_id=buy, horizon_ms=HORIZON, log_end=40 * H),
        churn_labels(seqs, CUTOFF, HORIZON, log_end=40 * H),
    ):
        for user, label in labels_by_user(seqs, users, labels).items():
            out.setdefault(user, []).append(label)
    return {user: tuple(labels) for user, labels in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_planted_after_the_cutoff_never_change_the_model_inputs(seed):
    events = random_log(seed)
    planted = plant(events, seed + 100, CUTOFF, 40 * H)
    vocab = build_vocab(planted)
    before, after = model_inputs(events, vocab), model_inputs(planted, vocab)
    assert before.keys() == after.keys()
    for user, window in before.items():
        np.testing.assert_array_equal(window, after[user])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_planted_after_the_horizon_never_change_the_labels(seed):
    events = random_log(seed)
    planted = plant(events, seed + 100, CUTOFF + HORIZON, 40 * H)
    vocab = build_vocab(planted)
    assert all_labels(events, vocab) == all_labels(planted, vocab)


def test_events_planted_inside_the_horizon_do_change_the_labels():
    # Guards the two tests above against passing for a trivial reason.
    events = random_log(0)
    planted = plant(events, 100, CUTOFF, CUTOFF + HORIZON)
    vocab = build_vocab(planted)
    assert all_labels(events, vocab) != all_labels(planted, vocab)
