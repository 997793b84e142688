import numpy as np
import polars as pl
import torch

from shopseq.data.sequences import build_sequences
from shopseq.data.vocab import build_vocab
from shopseq.train.windows import bucketed_batches, make_train_batch, training_windows


def test_windows_cover_every_target_once(toy_events):
    events = toy_events([[2, 3, 4, 5, 6, 7, 8], [2, 3], [4]])
    seqs = build_sequences(events, build_vocab(events))
    starts, ends = training_windows(seqs, span=4, stride=3, all_windows=True)
    # user 0 (events 0..6): [3,7) and [0,4); user 1 (events 7..8): [7,9); user 2: too short
    assert sorted(zip(starts.tolist(), ends.tolist(), strict=True)) == [(0, 4), (3, 7), (7, 9)]
    targets = sum((e - s - 1 for s, e in zip(starts, ends, strict=True)), 0)
    assert targets == (7 - 1) + (2 - 1)
    starts, ends = training_windows(seqs, span=4, stride=3, all_windows=False)
    assert sorted(zip(starts.tolist(), ends.tolist(), strict=True)) == [(3, 7), (7, 9)]


def test_bucketed_batches_use_every_window_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(2, 51, 1000)
    batches = bucketed_batches(lengths, 32, np.random.default_rng(1), pool=8)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.2 * lengths.sum()  # random batches pad ~1.8x


def test_causal_train_batch_predicts_the_next_event(toy_events):
    events = toy_events([[2, 3, 4, 5], [6, 7]])
    vocab = build_vocab(events)
    seqs = build_sequences(events, vocab)
    starts, ends = np.array([0, 4]), np.array([4, 6])
    tb = make_train_batch(seqs, starts, ends, True, 0.0, torch.Generator())
    ids = vocab.encode_items(pl.Series(["2", "3", "4", "5", "6", "7"])).tolist()
    assert tb.inputs.item_ids.tolist() == [ids[0:3], [0, 0, ids[4]]]
    assert tb.target_ids[tb.loss_mask].tolist() == ids[1:4] + [ids[5]]
    assert tb.inputs.padding_mask.tolist() == [[False] * 3, [True, True, False]]
