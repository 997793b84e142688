"""Shared helpers of the train tests."""

import polars as pl
import pytest


def _toy_events(rows: list[list[int]]) -> pl.DataFrame:
    users, items, stamps = [], [], []
    for u, row in enumerate(rows):
        users += [f"u{u}"] * len(row)
        items += [str(i) for i in row]
        stamps += list(range(len(row)))
    return pl.DataFrame(
        {"user_id": users, "item_id": items, "behavior": ["buy"] * len(items), "timestamp": stamps}
    )


@pytest.fixture
def toy_events():
    """Build an ordinal-time event log: user u{i} buys the items of ``rows[i]`` in order."""
    return _toy_events
