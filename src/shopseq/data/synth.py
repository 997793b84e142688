"""A realistic synthetic store event log, deterministic from a seed: the built-in default data.

Shoppers come back in sessions (minute gaps inside, hour-to-day gaps between) and browse
categories drawn from an interest vector that drifts over the window. Inside a session they walk
item "neighbour" links (similar items of the same category, complements of a related category),
so the next item depends on the current one. Each view may lead to a cart or a fav, carts are
checked out at the end of the session, cheaper items sell more, consumables are re-bought, and
churners stop returning well before the window ends.

The store (catalogue, shoppers) is drawn in `synth_store`, what the shoppers do in `synth_events`;
this module holds the knobs, the order of the draws (one random stream) and the output frame.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from shopseq.data import schema
from shopseq.data.synth_events import (
    Events,
    funnel,
    make_sessions,
    replenish,
    walk_sessions,
)
from shopseq.data.synth_store import Catalogue, make_catalogue, make_users
from shopseq.errors import ShopseqInputError


@dataclass(frozen=True)
class SynthConfig:
    """Size, seed and realism knobs of the synthetic log; defaults give ~110k events in < 1 s."""

    n_users: int = 2000
    n_items: int = 1500
    n_categories: int = 30
    n_days: int = 60
    seed: int = 0
    start_date: str = "2026-01-01"  # UTC midnight of this day is the first possible timestamp
    zipf_exponent: float = 1.1  # item popularity within a category ~ 1 / rank**zipf_exponent
    price_sigma: float = 0.45  # log-normal spread of prices around the category median
    mean_session_gap_days: float = 5.5  # median over users of the mean gap between sessions
    min_session_gap_hours: float = 1.0
    mean_views_per_session: float = 4.0
    max_views_per_session: int = 40
    churn_share: float = 0.25  # share of users whose last session falls in 15-60% of the window
    interest_concentration: float = 1.5  # Dirichlet mass of a user's category interests
    interest_drift: float = 0.6  # how far interests move from the first to the last day
    p_neighbour: float = 0.55  # next view follows a similar-item link
    p_complement: float = 0.08  # ... a complementary item of a related category
    p_back: float = 0.05  # ... goes back to the session's first item
    p_same_category: float = 0.20  # ... a popular item of the session's category
    # the rest of the time the shopper switches to a category drawn from their interests
    cart_rate: float = 0.075  # carts per view (before user and price effects)
    fav_rate: float = 0.035
    buy_after_cart: float = 0.27  # carts checked out at the end of the session
    direct_buy_rate: float = 0.006  # buys straight from a view, without a cart
    price_elasticity: float = 0.35  # buy/cart odds ~ price**-price_elasticity
    repurchase_rate: float = 0.6  # chance a consumable buy is re-bought after a while
    replenish_days: float = 14.0  # median time to re-buy a consumable

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and value < 0:
                raise ShopseqInputError(f"synth: {f.name} must be >= 0, got {value}")
        for name in ("n_users", "n_items", "n_categories", "n_days", "max_views_per_session"):
            if getattr(self, name) < 1:
                raise ShopseqInputError(f"synth: {name} must be >= 1, got {getattr(self, name)}")
        if self.n_items < 2 * self.n_categories:
            raise ShopseqInputError(
                f"synth: n_items ({self.n_items}) must be >= 2 * n_categories ({self.n_categories})"
            )
        walk = self.p_neighbour + self.p_complement + self.p_back + self.p_same_category
        if walk > 1:
            raise ShopseqInputError(f"synth: transition probabilities sum to {walk:.3f} > 1")
        for name in ("churn_share", "interest_drift", "buy_after_cart", "repurchase_rate"):
            if getattr(self, name) > 1:
                raise ShopseqInputError(f"synth: {name} must be <= 1, got {getattr(self, name)}")
        try:
            date.fromisoformat(self.start_date)
        except ValueError:
            raise ShopseqInputError(
                f"synth: start_date must be YYYY-MM-DD, got {self.start_date!r}"
            ) from None


def synth(cfg: SynthConfig = SynthConfig()) -> pl.DataFrame:
    """A synthetic EventLog with all canonical columns, sorted by (user_id, timestamp)."""
    rng = np.random.default_rng(cfg.seed)
    cat = make_catalogue(cfg, rng)
    users = make_users(cfg, cat, rng)
    session_user, session_start = make_sessions(cfg, users, rng)
    views, session_of_view = walk_sessions(cfg, cat, users, session_user, session_start, rng)
    bought = funnel(cfg, cat, users, views, session_of_view, rng)
    repeats = replenish(cfg, cat, users, bought, rng)
    return _to_frame(cfg, cat, Events.concat([views, bought, repeats]), rng)


def _to_frame(
    cfg: SynthConfig, cat: Catalogue, events: Events, rng: np.random.Generator
) -> pl.DataFrame:
    window_ms = cfg.n_days * 86_400_000
    start_ms = int(datetime.fromisoformat(cfg.start_date).replace(tzinfo=UTC).timestamp()) * 1000
    offset_ms = np.round(events.time_s * 1000).astype(np.int64)
    keep = np.flatnonzero(offset_ms < window_ms)
    order = keep[np.lexsort((offset_ms[keep], events.user[keep]))]  # stable
    user, item = events.user[order], events.item[order]

    user_width = max(5, len(str(cfg.n_users - 1)))
    item_width = max(5, len(str(cfg.n_items - 1)))
    cat_width = max(3, len(str(cfg.n_categories - 1)))
    item_ids = [f"i{i:0{item_width}d}" for i in rng.permutation(cfg.n_items).tolist()]
    user_ids = [f"u{u:0{user_width}d}" for u in range(cfg.n_users)]
    cat_ids = [f"c{c:0{cat_width}d}" for c in range(cfg.n_categories)]
    columns = {
        schema.USER: pl.Series(user_ids).gather(user),
        schema.ITEM: pl.Series(item_ids).gather(item),
        schema.BEHAVIOR: pl.Series(schema.CANONICAL_BEHAVIORS).gather(events.behavior[order]),
        schema.TIMESTAMP: pl.Series(start_ms + offset_ms[order]),
        schema.CATEGORY: pl.Series(cat_ids).gather(cat.category[item]),
        schema.PRICE: pl.Series(cat.price[item]),
        schema.TITLE: pl.Series(cat.titles).gather(item),
    }
    return pl.DataFrame([s.alias(name).cast(schema.DTYPES[name]) for name, s in columns.items()])
