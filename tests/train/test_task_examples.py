from datetime import timedelta

import numpy as np
import torch

from shopseq.config import load_config
from shopseq.data.batching import history_batch
from shopseq.train.task_examples import binary_examples

torch.set_num_threads(1)
TINY = ["finetune.horizon_hours=48", "finetune.churn_days=1"]


def test_events_after_the_test_cutoff_change_no_training_input_or_label(ds, split):
    planted = split.planted()
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


def test_the_train_cutoff_labels_are_cut_at_the_test_cutoff(ds, split):
    parts = binary_examples(ds, "purchase", load_config(None, TINY).finetune)
    before_test = ds.sequences.timestamps < split.test_cut
    assert before_test.any()
    # the fit users' inputs all end before the train cut-off
    last_input = ds.sequences.timestamps[parts["fit"].ends - 1]
    assert (last_input < split.train_cut).all()
    assert timedelta(milliseconds=split.test_cut - split.train_cut) == timedelta(days=2)


def test_user_batches_end_with_a_cutoff_slot_after_events_before_the_cutoff(ds, split):
    from shopseq.data.schema import MASK
    from shopseq.train.task_examples import user_batch

    fit = binary_examples(ds, "churn", load_config(None, TINY).finetune)["fit"]
    rows = np.arange(10)
    batch = user_batch(ds, fit, rows, 12)
    assert (batch.item_ids[:, -1] == MASK).all()
    assert (batch.timestamps[:, -1] == split.train_cut).all()
    real = ~batch.padding_mask[:, :-1]
    assert (batch.timestamps[:, :-1][real] < split.train_cut).all()
