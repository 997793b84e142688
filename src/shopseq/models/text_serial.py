"""A shopper's history written as text for a pretrained text encoder.

    texts = history_texts(ds, titles, ex.users, ex.ends, count_tokens, budget=126)
    # ["view hydra matte serum ; cart hydra matte serum ; view lumen soft towel", ...]

Events read "<behaviour> <item>", oldest first, joined by " ; ". An item is named by its title
when the event log has one (``item_titles``), else "item <raw id> (category <raw id>)", the
category only where the event has one: Taobao has no titles, so its histories read
"view item 2268318 (category 2520377) ; buy item ...". A history over the token budget loses
its oldest events, whole: the most recent ones matter most for what the shopper does next.
Only events before each history's ``end`` are read, so nothing at or after a cut-off leaks in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from shopseq.data.dataset import Dataset
from shopseq.data.schema import N_SPECIAL
from shopseq.data.sequences import event_ranges

SEP = " ; "
SEP_TOKENS = 1  # WordPiece splits off ";" as one token, so token counts add up across events
TokenCounter = Callable[[list[str]], list[int]]  # texts -> tokens each (no special tokens)


def event_text(
    behavior: str, item: str, title: str | None = None, category: str | None = None
) -> str:
    """One event: "view <title>", or "view item <id>" + " (category <id>)" without a title."""
    if title:
        return f"{behavior} {title}"
    named = f"{behavior} item {item}"
    return f"{named} (category {category})" if category else named


def kept_start(n_tokens: np.ndarray, budget: int) -> int:
    """Index of the oldest event kept: the longest suffix of events that fits in ``budget``.

    A suffix of k events costs its tokens plus k - 1 separators. The newest event is always
    kept, even alone over the budget (the tokenizer then cuts it).
    """
    cost = np.cumsum((n_tokens + SEP_TOKENS)[::-1]) - SEP_TOKENS  # [n] cost of the last k events
    fits = int(np.searchsorted(cost, budget, side="right"))
    return len(n_tokens) - max(fits, min(1, len(n_tokens)))


def serialise(texts: Sequence[str], n_tokens: Sequence[int], budget: int) -> str:
    """The most recent events that fit in ``budget`` tokens, oldest first, joined by " ; "."""
    start = kept_start(np.asarray(n_tokens, dtype=np.int64), budget)
    return SEP.join(texts[start:])


def history_texts(
    ds: Dataset,
    titles: Mapping[str, str],
    users: np.ndarray,
    ends: np.ndarray,
    count_tokens: TokenCounter,
    budget: int,
) -> list[str]:
    """[n] each user's events before ``ends`` (exclusive event index) written within ``budget``.

    Every event costs at least one token plus a separator, so no more than ``budget // 2 + 1``
    of the newest events are ever written out.
    """
    starts = np.maximum(ds.sequences.offsets[users], ends - (budget // 2 + 1))
    index = event_ranges(starts, ends - starts)
    items = _items(ds, index)
    texts = [
        event_text(behavior, item, titles.get(item), category)
        for behavior, item, category in zip(
            _behaviors(ds, index), items, _categories(ds, index), strict=True
        )
    ]
    unique = sorted(set(texts))
    counts = dict(zip(unique, count_tokens(unique), strict=True))
    bounds = np.concatenate([[0], np.cumsum(ends - starts)])
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        part = texts[lo:hi]
        out.append(serialise(part, [counts[t] for t in part], budget))
    return out


def _items(ds: Dataset, index: np.ndarray) -> list[str]:
    ids = ds.sequences.item_ids[index]
    return [ds.vocab.items[i - N_SPECIAL] if i >= N_SPECIAL else "unknown" for i in ids.tolist()]


def _behaviors(ds: Dataset, index: np.ndarray) -> list[str]:
    names = ("unknown", *ds.vocab.behaviors)  # id 0 = PAD
    return [names[b] for b in ds.sequences.behavior_ids[index].tolist()]


def _categories(ds: Dataset, index: np.ndarray) -> list[str | None]:
    cats = ds.sequences.category_ids
    if cats is None:
        return [None] * len(index)
    names = (None, *ds.vocab.categories)  # id 0 = unknown
    return [names[c] for c in cats[index].tolist()]
