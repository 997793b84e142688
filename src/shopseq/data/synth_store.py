"""The synthetic store behind `synth`: its catalogue and its shoppers, drawn before anyone acts.

The catalogue holds categories from real-world templates (median price, consumable or not, a
complementary category), items grouped by category with Zipf popularity, log-normal prices,
readable titles and each item's neighbour and complement links. Shoppers get a join time, a churn
time, a mean session gap, a session-length scale, a conversion propensity and category interests
that drift from the first to the last day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from shopseq.data.synth import SynthConfig

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

DAY_S = 86_400.0
# Chance of following the 1st..5th neighbour link: concentrated, so transitions are learnable.
NEIGHBOUR_WEIGHTS = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
N_COMPLEMENTS = 3


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
class Catalogue:
    """Every item's category, popularity, price, links and title; categories' weights."""

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
class Users:
    """Every shopper's active span, session rhythm, conversion propensity and interests."""

    join_s: Floats  # [U] first session
    end_s: Floats  # [U] no activity after this (well before the window end for churners)
    gap_s: Floats  # [U] mean time between session starts
    views_scale: Floats  # [U] multiplies the mean session length
    propensity: Floats  # [U] multiplies cart/fav/buy odds
    interests_start: Floats  # [U, C] category interests on the first day
    interests_end: Floats  # [U, C] ... and on the last day


def draw_items(cum_popularity: Floats, categories: Ints, rng: np.random.Generator) -> Ints:
    """One item per entry of `categories` (any shape), drawn from it by Zipf popularity."""
    u = categories + rng.random(categories.shape)
    idx = np.searchsorted(cum_popularity, u, side="right")
    return np.minimum(idx, len(cum_popularity) - 1).astype(np.int64)


def make_catalogue(cfg: SynthConfig, rng: np.random.Generator) -> Catalogue:
    """Categories from the templates, items with Zipf popularity, prices, links and titles."""
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
    neighbours = draw_items(cum_popularity, rows, rng)
    for _ in range(3):  # redraw self-links; a rare leftover is just a repeat view
        self_link = neighbours == np.arange(n_items)[:, None]
        neighbours = np.where(self_link, draw_items(cum_popularity, rows, rng), neighbours)
    comp_rows = np.repeat(comp_cat[category][:, None], N_COMPLEMENTS, axis=1)
    complements = draw_items(cum_popularity, comp_rows, rng)
    titles = _make_titles(templates[category], rng)
    return Catalogue(
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


def make_users(cfg: SynthConfig, cat: Catalogue, rng: np.random.Generator) -> Users:
    """Join and churn times, session gaps and lengths, propensities and drifting interests."""
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
    return Users(
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
