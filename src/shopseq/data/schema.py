"""Canonical column names, dtypes and special ids: the one place other modules read them."""

from __future__ import annotations

import polars as pl

# Special vocabulary ids. Items start at N_SPECIAL.
PAD = 0
MASK = 1
N_SPECIAL = 2

# Canonical EventLog columns.
USER = "user_id"
ITEM = "item_id"
BEHAVIOR = "behavior"
TIMESTAMP = "timestamp"
CATEGORY = "category_id"
PRICE = "price"
TITLE = "title"
ATTRIBUTES = "attributes"  # an item's attribute tokens (brand, categories, ...), "|"-separated
ATTRIBUTE_SEP = "|"

REQUIRED_COLUMNS: tuple[str, ...] = (USER, ITEM, BEHAVIOR, TIMESTAMP)
OPTIONAL_COLUMNS: tuple[str, ...] = (CATEGORY, PRICE, TITLE, ATTRIBUTES)

# Raw ids stay strings so any store's ids survive; timestamps are Int64 in the unit named by
# EventLog metadata: "ms" (Unix milliseconds, UTC) or "ordinal" (order-only sources).
DTYPES: dict[str, pl.DataType] = {
    USER: pl.Utf8(),
    ITEM: pl.Utf8(),
    BEHAVIOR: pl.Utf8(),
    TIMESTAMP: pl.Int64(),
    CATEGORY: pl.Utf8(),
    PRICE: pl.Float64(),
    TITLE: pl.Utf8(),
    ATTRIBUTES: pl.Utf8(),
}

TIME_UNIT_MS = "ms"
TIME_UNIT_ORDINAL = "ordinal"

# The small canonical behaviour set; other names pass through unchanged.
CANONICAL_BEHAVIORS: tuple[str, ...] = ("view", "cart", "fav", "buy")
DEFAULT_BEHAVIOR_MAP: dict[str, str] = {
    "view": "view",
    "pv": "view",
    "click": "view",
    "clicks": "view",
    "page_view": "view",
    "cart": "cart",
    "carts": "cart",
    "addtocart": "cart",
    "add_to_cart": "cart",
    "fav": "fav",
    "favorite": "fav",
    "favourite": "fav",
    "wishlist": "fav",
    "buy": "buy",
    "purchase": "buy",
    "order": "buy",
    "orders": "buy",
    "transaction": "buy",
    "review": "buy",
}

# Names of the files in an ingest output directory.
EVENTS_FILE = "events.parquet"
REJECTS_FILE = "rejects.parquet"
INGEST_META_FILE = "ingest.json"


def empty_event_log(with_optional: bool = False) -> pl.DataFrame:
    """An empty EventLog frame with the canonical dtypes."""
    cols = REQUIRED_COLUMNS + (OPTIONAL_COLUMNS if with_optional else ())
    return pl.DataFrame(schema={c: DTYPES[c] for c in cols})
