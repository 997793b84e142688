"""Shared helpers of the train tests."""

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pytest

from shopseq.data.dataset import Dataset, prepare
from shopseq.data.sequences import SplitSpec
from shopseq.data.synth import SynthConfig, synth

DAY_MS = 86_400_000
START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class TemporalSplit:
    """The synthetic log of the fine-tuning tests, split at two cut-offs two days apart."""

    train_cut: int = START + 14 * DAY_MS
    test_cut: int = START + 16 * DAY_MS

    def events(self) -> pl.DataFrame:
        return synth(SynthConfig(n_users=150, n_items=60, n_categories=4, n_days=20, seed=3))

    def prepare(self, events: pl.DataFrame) -> Dataset:
        spec = SplitSpec(kind="temporal", cutoff=self.test_cut, valid_cutoff=self.train_cut)
        return prepare(events, spec)

    def planted(self) -> Dataset:
        """The split with buys (and views) of known items by known users planted at or after
        the test cut-off: nothing before the cut-off may change."""
        events = self.events()
        users = events["user_id"].unique().sort()[:40]
        items = events["item_id"].unique().sort()[:40]
        planted = events.head(40).with_columns(
            user_id=users,
            item_id=items,
            behavior=pl.Series(["buy", "view"] * 20),
            timestamp=pl.Series([self.test_cut + i * 3_600_000 for i in range(40)]),
        )
        return self.prepare(pl.concat([events, planted]))


@pytest.fixture(scope="session")
def split() -> TemporalSplit:
    return TemporalSplit()


@pytest.fixture(scope="module")
def ds(split: TemporalSplit) -> Dataset:
    """The temporal split of the synthetic log (fixture of the fine-tuning tests)."""
    return split.prepare(split.events())


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
