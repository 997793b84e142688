"""Per-user task labels at a global cut-off: inputs strictly before it, labels from it on.

A model for a label built here may read events ``[offsets[u], history_ends(seqs, cutoff)[u])``
only; the labels themselves read events in ``[cutoff, cutoff + horizon)`` and nothing later.

Time horizons need the log to cover the whole window ``[cutoff, cutoff + horizon)``: a user
with no event in a window the log never observed would look like a churner (or a non-buyer)
for lack of data. So time-horizon labels refuse, with a clear message, a window that runs past
the end of the log instead of silently labelling it.
"""

from __future__ import annotations

import numpy as np

from shopseq.data.schema import TIME_UNIT_MS, TIME_UNIT_ORDINAL
from shopseq.data.sequences import Sequences
from shopseq.errors import ShopseqInputError


def history_ends(seqs: Sequences, cutoff: int) -> np.ndarray:
    """[n_users] exclusive event index of each user's events strictly before ``cutoff``."""
    users = seqs.event_users()
    before = seqs.timestamps < cutoff
    return seqs.offsets[:-1] + np.bincount(users[before], minlength=seqs.n_users)


def active_users(seqs: Sequences, cutoff: int) -> np.ndarray:
    """User indices with at least one event strictly before ``cutoff`` (sorted)."""
    users = np.flatnonzero(history_ends(seqs, cutoff) > seqs.offsets[:-1])
    if users.size == 0:
        raise ShopseqInputError(
            f"no user has an event before the cut-off {cutoff}: the log starts at "
            f"{int(seqs.timestamps.min()) if seqs.n_events else 'nothing'}"
        )
    return users


def purchase_labels(
    seqs: Sequences,
    cutoff: int,
    *,
    buy_behavior_id: int,
    horizon_ms: int | None = None,
    horizon_events: int | None = None,
    time_unit: str = TIME_UNIT_MS,
    log_end: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(users [n], labels [n] int8): 1 if an active user buys within the horizon after ``cutoff``.

    The horizon is either ``horizon_ms`` (a buy in ``[cutoff, cutoff + horizon_ms)``) or
    ``horizon_events`` (a buy among the user's next N events from ``cutoff`` on, fewer where the
    user's log ends sooner). ``log_end``: exclusive end of the observed period (default: last
    timestamp + 1).
    """
    if (horizon_ms is None) == (horizon_events is None):
        raise ShopseqInputError("purchase horizon: give exactly one of horizon_ms, horizon_events")
    users = active_users(seqs, cutoff)
    event_users = seqs.event_users()
    is_buy = seqs.behavior_ids == buy_behavior_id
    if horizon_ms is not None:
        end = _checked_window_end(seqs, cutoff, horizon_ms, time_unit, log_end, "purchase")
        in_horizon = (seqs.timestamps >= cutoff) & (seqs.timestamps < end)
    else:
        assert horizon_events is not None
        if horizon_events < 1:
            raise ShopseqInputError(f"purchase horizon_events must be >= 1, got {horizon_events}")
        first_after = history_ends(seqs, cutoff)[event_users]  # [n_events]
        rank_after = np.arange(seqs.n_events) - first_after
        in_horizon = (rank_after >= 0) & (rank_after < horizon_events)
    bought = np.bincount(event_users[is_buy & in_horizon], minlength=seqs.n_users) > 0
    return users, bought[users].astype(np.int8)


def churn_labels(
    seqs: Sequences,
    cutoff: int,
    horizon_ms: int,
    *,
    time_unit: str = TIME_UNIT_MS,
    log_end: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(users [n], labels [n] int8): 1 if an active user has no event in ``[cutoff, cutoff + h)``.

    Refuses a horizon that runs past ``log_end`` (default: last timestamp + 1).
    """
    users = active_users(seqs, cutoff)
    end = _checked_window_end(seqs, cutoff, horizon_ms, time_unit, log_end, "churn")
    in_horizon = (seqs.timestamps >= cutoff) & (seqs.timestamps < end)
    seen = np.bincount(seqs.event_users()[in_horizon], minlength=seqs.n_users) > 0
    return users, (~seen[users]).astype(np.int8)


def _checked_window_end(
    seqs: Sequences,
    cutoff: int,
    horizon_ms: int,
    time_unit: str,
    log_end: int | None,
    task: str,
) -> int:
    """``cutoff + horizon_ms`` after checking the window is real time and fully observed."""
    if time_unit == TIME_UNIT_ORDINAL:
        raise ShopseqInputError(
            f"{task} labels with a time horizon need real timestamps, but this log has "
            "order-only (ordinal) timestamps; use an event-count horizon"
        )
    if horizon_ms <= 0:
        raise ShopseqInputError(f"{task} horizon must be positive, got {horizon_ms} ms")
    end = cutoff + horizon_ms
    observed_end = int(seqs.timestamps.max()) + 1 if log_end is None else log_end
    if end > observed_end:
        raise ShopseqInputError(
            f"{task} horizon runs past the end of the log: cut-off {cutoff} + {horizon_ms} ms = "
            f"{end} > log end {observed_end}; use an earlier cut-off or a shorter horizon"
        )
    return end
