import numpy as np
import polars as pl

from shopseq.config import load_config
from shopseq.data.dataset import prepare
from shopseq.data.labels import history_ends
from shopseq.data.schema import DTYPES
from shopseq.data.sequences import SplitSpec
from shopseq.data.synth import SynthConfig, synth
from shopseq.models.item_text import item_titles
from shopseq.models.text_serial import event_text, history_texts, kept_start, serialise
from shopseq.train.task_examples import binary_examples

HOUR = 3_600_000


def words(texts: list[str]) -> list[int]:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return [len(t.split()) for t in texts]


def test_event_text_names_an_item_by_title_else_by_id_and_category():
    assert event_text("view", "17", "blue linen shirt", "c3") == "view blue linen shirt"
    assert event_text("cart", "17", None, "c3") == "cart item 17 (category c3)"
    assert event_text("buy", "17") == "buy item 17"


def test_serialise_keeps_the_newest_events_that_fit_whole():
    texts = ["view a b", "cart c", "buy d e f"]
    n_tokens = [3, 2, 4]  # separators cost one token each
    assert serialise(texts, n_tokens, budget=11) == "view a b ; cart c ; buy d e f"
    assert serialise(texts, n_tokens, budget=10) == "cart c ; buy d e f"
    assert serialise(texts, n_tokens, budget=7) == "cart c ; buy d e f"
    assert serialise(texts, n_tokens, budget=6) == "buy d e f"
    assert serialise(texts, n_tokens, budget=2) == "buy d e f"  # the newest, even over budget
    assert serialise([], [], budget=5) == ""
    assert kept_start(np.array([3, 2, 4]), 6) == 2


def tiny_log() -> pl.DataFrame:
    rows = [  # user, item, behaviour, hour, category, title
        ("u1", "10", "view", 0, "shoes", "red canvas sneaker"),
        ("u1", "11", "view", 1, "socks", None),
        ("u1", "10", "cart", 2, "shoes", "red canvas sneaker"),
        ("u1", "12", "buy", 3, None, None),
        ("u1", "11", "view", 30, "socks", None),  # after the cut-off
        ("u2", "11", "fav", 1, "socks", None),
        ("u2", "12", "view", 40, None, None),
    ]
    cols = ["user_id", "item_id", "behavior", "timestamp", "category_id", "title"]
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    data["timestamp"] = [h * HOUR for h in data["timestamp"]]
    return pl.DataFrame(data, schema={c: DTYPES[c] for c in cols})


def test_history_text_of_a_hand_written_log():
    events = tiny_log()
    ds = prepare(events, SplitSpec(kind="loo"))
    users = np.arange(ds.sequences.n_users)  # u1, u2
    ends = history_ends(ds.sequences, 24 * HOUR)
    texts = history_texts(ds, item_titles(events), users, ends, words, budget=100)
    assert texts == [
        "view red canvas sneaker ; view item 11 (category socks) ; "
        "cart red canvas sneaker ; buy item 12",
        "fav item 11 (category socks)",
    ]
    short = history_texts(ds, item_titles(events), users, ends, words, budget=9)
    assert short[0] == "cart red canvas sneaker ; buy item 12"  # 4 + 1 + 3 tokens


def test_histories_never_read_events_at_or_after_their_cutoff():
    day = 24 * HOUR
    events = synth(SynthConfig(n_users=80, n_items=40, n_categories=3, n_days=20, seed=5))
    start = int(events["timestamp"].min())
    test_cut, train_cut = start + 16 * day, start + 14 * day
    users = events["user_id"].unique().sort()[:30]
    planted = pl.concat(
        [
            events.head(30).with_columns(
                user_id=users,
                item_id=pl.lit(name),
                title=pl.lit(title),
                timestamp=pl.Series([at + i * HOUR for i in range(30)]),
            )
            for name, title, at in (
                ("p-train", "zanzibar train lamp", train_cut),
                ("p-test", "zanzibar test lamp", test_cut),
            )
        ]
    )
    log = pl.concat([events, planted])
    ds = prepare(log, SplitSpec(kind="temporal", cutoff=test_cut, valid_cutoff=train_cut))
    cfg = load_config(None, ["finetune.horizon_hours=48"]).finetune
    titles = item_titles(log)
    seen = {}
    for task in ("purchase", "churn"):
        for part, ex in binary_examples(ds, task, cfg).items():
            texts = history_texts(ds, titles, ex.users, ex.ends, words, budget=400)
            seen[task, part] = " ".join(texts)
            assert "zanzibar test lamp" not in seen[task, part]
            if part != "test":
                assert "zanzibar train lamp" not in seen[task, part]
    assert "zanzibar train lamp" in seen["purchase", "test"]  # the plant reaches later histories
