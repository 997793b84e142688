from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import torch

from shopseq.config import load_config
from shopseq.data.batching import history_batch
from shopseq.data.dataset import prepare
from shopseq.data.sequences import SplitSpec
from shopseq.data.synth import SynthConfig, synth
from shopseq.train.task_examples import binary_examples

torch.set_num_threads(1)
DAY_MS = 86_400_000
START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
TEST_CUT = START + 16 * DAY_MS
TRAIN_CUT = START + 14 * DAY_MS
TINY = ["finetune.horizon_hours=48", "finetune.churn_days=1"]


def synth_events() -> pl.DataFrame:
    return synth(SynthConfig(n_users=150, n_items=60, n_categories=4, n_days=20, seed=3))


def temporal(events: pl.DataFrame):
    return prepare(events, SplitSpec(kind="temporal", cutoff=TEST_CUT, valid_cutoff=TRAIN_CUT))


@pytest.fixture(scope="module")
def ds():
    return temporal(synth_events())


def plant_after_test_cutoff(events: pl.DataFrame) -> pl.DataFrame:
    """Buys (and views) of known items by known users, all at or after the test cut-off."""
    users = events["user_id"].unique().sort()[:40]
    items = events["item_id"].unique().sort()[:40]
    planted = events.head(40).with_columns(
        user_id=users,
        item_id=items,
        behavior=pl.Series(["buy", "view"] * 20),
        timestamp=pl.Series([TEST_CUT + i * 3_600_000 for i in range(40)]),
    )
    return pl.concat([events, planted])


def test_events_after_the_test_cutoff_change_no_training_input_or_label(ds):
    planted = temporal(plant_after_test_cutoff(synth_events()))
    cfg = load_config(None, TINY).finetune
    for task in ("purchase", "churn"):
        clean, dirty = binary_examples(ds, task, cfg), binary_examples(planted, task, cfg)
        for part in ("fit", "holdout", "test"):
            a, b = clean[part], dirty[part]
            assert np.array_equal(a.users, b.users)
            batch_a = history_batch(ds.sequences, a.users, a.ends, 12)
            batch_b = history_batch(planted.sequences, b.users, b.ends, 12)
            assert torch.equal(batch_a.item_ids, batch_b.item_ids)  # inputs: before the cut-off
            assert torch.equal(batch_a.timestamps, batch_b.timestamps)
            if part != "test":  # train labels end at the test cut-off
                assert np.array_equal(a.labels, b.labels)
        assert not np.array_equal(clean["test"].labels, dirty["test"].labels) or task == "churn"


def test_the_train_cutoff_labels_are_cut_at_the_test_cutoff(ds):
    parts = binary_examples(ds, "purchase", load_config(None, TINY).finetune)
    before_test = ds.sequences.timestamps < TEST_CUT
    assert before_test.any()
    # the fit users' inputs all end before the train cut-off
    last_input = ds.sequences.timestamps[parts["fit"].ends - 1]
    assert (last_input < TRAIN_CUT).all()
    assert timedelta(milliseconds=TEST_CUT - TRAIN_CUT) == timedelta(days=2)


def test_user_batches_end_with_a_cutoff_slot_after_events_before_the_cutoff(ds):
    from shopseq.data.schema import MASK
    from shopseq.train.task_examples import user_batch

    fit = binary_examples(ds, "churn", load_config(None, TINY).finetune)["fit"]
    rows = np.arange(10)
    batch = user_batch(ds, fit, rows, 12)
    assert (batch.item_ids[:, -1] == MASK).all()
    assert (batch.timestamps[:, -1] == TRAIN_CUT).all()
    real = ~batch.padding_mask[:, :-1]
    assert (batch.timestamps[:, :-1][real] < TRAIN_CUT).all()
