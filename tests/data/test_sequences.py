"""Split and batching invariants: targets where the protocol says, and no target in training."""

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopseq.data.batching import history_batch
from shopseq.data.dataset import Dataset, prepare
from shopseq.data.schema import PAD
from shopseq.data.sequences import SplitSpec, resolve_cutoffs, truncate
from shopseq.errors import ShopseqInputError

SCHEMA = {"user_id": pl.Utf8, "item_id": pl.Utf8, "behavior": pl.Utf8, "timestamp": pl.Int64}


def frame(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def items_of(ds: Dataset, events: np.ndarray) -> list[str]:
    return ds.vocab.decode_items(ds.sequences.item_ids[events])


def test_leave_one_out_targets_are_the_last_and_second_to_last_events():
    ds = prepare(
        frame(
            [
                ("u1", "a", "view", 1),
                ("u1", "b", "view", 2),
                ("u1", "c", "view", 3),
                ("u2", "d", "view", 5),
                ("u2", "e", "view", 6),
                ("u3", "f", "view", 1),
            ]
        ),
        SplitSpec(),
        "ms",
    )
    test, valid = ds.phases["test"], ds.phases["valid"]
    assert ds.sequences.users[test.users].tolist() == ["u1", "u2"]  # u3 has no history
    assert items_of(ds, test.targets) == ["c", "e"]
    assert ds.sequences.users[valid.users].tolist() == ["u1"]  # u2's "d" has no history
    assert items_of(ds, valid.targets) == ["b"]
    np.testing.assert_array_equal(test.history_end, test.targets)
    np.testing.assert_array_equal(valid.history_end, valid.targets)


def test_buy_targets_are_buys_while_histories_keep_views():
    rows = [
        ("u1", "a", "view", 1),
        ("u1", "b", "buy", 2),
        ("u1", "c", "view", 3),
        ("u1", "d", "buy", 4),
        ("u1", "e", "view", 5),
        ("u2", "f", "view", 1),
        ("u2", "g", "buy", 2),
    ]
    ds = prepare(frame(rows), SplitSpec(target_behavior="buy"), "ms")
    test, valid = ds.phases["test"], ds.phases["valid"]
    buy = ds.vocab.behavior_id("buy")
    assert items_of(ds, test.targets) == ["d", "g"]
    assert items_of(ds, valid.targets) == ["b"]
    assert (ds.sequences.behavior_ids[np.r_[test.targets, valid.targets]] == buy).all()
    batch = history_batch(ds.sequences, test.users, test.history_end, 4)
    history = [ds.vocab.decode_items(row[row != PAD]) for row in batch.item_ids.numpy()]
    assert history == [["a", "b", "c"], ["f"]]  # views before the buy stay as inputs


def test_unknown_target_behaviour_names_the_known_ones():
    with pytest.raises(ShopseqInputError) as err:
        prepare(frame([("u", "a", "view", 1)]), SplitSpec(target_behavior="buy"), "ms")
    assert (
        str(err.value)
        == "--target-behavior: behaviour 'buy' not in this dataset (behaviours: view)"
    )


BEHAVIORS = ("view", "cart", "buy")


@st.composite
def event_logs(draw) -> pl.DataFrame:
    n_users = draw(st.integers(1, 6))
    rows = []
    for u in range(n_users):
        n = draw(st.integers(1, 8))
        times = sorted(draw(st.lists(st.integers(0, 50), min_size=n, max_size=n)))
        for t in times:
            item = f"i{draw(st.integers(0, 6))}"
            rows.append((f"u{u}", item, draw(st.sampled_from(BEHAVIORS)), t))
    return frame(rows)


def assert_no_target_in_training(ds: Dataset) -> None:
    seqs = ds.sequences
    starts = seqs.offsets[:-1]
    test, valid = ds.phases["test"], ds.phases["valid"]
    for phase in (test, valid):
        assert (phase.train_end >= starts).all() and (phase.train_end <= seqs.offsets[1:]).all()
        # every target lies at or after its phase's training inputs and after its history
        assert (phase.train_end[phase.users] <= phase.targets).all()
        assert (phase.history_end <= phase.targets).all()
        assert (phase.history_end > starts[phase.users]).all()  # a non-empty history
        assert len(np.unique(phase.users)) == phase.n_targets
    # the valid phase's training inputs stop before any test target too
    assert (valid.train_end[test.users] <= test.targets).all()
    # and the event ranges Dataset.train_sequences hands to a model never hold a target
    for name, forbidden in (("test", [test]), ("valid", [valid, test])):
        train = ds.train_sequences(name)
        kept = np.zeros(seqs.n_events, dtype=bool)
        for u in range(seqs.n_users):
            kept[starts[u] : starts[u] + train.offsets[u + 1] - train.offsets[u]] = True
        for phase in forbidden:
            assert not kept[phase.targets].any()


@settings(max_examples=60, deadline=None)
@given(log=event_logs(), target=st.sampled_from([None, "buy"]))
def test_leave_one_out_never_trains_on_a_target(log, target):
    if target is not None and target not in log["behavior"].to_list():
        return
    ds = prepare(log, SplitSpec(kind="loo", target_behavior=target), "ms")
    assert_no_target_in_training(ds)
    seqs = ds.sequences
    test = ds.phases["test"]
    ok = np.ones(seqs.n_events, dtype=bool)
    if target is not None:
        ok = seqs.behavior_ids == ds.vocab.behavior_id(target)
        assert (ok[test.targets]).all() and (ok[ds.phases["valid"].targets]).all()
    for u, t in zip(test.users, test.targets, strict=True):
        assert t == np.flatnonzero(ok[: seqs.offsets[u + 1]])[-1]  # the last eligible event


@settings(max_examples=60, deadline=None)
@given(log=event_logs(), cut=st.integers(1, 50), gap=st.integers(0, 20))
def test_temporal_split_cuts_on_one_global_timestamp(log, cut, gap):
    spec = SplitSpec(kind="temporal", cutoff=cut, valid_cutoff=max(0, cut - gap))
    ds = prepare(log, spec, "ms")
    assert_no_target_in_training(ds)
    seqs = ds.sequences
    for name, (lo, hi) in (("valid", (cut - min(gap, cut), cut)), ("test", (cut, None))):
        phase = ds.phases[name]
        train = ds.train_sequences(name)
        assert (train.timestamps < lo).all()  # every training event before the cut-off
        assert (seqs.timestamps[phase.targets] >= lo).all()  # every target at/after it
        if hi is not None:
            assert (seqs.timestamps[phase.targets] < hi).all()
        # everything before the cut-off is training input: no event is thrown away
        assert train.n_events == int((seqs.timestamps < lo).sum())


def test_temporal_defaults_cut_at_time_quantiles():
    rows = [("u", f"i{t}", "view", t) for t in range(100)]
    ds = prepare(frame(rows), SplitSpec(kind="temporal"), "ms")
    valid_cut, test_cut = resolve_cutoffs(ds.sequences, ds.spec)
    assert valid_cut <= test_cut
    assert ds.vocab.decode_items(ds.sequences.item_ids[ds.phases["test"].targets]) == [
        f"i{test_cut}"
    ]


def test_temporal_split_refuses_ordinal_timestamps():
    with pytest.raises(ShopseqInputError) as err:
        prepare(
            frame([("u", "a", "view", 1), ("u", "b", "view", 2)]), SplitSpec("temporal"), "ordinal"
        )
    assert str(err.value) == (
        "temporal split needs real timestamps, but this log has order-only (ordinal) "
        "timestamps; use --split loo"
    )


def test_history_batch_left_pads_with_the_latest_event_last():
    ds = prepare(
        frame(
            [("u1", "a", "view", 1), ("u1", "b", "buy", 2), ("u1", "c", "view", 3)]
            + [("u2", f"x{i}", "view", i) for i in range(5)]
        ),
        SplitSpec(),
        "ms",
    )
    seqs = ds.sequences
    batch = history_batch(seqs, np.array([0, 1]), np.array([2, seqs.offsets[2]]), 3)
    a, b = (int(i) for i in ds.vocab.encode_items(pl.Series(["a", "b"])))
    x2, x3, x4 = (int(i) for i in ds.vocab.encode_items(pl.Series(["x2", "x3", "x4"])))
    assert batch.item_ids.tolist() == [[PAD, a, b], [x2, x3, x4]]
    assert batch.padding_mask.tolist() == [[True, False, False], [False, False, False]]
    assert batch.behavior_ids[0].tolist() == [
        0,
        ds.vocab.behavior_id("view"),
        ds.vocab.behavior_id("buy"),
    ]
    assert batch.timestamps[0].tolist() == [0, 1, 2]
    assert batch.users.tolist() == [0, 1]
    assert batch.targets is None


def test_history_batch_targets_come_from_the_target_events():
    ds = prepare(frame([("u", i, "view", t) for t, i in enumerate("abcd")]), SplitSpec(), "ms")
    test = ds.phases["test"]
    batch = history_batch(ds.sequences, test.users, test.history_end, 2, test.targets)
    assert ds.vocab.decode_items(batch.targets.numpy()) == ["d"]
    assert ds.vocab.decode_items(batch.item_ids[0].numpy()) == ["b", "c"]


@settings(max_examples=40, deadline=None)
@given(log=event_logs(), data=st.data())
def test_truncate_keeps_exactly_the_prefixes(log, data):
    ds = prepare(log, SplitSpec(), "ms")
    seqs = ds.sequences
    ends = np.array(
        [
            data.draw(st.integers(int(s), int(e)))
            for s, e in zip(seqs.offsets[:-1], seqs.offsets[1:], strict=True)
        ],
        dtype=np.int64,
    )
    cut = truncate(seqs, ends)
    assert cut.n_users == seqs.n_users
    np.testing.assert_array_equal(cut.users, seqs.users)
    np.testing.assert_array_equal(cut.lengths, ends - seqs.offsets[:-1])
    for u in range(seqs.n_users):
        kept = slice(cut.offsets[u], cut.offsets[u + 1])
        original = slice(seqs.offsets[u], ends[u])
        np.testing.assert_array_equal(cut.item_ids[kept], seqs.item_ids[original])
        np.testing.assert_array_equal(cut.behavior_ids[kept], seqs.behavior_ids[original])
        np.testing.assert_array_equal(cut.timestamps[kept], seqs.timestamps[original])
