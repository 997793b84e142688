"""What the synthetic shoppers do: sessions, the walks inside them, the purchase funnel, re-buys.

Sessions are a Poisson process per shopper. Inside one, each next view follows a neighbour or
complement link of the current item, goes back to the session's first item, or draws a popular item
of the session's category or of a fresh category from the shopper's drifting interests. Views lead
to carts and favs, carts are checked out at the end of the session, and consumables are re-bought
weeks later while the shopper is still active.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from shopseq.data.synth_store import (
    DAY_S,
    N_COMPLEMENTS,
    NEIGHBOUR_WEIGHTS,
    Catalogue,
    Floats,
    Ints,
    Users,
    draw_items,
)

if TYPE_CHECKING:
    from shopseq.data.synth import SynthConfig

VIEW, CART, FAV, BUY = 0, 1, 2, 3  # indices into schema.CANONICAL_BEHAVIORS


@dataclass(frozen=True)
class Events:
    """Events as parallel arrays, unsorted; time_s counts seconds from the window start."""

    user: Ints
    item: Ints
    behavior: Ints
    time_s: Floats

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Events))
        )


def make_sessions(cfg: SynthConfig, users: Users, rng: np.random.Generator) -> tuple[Ints, Floats]:
    """Session owners and start times, grouped by user in time order: a Poisson process
    between join and end, with at least min_session_gap_hours between starts."""
    min_gap = cfg.min_session_gap_hours * 3600.0
    span = users.end_s - users.join_s
    n = 1 + rng.poisson(span / users.gap_s)
    n = np.minimum(n, 1 + np.floor(span / max(min_gap, 1.0)).astype(np.int64))
    owner = np.repeat(np.arange(cfg.n_users), n)
    first = np.cumsum(n) - n
    u = rng.random(len(owner))
    u[first] = 0.0  # the first session is the user's join time
    u = u[np.lexsort((u, owner))]
    rank = np.arange(len(owner)) - first[owner]
    free = span - (n - 1) * min_gap
    start = users.join_s[owner] + u * free[owner] + rank * min_gap
    return owner.astype(np.int64), start


def walk_sessions(
    cfg: SynthConfig,
    cat: Catalogue,
    users: Users,
    owner: Ints,
    start: Floats,
    rng: np.random.Generator,
) -> tuple[Events, Ints]:
    """The views of every session, walked step by step for all sessions at once."""
    n_sessions = len(owner)
    mean = cfg.mean_views_per_session * users.views_scale[owner]
    length = np.minimum(rng.geometric(np.clip(1 / mean, 1e-6, 1.0)), cfg.max_views_per_session)
    frac = (start / (cfg.n_days * DAY_S))[:, None]
    interests = (1 - frac) * users.interests_start[owner] + frac * users.interests_end[owner]
    interests_cum = np.cumsum(interests, axis=1)
    interests_cum /= interests_cum[:, -1:]

    def pick_category(rows: Ints) -> Ints:
        u = rng.random(len(rows))[:, None]
        picked = (interests_cum[rows] < u).sum(axis=1)
        return np.minimum(picked, cfg.n_categories - 1).astype(np.int64)

    session_cat = pick_category(np.arange(n_sessions))
    current = draw_items(cat.cum_popularity, session_cat, rng)
    first_item = current.copy()
    offset = np.cumsum(length) - length
    item = np.empty(int(length.sum()), dtype=np.int64)
    item[offset] = current
    thresholds = np.cumsum([cfg.p_neighbour, cfg.p_complement, cfg.p_back, cfg.p_same_category])
    neighbour_cum = np.cumsum(NEIGHBOUR_WEIGHTS) / NEIGHBOUR_WEIGHTS.sum()
    for step in range(1, int(length.max())):
        rows = np.flatnonzero(length > step)
        now = current[rows]
        k = np.minimum(
            np.searchsorted(neighbour_cum, rng.random(len(rows))), len(neighbour_cum) - 1
        )
        new_cat = pick_category(rows)
        options = np.stack(
            [
                cat.neighbours[now, k],
                cat.complements[now, rng.integers(0, N_COMPLEMENTS, len(rows))],
                first_item[rows],
                draw_items(cat.cum_popularity, session_cat[rows], rng),
                draw_items(cat.cum_popularity, new_cat, rng),
            ]
        )
        move = np.searchsorted(thresholds, rng.random(len(rows)), side="right")
        nxt = options[move, np.arange(len(rows))]
        switched = move == len(thresholds)
        session_cat[rows[switched]] = new_cat[switched]
        current[rows] = nxt
        item[offset[rows] + step] = nxt

    session = np.repeat(np.arange(n_sessions), length).astype(np.int64)
    gap = np.clip(rng.lognormal(np.log(45.0), 1.0, len(item)), 3.0, 1200.0)
    gap[offset] = 0.0
    elapsed = np.cumsum(gap)
    time = start[session] + elapsed - elapsed[offset][session]
    views = Events(owner[session], item, np.full(len(item), VIEW, dtype=np.int64), time)
    return views, session


def funnel(
    cfg: SynthConfig,
    cat: Catalogue,
    users: Users,
    views: Events,
    session: Ints,
    rng: np.random.Generator,
) -> Events:
    """Carts and favs right after views; carts checked out at the end of the session; a few
    direct buys. Cheaper items and keener users convert more."""
    n = len(views.item)
    keen = users.propensity[views.user]
    price = np.sqrt(cat.price_factor[views.item])  # half the price effect at cart, half at buy
    carted = rng.random(n) < np.clip(cfg.cart_rate * keen * price, 0, 0.9)
    faved = rng.random(n) < np.clip(cfg.fav_rate * keen, 0, 0.9)
    checkout = carted & (rng.random(n) < np.clip(cfg.buy_after_cart * price, 0, 0.95))
    direct = ~carted & (rng.random(n) < np.clip(cfg.direct_buy_rate * keen * price**2, 0, 0.5))

    last_view = np.r_[np.flatnonzero(np.diff(session)), n - 1]
    session_end = views.time_s[last_view][session]  # sessions are contiguous and non-empty
    cart_time = views.time_s + rng.uniform(5, 120, n)
    fav_time = views.time_s + rng.uniform(3, 60, n)
    buy_time = np.where(
        carted,
        np.maximum(session_end + rng.uniform(30, 300, n), cart_time + 10),
        views.time_s + rng.uniform(20, 180, n),
    )
    buys = np.flatnonzero(checkout | direct)
    # One buy per item and session even if it was carted twice.
    _, keep = np.unique(session[buys] * cfg.n_items + views.item[buys], return_index=True)
    buys = np.sort(buys[keep])
    parts = [
        _subset(views, np.flatnonzero(carted), CART, cart_time),
        _subset(views, np.flatnonzero(faved), FAV, fav_time),
        _subset(views, buys, BUY, buy_time),
    ]
    return Events.concat(parts)


def _subset(views: Events, rows: Ints, behavior: int, time: Floats) -> Events:
    return Events(
        views.user[rows],
        views.item[rows],
        np.full(len(rows), behavior, dtype=np.int64),
        time[rows],
    )


def replenish(
    cfg: SynthConfig, cat: Catalogue, users: Users, bought: Events, rng: np.random.Generator
) -> Events:
    """Consumables bought are re-bought (view, usually cart, buy) some weeks later, while the
    user is still active; a re-buy can itself be re-bought."""
    rows = np.flatnonzero((bought.behavior == BUY) & cat.consumable[bought.item])
    user, item, time = bought.user[rows], bought.item[rows], bought.time_s[rows]
    parts = [Events(user[:0], item[:0], user[:0], time[:0])]
    while len(user):
        time = time + rng.lognormal(np.log(cfg.replenish_days * DAY_S), 0.35, len(user))
        keep = (rng.random(len(user)) < cfg.repurchase_rate) & (time + 600 < users.end_s[user])
        user, item, time = user[keep], item[keep], time[keep]
        n = len(user)
        carted = rng.random(n) < 0.7
        cart_time = time + rng.uniform(5, 60, n)
        buy_time = time + rng.uniform(90, 400, n)
        ones = np.ones(n, dtype=np.int64)
        parts += [
            Events(user, item, VIEW * ones, time),
            Events(user[carted], item[carted], CART * ones[carted], cart_time[carted]),
            Events(user, item, BUY * ones, buy_time),
        ]
        time = buy_time
    return Events.concat(parts)
