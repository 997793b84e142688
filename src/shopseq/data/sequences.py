"""Per-user time-ordered sequences (CSR arrays) and leakage-free splits over them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import polars as pl

from shopseq.data.schema import BEHAVIOR, CATEGORY, ITEM, TIME_UNIT_ORDINAL, TIMESTAMP, USER
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError

PHASES: tuple[str, ...] = ("valid", "test")


@dataclass(frozen=True)
class Sequences:
    """All users' events, concatenated user after user, each user's events in time order.

    Events of user ``u`` are ``[offsets[u], offsets[u + 1])``.
    """

    users: np.ndarray  # [n_users] raw user ids (str)
    offsets: np.ndarray  # [n_users + 1] int64
    item_ids: np.ndarray  # [n_events] int64 vocab ids
    behavior_ids: np.ndarray  # [n_events] int64, 0 = PAD
    timestamps: np.ndarray  # [n_events] int64 (ms or ordinal)
    category_ids: np.ndarray | None = None  # [n_events] int64, 0 = unknown

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_events(self) -> int:
        return len(self.item_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def event_users(self) -> np.ndarray:
        """[n_events] the user index of every event."""
        return np.repeat(np.arange(self.n_users), self.lengths)


def build_sequences(events: pl.DataFrame, vocab: Vocab) -> Sequences:
    """Encode an EventLog: users in sorted order, each user's events by (timestamp, row order)."""
    ordered = events.with_row_index("_row").sort([USER, TIMESTAMP, "_row"])
    users, counts = np.unique(ordered[USER].to_numpy().astype(str), return_counts=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    has_cat = CATEGORY in ordered.columns and bool(vocab.categories)
    return Sequences(
        users=users,
        offsets=offsets,
        item_ids=vocab.encode_items(ordered[ITEM]),
        behavior_ids=vocab.encode_behaviors(ordered[BEHAVIOR]),
        timestamps=ordered[TIMESTAMP].to_numpy().astype(np.int64),
        category_ids=vocab.encode_categories(ordered[CATEGORY]) if has_cat else None,
    )


def truncate(seqs: Sequences, ends: np.ndarray) -> Sequences:
    """Keep events ``[offsets[u], ends[u])`` of every user (users left with none stay, empty)."""
    starts = seqs.offsets[:-1]
    keep_lengths = ends - starts
    index = event_ranges(starts, keep_lengths)
    offsets = np.concatenate([[0], np.cumsum(keep_lengths)]).astype(np.int64)
    return replace(
        seqs,
        offsets=offsets,
        item_ids=seqs.item_ids[index],
        behavior_ids=seqs.behavior_ids[index],
        timestamps=seqs.timestamps[index],
        category_ids=None if seqs.category_ids is None else seqs.category_ids[index],
    )


@dataclass(frozen=True)
class SplitSpec:
    """How to split: leave-one-out per user, or a global time cut-off (targets after it)."""

    kind: Literal["loo", "temporal"] = "loo"
    cutoff: int | None = None  # ms; temporal test cut-off (default: 90% quantile of event times)
    valid_cutoff: int | None = None  # ms; temporal validation cut-off (default: 80% quantile)
    target_behavior: str | None = None  # e.g. "buy": targets are purchases, inputs keep everything


@dataclass(frozen=True)
class Phase:
    """One evaluation phase ("valid" or "test"): a target event per user that has one.

    The model sees events ``[offsets[u], history_end)`` of a user to predict ``targets``;
    everything counted or learned for this phase uses only ``[offsets[u], train_end[u])``.
    """

    name: str
    users: np.ndarray  # [n_targets] user index
    targets: np.ndarray  # [n_targets] event index of the target event
    history_end: np.ndarray  # [n_targets] exclusive event index of the input history
    train_end: np.ndarray  # [n_users] exclusive event index of the training inputs

    @property
    def n_targets(self) -> int:
        return len(self.users)


def split(seqs: Sequences, spec: SplitSpec, vocab: Vocab, time_unit: str) -> dict[str, Phase]:
    """The valid and test phases of ``spec`` (pure function of the sequences)."""
    target_ok = np.ones(seqs.n_events, dtype=bool)
    if spec.target_behavior is not None:
        try:
            behavior = vocab.behavior_id(spec.target_behavior)
        except KeyError as err:
            raise ShopseqInputError(f"--target-behavior: {err.args[0]}") from None
        target_ok = seqs.behavior_ids == behavior
    if spec.kind == "loo":
        return _leave_one_out(seqs, target_ok)
    if spec.kind == "temporal":
        if time_unit == TIME_UNIT_ORDINAL:
            raise ShopseqInputError(
                "temporal split needs real timestamps, but this log has order-only (ordinal) "
                "timestamps; use --split loo"
            )
        valid_cut, test_cut = resolve_cutoffs(seqs, spec)
        return {
            "valid": _temporal_phase("valid", seqs, target_ok, valid_cut, test_cut),
            "test": _temporal_phase("test", seqs, target_ok, test_cut, None),
        }
    raise ShopseqInputError(f"unknown split '{spec.kind}'; choose one of: loo, temporal")


def resolve_cutoffs(seqs: Sequences, spec: SplitSpec) -> tuple[int, int]:
    """(valid cut-off, test cut-off) in ms, filling defaults from global time quantiles."""
    test_cut = spec.cutoff
    if test_cut is None:
        test_cut = int(np.quantile(seqs.timestamps, 0.9))
    valid_cut = spec.valid_cutoff
    if valid_cut is None:
        earlier = seqs.timestamps[seqs.timestamps < test_cut]
        valid_cut = int(np.quantile(earlier, 8 / 9)) if earlier.size else test_cut
    if valid_cut > test_cut:
        raise ShopseqInputError(
            f"--valid-cutoff ({valid_cut}) must not be after --cutoff ({test_cut})"
        )
    return valid_cut, test_cut


def _leave_one_out(seqs: Sequences, target_ok: np.ndarray) -> dict[str, Phase]:
    """Last eligible event of a user = test target, the one before = valid target."""
    n = seqs.n_users
    ends = seqs.offsets[1:]
    last = _last_eligible_before(seqs, target_ok, ends)  # -1 where none
    has_test = last >= 0
    second = np.full(n, -1, dtype=np.int64)
    second[has_test] = _last_eligible_before(seqs, target_ok, last)[has_test]
    # A target needs a non-empty history to be predictable.
    has_test &= last > seqs.offsets[:-1]
    has_valid = has_test & (second > seqs.offsets[:-1])
    test_train_end = np.where(has_test, last, ends)
    valid_train_end = np.where(has_valid, second, test_train_end)
    return {
        "valid": _phase("valid", has_valid, second, valid_train_end),
        "test": _phase("test", has_test, last, test_train_end),
    }


def _last_eligible_before(seqs: Sequences, target_ok: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """[n_users] index of the last eligible event in ``[offsets[u], ends[u])``, -1 if none."""
    users = seqs.event_users()
    index = np.arange(seqs.n_events)
    eligible = target_ok & (index < ends[users])
    candidate = np.where(eligible, index, -1)
    best = np.full(seqs.n_users, -1, dtype=np.int64)
    np.maximum.at(best, users, candidate)
    return best


def _temporal_phase(
    name: str, seqs: Sequences, target_ok: np.ndarray, cut: int, until: int | None
) -> Phase:
    """Target = a user's first eligible event at/after ``cut`` (and before ``until``)."""
    users = seqs.event_users()
    before_cut = seqs.timestamps < cut
    train_end = seqs.offsets[:-1] + np.bincount(users[before_cut], minlength=seqs.n_users)
    eligible = target_ok & ~before_cut
    if until is not None:
        eligible &= seqs.timestamps < until
    index = np.arange(seqs.n_events)
    first = np.full(seqs.n_users, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, users[eligible], index[eligible])
    has = (first != np.iinfo(np.int64).max) & (train_end > seqs.offsets[:-1])
    return Phase(
        name=name,
        users=np.flatnonzero(has),
        targets=first[has],
        history_end=train_end[has],
        train_end=train_end.astype(np.int64),
    )


def _phase(name: str, has: np.ndarray, target: np.ndarray, train_end: np.ndarray) -> Phase:
    users = np.flatnonzero(has)
    return Phase(
        name=name,
        users=users,
        targets=target[users],
        history_end=target[users],
        train_end=train_end.astype(np.int64),
    )


def event_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for every (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    run_starts = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + run_starts
