import numpy as np
import polars as pl
import pytest

from shopseq.data.dataset import load_dataset, prepare, save_dataset
from shopseq.data.sequences import SplitSpec
from shopseq.errors import ShopseqInputError


def small_log() -> pl.DataFrame:
    rows = [
        ("u1", "a", "view", 1000),
        ("u1", "b", "cart", 2000),
        ("u1", "b", "buy", 3000),
        ("u1", "c", "view", 4000),
        ("u2", "c", "view", 1500),
        ("u2", "a", "view", 2500),
        ("u2", "d", "buy", 3500),
        ("u3", "d", "view", 500),
    ]
    return pl.DataFrame(rows, schema=["user_id", "item_id", "behavior", "timestamp"], orient="row")


def test_save_then_load_gives_identical_sequences_and_split(tmp_path):
    events = small_log()
    ds = prepare(events, SplitSpec(kind="loo"), "ms")
    save_dataset(ds, events, tmp_path)
    back = load_dataset(tmp_path)
    assert back.vocab == ds.vocab
    assert back.spec == ds.spec
    np.testing.assert_array_equal(back.sequences.item_ids, ds.sequences.item_ids)
    for name in ("valid", "test"):
        np.testing.assert_array_equal(back.phases[name].targets, ds.phases[name].targets)
        np.testing.assert_array_equal(back.phases[name].train_end, ds.phases[name].train_end)


def test_prepare_is_independent_of_input_row_order():
    events = small_log()
    shuffled = events.sample(fraction=1.0, shuffle=True, seed=3)
    a = prepare(events, SplitSpec(), "ms")
    b = prepare(shuffled, SplitSpec(), "ms")
    np.testing.assert_array_equal(a.sequences.item_ids, b.sequences.item_ids)
    np.testing.assert_array_equal(a.phases["test"].targets, b.phases["test"].targets)


def test_same_timestamp_keeps_input_order():
    rows = [("u", "x", "view", 5), ("u", "y", "view", 5), ("u", "z", "view", 5)]
    events = pl.DataFrame(
        rows, schema=["user_id", "item_id", "behavior", "timestamp"], orient="row"
    )
    ds = prepare(events, SplitSpec(), "ms")
    assert ds.vocab.decode_items(ds.sequences.item_ids) == ["x", "y", "z"]


def test_train_sequences_never_hold_a_target_of_their_phase():
    ds = prepare(small_log(), SplitSpec(), "ms")
    seqs = ds.sequences
    for name in ("valid", "test"):
        phase = ds.phases[name]
        train = ds.train_sequences(name)
        for user, target in zip(phase.users, phase.targets, strict=True):
            start, end = train.offsets[user], train.offsets[user + 1]
            assert end - start == target - seqs.offsets[user]


def test_load_of_a_non_dataset_dir_names_the_missing_files(tmp_path):
    with pytest.raises(ShopseqInputError, match=r"not a prepared dataset \(missing events.parquet"):
        load_dataset(tmp_path)


def test_empty_log_is_refused():
    with pytest.raises(ShopseqInputError, match="the event log is empty"):
        prepare(small_log().head(0), SplitSpec(), "ms")
