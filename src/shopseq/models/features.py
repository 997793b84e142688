"""Hand-made sequence features (RFM-style) and a scikit-learn baseline for purchase / churn.

Every feature of a user reads only that user's events strictly before the cut-off, so a
label built at the same cut-off (see :mod:`shopseq.data.labels`) never leaks into it.
Times are in hours; days are UTC calendar days of the millisecond timestamps.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from shopseq.data.sequences import Sequences
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SESSION_GAP_MS = 30 * 60 * 1000  # a gap longer than this starts a new session


def sequence_features(
    seqs: Sequences, users: np.ndarray, cutoff: int, vocab: Vocab
) -> tuple[np.ndarray, list[str]]:
    """(X [n, F] float32, names [F]) for ``users`` (user indices) from events before ``cutoff``.

    A user with no event before the cut-off gets zero counts and, for recencies, the longest
    observable one (cut-off minus the first timestamp of the log).
    """
    users = np.asarray(users, dtype=np.int64)
    n = len(users)
    if np.unique(users).size != n:
        raise ValueError("sequence_features: users must be distinct")
    row_of_user = np.full(seqs.n_users, -1, dtype=np.int64)
    row_of_user[users] = np.arange(n)
    rows_all = row_of_user[seqs.event_users()]
    picked = np.flatnonzero((seqs.timestamps < cutoff) & (rows_all >= 0))
    # CSR order keeps each row's events contiguous and in time order.
    row = rows_all[picked]  # [E]
    ts = seqs.timestamps[picked]
    behavior = seqs.behavior_ids[picked]
    starts = np.r_[True, row[1:] != row[:-1]] if row.size else np.zeros(0, dtype=bool)
    ends = np.r_[row[1:] != row[:-1], True] if row.size else np.zeros(0, dtype=bool)
    longest = (cutoff - int(seqs.timestamps.min())) / HOUR_MS if seqs.n_events else 0.0

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(row[mask], minlength=n).astype(np.float64)

    def hours_since_last(mask: np.ndarray) -> np.ndarray:
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, row[mask], ts[mask])
        return np.where(last > np.iinfo(np.int64).min, (cutoff - last) / HOUR_MS, longest)

    everything = np.ones(row.size, dtype=bool)
    n_events = count(everything)
    first_ts = np.zeros(n, dtype=np.int64)
    first_ts[row[starts]] = ts[starts]
    gaps = np.diff(ts, prepend=0)
    n_sessions = count(starts | (gaps > SESSION_GAP_MS))
    day = ts // DAY_MS
    n_days = count(starts | (np.diff(day, prepend=0) != 0))
    per_event = np.maximum(n_events, 1)

    features: dict[str, np.ndarray] = {
        "n_events": n_events,
        "hours_since_last_event": hours_since_last(everything),
        "hours_since_first_event": np.where(n_events > 0, (cutoff - first_ts) / HOUR_MS, 0.0),
        "n_sessions": n_sessions,
        "events_per_session": n_events / np.maximum(n_sessions, 1),
        "n_days_active": n_days,
        "events_last_1h": count(ts >= cutoff - HOUR_MS),
        "events_last_24h": count(ts >= cutoff - DAY_MS),
        "n_distinct_items": _n_distinct(row, seqs.item_ids[picked], n),
    }
    if seqs.category_ids is not None:
        categories = seqs.category_ids[picked]
        known = categories > 0
        features["n_distinct_categories"] = _n_distinct(row[known], categories[known], n)
    last_behavior = np.zeros(n, dtype=np.int64)
    last_behavior[row[ends]] = behavior[ends]
    for behavior_id, name in enumerate(vocab.behaviors, start=1):
        is_b = behavior == behavior_id
        features[f"n_{name}"] = count(is_b)
        features[f"share_{name}"] = features[f"n_{name}"] / per_event
        features[f"hours_since_last_{name}"] = hours_since_last(is_b)
        features[f"last_is_{name}"] = (last_behavior == behavior_id).astype(np.float64)
    if "cart" in vocab.behaviors and "buy" in vocab.behaviors:
        items = seqs.item_ids[picked]
        features["n_carted_not_bought"] = _n_open_carts(
            row, items, behavior, vocab.behavior_id("cart"), vocab.behavior_id("buy"), n
        )
    names = list(features)
    return np.stack([features[k] for k in names], axis=1).astype(np.float32), names


def _n_distinct(row: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """[n] number of distinct ``values`` per row."""
    if row.size == 0:
        return np.zeros(n)
    unique = np.unique(row * (int(values.max()) + 1) + values)
    return np.bincount(unique // (int(values.max()) + 1), minlength=n).astype(np.float64)


def _n_open_carts(
    row: np.ndarray, items: np.ndarray, behavior: np.ndarray, cart: int, buy: int, n: int
) -> np.ndarray:
    """[n] distinct items a row put in the cart and has not bought (before the cut-off)."""
    if row.size == 0:
        return np.zeros(n)
    width = int(items.max()) + 1
    key = row * width + items
    carted = np.unique(key[behavior == cart])
    open_carts = carted[~np.isin(carted, key[behavior == buy])]
    return np.bincount(open_carts // width, minlength=n).astype(np.float64)


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|): tames heavy-tailed counts and hours for a linear model."""
    return np.sign(x) * np.log1p(np.abs(x))


def fit_feature_baseline(
    X: np.ndarray, y: np.ndarray, kind: Literal["logistic", "gbm"] = "logistic", seed: int = 0
) -> Any:
    """A fitted scikit-learn classifier on features ``X`` [n, F] and binary labels ``y`` [n].

    ``logistic``: signed log1p -> StandardScaler -> LogisticRegression;
    ``gbm``: HistGradientBoostingClassifier with early stopping on a seeded 10% hold-out.
    Score with ``model.predict_proba(X)[:, 1]``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    classes = np.unique(y)
    if classes.size != 2:
        raise ShopseqInputError(
            f"the feature baseline needs labels of both classes, got {classes.tolist()}"
        )
    model: Any
    if kind == "logistic":
        model = make_pipeline(
            FunctionTransformer(signed_log1p),
            StandardScaler(),
            LogisticRegression(max_iter=2000, random_state=seed),
        )
    elif kind == "gbm":
        model = HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=500,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=30,
            random_state=seed,
        )
    else:
        raise ShopseqInputError(f"unknown baseline kind '{kind}'; choose one of: logistic, gbm")
    return model.fit(X, y)
