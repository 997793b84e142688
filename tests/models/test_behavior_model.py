from dataclasses import replace

import numpy as np
import pytest
import torch

from shopseq.config import ModelConfig
from shopseq.data.batching import Batch
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError
from shopseq.models.base import Recommender
from shopseq.models.behavior_model import BehaviorModel
from shopseq.models.embedding import positions, positions_from_last, time_gap_buckets

torch.set_num_threads(1)

VOCAB = Vocab(tuple(str(i) for i in range(30)), ("view", "cart", "fav", "buy"), ("a", "b", "c"))


def make_model(arch: str = "gpt2", **kw) -> BehaviorModel:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, d_model=16, n_layers=2, n_heads=2, max_len=8, dropout=0.1, **kw)
    return BehaviorModel(cfg, VOCAB, time_gaps=True).eval()


def make_batch(rows: list[list[int]], t: int = 8) -> Batch:
    """Left-padded batch of item-id rows; behaviours, times and categories derived from items."""
    items = torch.zeros(len(rows), t, dtype=torch.int64)
    for r, row in enumerate(rows):
        items[r, t - len(row) :] = torch.tensor(row)
    pad = items == 0
    stamps = torch.cumsum(items * 7_000, dim=1).masked_fill(pad, 0)
    return Batch(
        item_ids=items,
        behavior_ids=(items % 4 + 1).masked_fill(pad, 0),
        timestamps=stamps,
        padding_mask=pad,
        users=torch.arange(len(rows)),
        category_ids=(items % 3 + 1).masked_fill(pad, 0),
    )


def test_positions_count_from_first_real_event():
    pad = torch.tensor([[True, True, False, False, False]])
    assert positions(pad).tolist() == [[0, 0, 0, 1, 2]]


def test_positions_from_last_count_back_from_the_latest_event():
    pad = torch.tensor([[True, True, False, False, False], [False, False, False, False, False]])
    assert positions_from_last(pad).tolist() == [[0, 0, 2, 1, 0], [4, 3, 2, 1, 0]]


def test_time_gap_buckets_by_hand():
    stamps = torch.tensor([[0, 1_000, 1_000, 4_000, 10_000_000]])  # ms
    pad = torch.tensor([[True, False, False, False, False]])
    # gaps: first real event has none -> 0; 0 s -> 1; 3 s -> floor(log2 4)+1 = 3; huge -> last
    assert time_gap_buckets(stamps, pad, 8).tolist() == [[0, 0, 1, 3, 7]]


def test_every_event_table_starts_at_init_std_with_zero_padding_rows():
    model = make_model(init_std=0.05)
    tables = [model.embed.items, model.embed.positions, model.embed.behaviors]
    tables += [model.embed.categories, model.embed.time_gaps]
    for table in tables:
        rows = table.weight.detach()
        if table.padding_idx is not None:
            assert not rows[table.padding_idx].any()
            rows = rows[torch.arange(len(rows)) != table.padding_idx]
        # N(0, 1) (torch's default) would let position/time rows drown the item rows
        assert 0.02 < rows.std().item() < 0.1


def test_xavier_init_redraws_every_trainable_matrix_and_keeps_padding_rows_zero():
    model = make_model(init="xavier")
    attn = model.backbone.model.h[0].attn.c_attn.weight  # [16, 48]: xavier std sqrt(2 / 64)
    assert abs(attn.std().item() - (2 / 64) ** 0.5) < 0.05
    for table in (model.embed.items, model.embed.positions, model.embed.time_gaps):
        if table.padding_idx is not None:
            assert not table.weight[table.padding_idx].any()
    frozen = model.backbone.model.wpe.weight  # the backbone's unused, frozen table
    assert not frozen.any()


@pytest.mark.parametrize("positions_from", ["first", "last"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_causal_mask_hides_the_future(arch, attention, positions_from):
    model = make_model(arch, attention=attention, positions=positions_from)
    batch = make_batch([[5, 6, 7, 8, 9, 10], [11, 12, 13]])
    changed = replace(batch, item_ids=batch.item_ids.clone())
    changed.item_ids[0, -1] = 20  # a later event of row 0
    changed.item_ids[1, -2] = 21  # the middle event of row 1
    with torch.no_grad():
        before, after = model(batch), model(changed)
    # real positions only: a padding slot's state is never trained or read (under eager
    # attention a query with no key left spreads evenly over all of them)
    torch.testing.assert_close(before[0, 2:-1], after[0, 2:-1], rtol=0, atol=1e-6)
    torch.testing.assert_close(before[1, 5:-2], after[1, 5:-2], rtol=0, atol=1e-6)
    assert not torch.allclose(before[0, -1], after[0, -1])


@pytest.mark.parametrize("positions_from", ["first", "last"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_left_padding_never_changes_a_prediction(arch, attention, positions_from):
    model = make_model(arch, attention=attention, positions=positions_from)
    short = make_batch([[5, 6, 7]], t=3)
    padded = make_batch([[5, 6, 7], [8, 9, 10, 11, 12, 13, 14]], t=7)
    with torch.no_grad():
        torch.testing.assert_close(model.score(short)[0], model.score(padded)[0], rtol=0, atol=1e-5)


def test_score_is_recommender_over_the_whole_id_space():
    for arch in ("gpt2", "bert"):
        model = make_model(arch)
        assert isinstance(model, Recommender)
        with torch.no_grad():
            scores = model.score(make_batch([[5, 6], [7, 8, 9]]))
        assert scores.shape == (2, VOCAB.n_tokens)
    assert make_model("bert").max_len == 7  # one slot for the MASK token


def test_chunked_scoring_matches_one_pass():
    model = make_model()
    rows = [list(range(2, 2 + n)) for n in np.random.default_rng(0).integers(1, 9, 40)]
    batch = make_batch(rows)
    with torch.no_grad():
        chunked = model.score(batch)
        whole = model.heads.item_scores(model(batch)[:, -1])
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)


def test_behavior_probs_are_a_distribution_without_pad():
    model = make_model()
    with torch.no_grad():
        probs = model.behavior_probs(make_batch([[5, 6], [7]]))
    assert probs.shape == (2, VOCAB.n_behaviors + 1)
    assert torch.all(probs[:, 0] == 0)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_next_item_head_is_tied_to_item_embeddings():
    model = make_model()
    assert model.heads.item_embedding.weight is model.embed.items.weight


def test_unknown_arch_is_a_user_error():
    from shopseq.errors import ShopseqInputError

    with pytest.raises(ShopseqInputError, match="model.arch 'gpt7'"):
        make_model("gpt7")


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_eager_and_sdpa_attention_give_the_same_states(arch):
    batch = make_batch([[5, 6, 7, 8, 9, 10], [11, 12, 13]])
    eager, sdpa = make_model(arch, attention="eager"), make_model(arch, attention="sdpa")
    real = ~batch.padding_mask
    with torch.no_grad():
        torch.testing.assert_close(eager(batch)[real], sdpa(batch)[real], rtol=0, atol=1e-5)


def test_unknown_attention_is_a_user_error():
    with pytest.raises(ShopseqInputError, match="model.attention 'fast': Specified"):
        make_model(attention="fast")


def test_every_dropout_draws_its_mask_with_rand():
    from torch import nn

    from shopseq.models.dropout import RandDropout

    drops = [m for m in make_model(attention="eager").modules() if isinstance(m, nn.Dropout)]
    assert drops and all(type(m) is RandDropout for m in drops)
