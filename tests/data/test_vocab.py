import numpy as np
import polars as pl
import pytest

from shopseq.data.schema import MASK, N_SPECIAL, PAD
from shopseq.data.vocab import Vocab, build_vocab


def events(items: list[str], behaviors: list[str]) -> pl.DataFrame:
    n = len(items)
    return pl.DataFrame(
        {"user_id": ["u"] * n, "item_id": items, "behavior": behaviors, "timestamp": list(range(n))}
    )


def test_special_ids_come_before_items():
    assert (PAD, MASK, N_SPECIAL) == (0, 1, 2)
    vocab = build_vocab(events(["b", "a"], ["view", "buy"]))
    assert vocab.encode_items(pl.Series(["a", "b"])).tolist() == [2, 3]
    assert vocab.n_tokens == vocab.n_items + 2


def test_numeric_item_ids_sort_numerically_and_ignore_row_order():
    a = build_vocab(events(["10", "9", "100"], ["view"] * 3))
    b = build_vocab(events(["100", "10", "9"], ["view"] * 3))
    assert a.items == b.items == ("9", "10", "100")


def test_canonical_behaviours_in_funnel_order_then_others():
    vocab = build_vocab(events(["a"] * 5, ["zoom", "buy", "view", "cart", "fav"]))
    assert vocab.behaviors == ("view", "cart", "fav", "buy", "zoom")
    assert vocab.behavior_id("view") == 1


def test_unknown_items_encode_to_pad_and_decode_round_trips():
    vocab = build_vocab(events(["x", "y"], ["view"] * 2))
    ids = vocab.encode_items(pl.Series(["y", "nope", "x"]))
    assert ids.tolist() == [3, PAD, 2]
    assert vocab.decode_items(np.array([2, 3])) == ["x", "y"]
    with pytest.raises(ValueError, match="special ids"):
        vocab.decode_items(np.array([PAD]))


def test_unknown_behaviour_names_the_known_ones():
    vocab = build_vocab(events(["x"], ["view"]))
    with pytest.raises(KeyError, match=r"behaviour 'buy' not in this dataset \(behaviours: view\)"):
        vocab.behavior_id("buy")


def test_save_load_round_trip(tmp_path):
    vocab = Vocab(("1", "2"), ("view", "buy"), ("c1",))
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == vocab
