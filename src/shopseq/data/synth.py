"""A realistic synthetic store event log, deterministic from a seed: the built-in default data.

Shoppers come back in sessions (minute gaps inside, hour-to-day gaps between) and browse
categories drawn from an interest vector that drifts over the window. Inside a session they walk
item "neighbour" links (similar items of the same category, complements of a related category),
so the next item depends on the current one. Each view may lead to a cart or a fav, carts are
checked out at the end of the session, cheaper items sell more, consumables are re-bought, and
churners stop returning well before the window ends.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt
import polars as pl

from shopseq.data import schema
from shopseq.errors import ShopseqInputError

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

DAY_S = 86_400.0
VIEW, CART, FAV, BUY = 0, 1, 2, 3
# Chance of following the 1st..5th neighbour link: concentrated, so transitions are learnable.
NEIGHBOUR_WEIGHTS = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
N_COMPLEMENTS = 3


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


# name, median price, consumable, brands | adjectives | nouns (titles read "brand adjective noun"),
# complementary category
_TEMPLATES: tuple[tuple[str, float, bool, str, str], ...] = (
    ("hiking boots", 120, False, "Trailrunner Summit Ridgeline Alpina|waterproof lightweight leather insulated all-terrain|hiking boots,trekking shoes,approach shoes", "backpacks"),  # noqa: E501
    ("backpacks", 70, False, "Summit Trekker Nomad Ridgeline|ultralight waterproof roll-top padded travel|backpack,daypack,hiking pack", "hiking boots"),  # noqa: E501
    ("coffee beans", 14, True, "Roastery Highland Bluebird Morningside|dark-roast single-origin organic espresso decaf|coffee beans,ground coffee,espresso blend", "coffee makers"),  # noqa: E501
    ("coffee makers", 90, False, "Brewmaster Kettleworks Barista Morningside|programmable stainless pour-over compact thermal|coffee maker,french press,espresso machine,coffee grinder", "coffee beans"),  # noqa: E501
    ("smartphones", 600, False, "Nova Pixelon Zentek Orbit|5G unlocked dual-sim 128GB 256GB|smartphone,camera phone,foldable phone", "phone cases"),  # noqa: E501
    ("phone cases", 18, False, "Armorlite Shellguard Nova Clearview|shockproof slim clear leather magnetic|phone case,wallet case,bumper case,screen protector", "smartphones"),  # noqa: E501
    ("headphones", 110, False, "Soundwave Zentek Echo Pulse|wireless noise-cancelling over-ear sport studio|headphones,earbuds,headset", "smartphones"),  # noqa: E501
    ("laptops", 1100, False, "Zentek Orbit Lumen Vertex|14-inch 16-inch ultrathin gaming business|laptop,notebook,ultrabook", "laptop accessories"),  # noqa: E501
    ("laptop accessories", 35, False, "Vertex Keylink Portwise Zentek|wireless ergonomic mechanical usb-c compact|mouse,keyboard,usb hub,laptop stand", "laptops"),  # noqa: E501
    ("pet food", 40, True, "Tailwag Farmstead Pawsome Wildbowl|grain-free salmon chicken senior puppy|dry dog food,cat food,wet dog food,dog treats", "pet toys"),  # noqa: E501
    ("pet toys", 12, False, "Tailwag Chewbuddy Pawsome Fetchly|squeaky durable interactive plush rope|dog toy,cat toy,chew bone,ball launcher", "pet food"),  # noqa: E501
    ("diapers", 30, True, "Snugglies Cloudsoft Littleones Tendercare|size-3 size-4 overnight sensitive eco|diapers,baby wipes,diaper pants", "baby clothing"),  # noqa: E501
    ("baby clothing", 20, False, "Littleones Cottonbud Snugglies Tinytrail|organic cotton striped knit footed|bodysuit,sleepsuit,baby hat,romper", "diapers"),  # noqa: E501
    ("vitamins", 22, True, "Vitalis Greenleaf Purecore Sunrise|daily vegan chewable high-strength|multivitamin,vitamin D3,omega-3 capsules,magnesium tablets", "sports nutrition"),  # noqa: E501
    ("sports nutrition", 35, True, "Ironpeak Purecore Liftwell Vitalis|whey vanilla chocolate plant-based unflavoured|protein powder,protein bars,creatine,electrolyte mix", "fitness equipment"),  # noqa: E501
    ("fitness equipment", 60, False, "Ironpeak Liftwell Corestrong Flexa|adjustable non-slip foam heavy-duty|dumbbells,yoga mat,resistance bands,kettlebell,foam roller", "sports nutrition"),  # noqa: E501
    ("skincare", 25, True, "Dewlight Purecore Lumina Velvetleaf|hydrating fragrance-free vitamin-C night SPF-50|face cream,serum,cleanser,sunscreen", "makeup"),  # noqa: E501
    ("makeup", 18, True, "Lumina Velvetleaf Rosebay Glossique|matte long-wear waterproof tinted|lipstick,mascara,foundation,eyeliner", "skincare"),  # noqa: E501
    ("hair care", 10, True, "Silkroot Purecore Herbalist Velvetleaf|repairing volumising anti-dandruff argan|shampoo,conditioner,hair mask", "skincare"),  # noqa: E501
    ("cookware", 55, False, "Ironhearth Chefline Copperleaf Kettleworks|non-stick cast-iron stainless ceramic|frying pan,saucepan,dutch oven,wok", "kitchen knives"),  # noqa: E501
    ("kitchen knives", 45, False, "Chefline Edgecraft Ironhearth Sakura|forged damascus carbon-steel serrated|chef's knife,paring knife,knife set,bread knife", "cookware"),  # noqa: E501
    ("tea", 8, True, "Leafhouse Highland Jadepot Morningside|green earl-grey loose-leaf herbal chai|tea,tea bags,matcha", "coffee makers"),  # noqa: E501
    ("running shoes", 110, False, "Trailrunner Stride Pacer Swiftfoot|cushioned lightweight racing trail neutral|running shoes,trainers", "sportswear"),  # noqa: E501
    ("sportswear", 35, False, "Stride Flexa Pacer Coolcore|breathable quick-dry compression seamless|running shirt,leggings,shorts,hoodie", "running shoes"),  # noqa: E501
    ("books", 16, False, "Penwright Inkwell Bluebird Lanternhouse|bestselling illustrated paperback hardcover|novel,cookbook,thriller,travel guide", "board games"),  # noqa: E501
    ("board games", 35, False, "Meeple Dicecraft Gamenight Tabletop|cooperative strategy party family|board game,card game,jigsaw puzzle", "books"),  # noqa: E501
    ("lighting", 40, False, "Lumen Glowhaus Brightwell Nordlys|dimmable smart LED rattan brass|floor lamp,desk lamp,pendant light,light bulbs", "home decor"),  # noqa: E501
    ("home decor", 30, False, "Nordlys Glowhaus Linenhouse Terrace|ceramic linen handwoven scented|vase,cushion cover,throw blanket,scented candle", "lighting"),  # noqa: E501
    ("cleaning supplies", 9, True, "Sparkle Freshwave Greenleaf Clearview|lemon eco concentrated antibacterial|laundry detergent,dish soap,surface spray,dishwasher tablets", "cookware"),  # noqa: E501
    ("toys", 30, False, "Brickwise Tinytrail Funfactory Starblock|educational wooden remote-control collectible|building set,toy car,doll,puzzle", "board games"),  # noqa: E501
)  # fmt: skip
_TEMPLATE_INDEX = {t[0]: i for i, t in enumerate(_TEMPLATES)}


@dataclass(frozen=True)
class _Catalogue:
    category_weight: Floats  # [C] overall popularity of each category
    category: Ints  # [I] category of each item; items are grouped by category, by popularity rank
    cum_popularity: Floats  # [I] category + within-category cumulative popularity (for sampling)
    price: Floats  # [I]
    price_factor: Floats  # [I] relative buy/cart odds from price, mean 1 over views
    consumable: npt.NDArray[np.bool_]  # [I]
    neighbours: Ints  # [I, 5] similar items of the same category, most likely first
    complements: Ints  # [I, N_COMPLEMENTS] items of the complementary category
    titles: list[str]


@dataclass(frozen=True)
class _Users:
    join_s: Floats  # [U] first session
    end_s: Floats  # [U] no activity after this (well before the window end for churners)
    gap_s: Floats  # [U] mean time between session starts
    views_scale: Floats  # [U] multiplies the mean session length
    propensity: Floats  # [U] multiplies cart/fav/buy odds
    interests_start: Floats  # [U, C] category interests on the first day
    interests_end: Floats  # [U, C] ... and on the last day


@dataclass(frozen=True)
class _Events:
    user: Ints
    item: Ints
    behavior: Ints
    time_s: Floats

    @staticmethod
    def concat(parts: list[_Events]) -> _Events:
        return _Events(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Events))
        )


def synth(cfg: SynthConfig = SynthConfig()) -> pl.DataFrame:
    """A synthetic EventLog with all canonical columns, sorted by (user_id, timestamp)."""
    rng = np.random.default_rng(cfg.seed)
    cat = _make_catalogue(cfg, rng)
    users = _make_users(cfg, cat, rng)
    session_user, session_start = _make_sessions(cfg, users, rng)
    views, session_of_view = _walk_sessions(cfg, cat, users, session_user, session_start, rng)
    bought = _funnel(cfg, cat, users, views, session_of_view, rng)
    repeats = _replenish(cfg, cat, users, bought, rng)
    return _to_frame(cfg, cat, _Events.concat([views, bought, repeats]), rng)


def _draw_items(cum_popularity: Floats, categories: Ints, rng: np.random.Generator) -> Ints:
    """One item per entry of `categories` (any shape), drawn from it by Zipf popularity."""
    u = categories + rng.random(categories.shape)
    idx = np.searchsorted(cum_popularity, u, side="right")
    return np.minimum(idx, len(cum_popularity) - 1).astype(np.int64)


def _make_catalogue(cfg: SynthConfig, rng: np.random.Generator) -> _Catalogue:
    n_cat, n_items = cfg.n_categories, cfg.n_items
    templates = np.arange(n_cat) % len(_TEMPLATES)
    cat_weight = rng.gamma(2.0, size=n_cat)
    sizes = 2 + rng.multinomial(n_items - 2 * n_cat, cat_weight / cat_weight.sum())
    category = np.repeat(np.arange(n_cat), sizes).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(n_items) - first[category]
    weight = 1.0 / (rank + 1.0) ** cfg.zipf_exponent
    cat_total = np.bincount(category, weights=weight)
    cum_within = np.cumsum(weight) - np.repeat(np.cumsum(cat_total) - cat_total, sizes)
    cum_popularity = category + cum_within / cat_total[category]
    cum_popularity[np.cumsum(sizes) - 1] = category[np.cumsum(sizes) - 1] + 1.0

    median = np.array([_TEMPLATES[t][1] for t in templates])[category]
    price = np.maximum(np.round(median * rng.lognormal(0.0, cfg.price_sigma, n_items)) - 0.01, 0.99)
    factor = np.clip((price / np.median(price)) ** -cfg.price_elasticity, 0.1, 5.0)
    view_share = cat_weight[category] * weight / cat_total[category]
    price_factor = factor / np.average(factor, weights=view_share)
    consumable = np.array([_TEMPLATES[t][2] for t in templates])[category]

    # Complementary category: the template's partner in the same block of len(_TEMPLATES) ids.
    partner = np.array([_TEMPLATE_INDEX[_TEMPLATES[t][4]] for t in templates])
    comp_cat = np.arange(n_cat) - templates + partner
    fallback = np.where(partner < n_cat, partner, rng.integers(0, n_cat, n_cat))
    comp_cat = np.where(comp_cat < n_cat, comp_cat, fallback)

    k = len(NEIGHBOUR_WEIGHTS)
    rows = np.repeat(category[:, None], k, axis=1)
    neighbours = _draw_items(cum_popularity, rows, rng)
    for _ in range(3):  # redraw self-links; a rare leftover is just a repeat view
        self_link = neighbours == np.arange(n_items)[:, None]
        neighbours = np.where(self_link, _draw_items(cum_popularity, rows, rng), neighbours)
    comp_rows = np.repeat(comp_cat[category][:, None], N_COMPLEMENTS, axis=1)
    complements = _draw_items(cum_popularity, comp_rows, rng)
    titles = _make_titles(templates[category], rng)
    return _Catalogue(
        cat_weight / cat_weight.sum(),
        category,
        cum_popularity,
        price,
        price_factor,
        consumable,
        neighbours,
        complements,
        titles,
    )


def _make_titles(item_template: Ints, rng: np.random.Generator) -> list[str]:
    words = []
    for t in _TEMPLATES:
        brands, adjectives, nouns = t[3].split("|")
        words.append((brands.split(), adjectives.split(), nouns.split(",")))
    picks = rng.random((len(item_template), 3))
    titles = []
    for t, (a, b, c) in zip(item_template.tolist(), picks.tolist(), strict=True):
        brands, adjectives, nouns = words[t]
        titles.append(
            f"{brands[int(a * len(brands))]} {adjectives[int(b * len(adjectives))]} "
            f"{nouns[int(c * len(nouns))]}"
        )
    return titles


def _make_users(cfg: SynthConfig, cat: _Catalogue, rng: np.random.Generator) -> _Users:
    n, window = cfg.n_users, cfg.n_days * DAY_S
    churner = rng.random(n) < cfg.churn_share
    end = np.where(churner, rng.uniform(0.15, 0.6, n) * window, window - 1800.0)
    # Most users are already customers on day one; the rest join during the first half.
    join = np.where(rng.random(n) < 0.6, rng.uniform(0, 0.05, n), rng.uniform(0, 0.5, n)) * window
    join = np.where(join < end - DAY_S, join, end * rng.uniform(0, 0.5, n))
    gap = rng.lognormal(np.log(cfg.mean_session_gap_days * DAY_S), 0.8, n)
    gap = np.maximum(gap, 2 * cfg.min_session_gap_hours * 3600.0)
    alpha = cfg.interest_concentration * cat.category_weight
    start = _dirichlet(alpha, n, rng)
    end_interests = (1 - cfg.interest_drift) * start + cfg.interest_drift * _dirichlet(
        alpha, n, rng
    )
    return _Users(
        join_s=join,
        end_s=end,
        gap_s=gap,
        views_scale=rng.lognormal(-0.08, 0.4, n),
        propensity=rng.lognormal(-0.125, 0.5, n),  # mean 1
        interests_start=start,
        interests_end=end_interests,
    )


def _dirichlet(alpha: Floats, n: int, rng: np.random.Generator) -> Floats:
    """[n, len(alpha)] Dirichlet rows; tiny alphas may underflow, so rows get a floor."""
    g = rng.gamma(np.broadcast_to(alpha, (n, len(alpha)))) + 1e-12
    return g / g.sum(axis=1, keepdims=True)


def _make_sessions(
    cfg: SynthConfig, users: _Users, rng: np.random.Generator
) -> tuple[Ints, Floats]:
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


def _walk_sessions(
    cfg: SynthConfig,
    cat: _Catalogue,
    users: _Users,
    owner: Ints,
    start: Floats,
    rng: np.random.Generator,
) -> tuple[_Events, Ints]:
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
    current = _draw_items(cat.cum_popularity, session_cat, rng)
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
                _draw_items(cat.cum_popularity, session_cat[rows], rng),
                _draw_items(cat.cum_popularity, new_cat, rng),
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
    views = _Events(owner[session], item, np.full(len(item), VIEW, dtype=np.int64), time)
    return views, session


def _funnel(
    cfg: SynthConfig,
    cat: _Catalogue,
    users: _Users,
    views: _Events,
    session: Ints,
    rng: np.random.Generator,
) -> _Events:
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
    return _Events.concat(parts)


def _subset(views: _Events, rows: Ints, behavior: int, time: Floats) -> _Events:
    return _Events(
        views.user[rows],
        views.item[rows],
        np.full(len(rows), behavior, dtype=np.int64),
        time[rows],
    )


def _replenish(
    cfg: SynthConfig, cat: _Catalogue, users: _Users, funnel: _Events, rng: np.random.Generator
) -> _Events:
    """Consumables bought are re-bought (view, usually cart, buy) some weeks later, while the
    user is still active; a re-buy can itself be re-bought."""
    rows = np.flatnonzero((funnel.behavior == BUY) & cat.consumable[funnel.item])
    user, item, time = funnel.user[rows], funnel.item[rows], funnel.time_s[rows]
    parts = [_Events(user[:0], item[:0], user[:0], time[:0])]
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
            _Events(user, item, VIEW * ones, time),
            _Events(user[carted], item[carted], CART * ones[carted], cart_time[carted]),
            _Events(user, item, BUY * ones, buy_time),
        ]
        time = buy_time
    return _Events.concat(parts)


def _to_frame(
    cfg: SynthConfig, cat: _Catalogue, events: _Events, rng: np.random.Generator
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
