from datetime import UTC, datetime

import polars as pl
import pytest

from shopseq.data import schema
from shopseq.data.synth import SynthConfig, synth
from shopseq.errors import ShopseqInputError

SMALL = SynthConfig(n_users=400, n_items=400, n_categories=12, n_days=30, seed=7)
DAY_MS = 86_400_000
START_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1000


@pytest.fixture(scope="module")
def log() -> pl.DataFrame:
    return synth(SMALL)


def views(log: pl.DataFrame) -> pl.DataFrame:
    return log.filter(pl.col("behavior") == "view")


def next_view_pairs(log: pl.DataFrame) -> pl.DataFrame:
    """Consecutive views of one user: (item_id, category_id) -> (next_item, next_category)."""
    return (
        views(log)
        .with_columns(
            pl.col("item_id").shift(-1).over("user_id").alias("next_item"),
            pl.col("category_id").shift(-1).over("user_id").alias("next_category"),
        )
        .drop_nulls("next_item")
    )


def test_same_seed_gives_identical_frame(log):
    assert synth(SMALL).equals(log)


def test_different_seed_gives_different_frame(log):
    other = synth(SynthConfig(n_users=400, n_items=400, n_categories=12, n_days=30, seed=8))
    assert not other.equals(log)


def test_columns_and_dtypes_match_schema(log):
    optional = [c for c in schema.OPTIONAL_COLUMNS if c != schema.ATTRIBUTES]  # none generated
    expected = list(schema.REQUIRED_COLUMNS) + optional
    assert log.columns == expected
    assert dict(log.schema) == {c: schema.DTYPES[c] for c in expected}
    assert log.null_count().sum_horizontal().item() == 0
    assert set(log["behavior"].unique()) == set(schema.CANONICAL_BEHAVIORS)
    assert log["user_id"].str.contains(r"^u\d{5}$").all()
    assert log["item_id"].str.contains(r"^i\d{5}$").all()


def test_sorted_by_user_then_time(log):
    assert log.equals(log.sort("user_id", "timestamp", maintain_order=True))


def test_timestamps_are_milliseconds_inside_the_window(log):
    assert log["timestamp"].min() >= START_MS
    assert log["timestamp"].max() < START_MS + SMALL.n_days * DAY_MS
    assert log["timestamp"].max() > START_MS + (SMALL.n_days - 1) * DAY_MS


def test_behaviour_mix_within_realistic_bands(log):
    share = dict(log["behavior"].value_counts(normalize=True).iter_rows())
    assert 0.84 <= share["view"] <= 0.91
    assert 0.05 <= share["cart"] <= 0.085
    assert 0.02 <= share["fav"] <= 0.04
    assert 0.015 <= share["buy"] <= 0.035


def test_every_buy_follows_a_view_and_most_follow_a_cart(log):
    buys = log.filter(pl.col("behavior") == "buy")

    def first(behavior: str) -> pl.DataFrame:
        return (
            log.filter(pl.col("behavior") == behavior)
            .group_by("user_id", "item_id")
            .agg(pl.col("timestamp").min().alias(behavior))
        )

    joined = buys.join(first("view"), on=["user_id", "item_id"], how="left").join(
        first("cart"), on=["user_id", "item_id"], how="left"
    )
    assert (joined["view"] < joined["timestamp"]).all()
    assert joined["view"].null_count() == 0
    assert (joined["cart"] < joined["timestamp"]).mean() > 0.6


def test_item_popularity_is_heavy_tailed(log):
    counts = views(log)["item_id"].value_counts()["count"].sort(descending=True)
    top = counts.head(SMALL.n_items // 10).sum()
    assert top / counts.sum() > 0.4


def test_some_users_churn_well_before_the_end(log):
    last = log.group_by("user_id").agg(pl.col("timestamp").max())["timestamp"]
    cutoff = START_MS + 0.7 * SMALL.n_days * DAY_MS
    churned = (last < cutoff).mean()
    assert 0.1 < churned < 0.6
    assert log["user_id"].n_unique() == SMALL.n_users


def test_sessions_have_minute_gaps_inside_and_hour_gaps_between(log):
    gaps = (
        log.with_columns(pl.col("timestamp").diff().over("user_id").alias("gap"))["gap"]
        .drop_nulls()
        .cast(pl.Float64)
    )
    assert gaps.median() < 5 * 60_000
    assert 0.1 < (gaps > 3_600_000).mean() < 0.5


def test_consumables_are_bought_again_days_later(log):
    repeats = (
        log.filter(pl.col("behavior") == "buy")
        .group_by("user_id", "item_id")
        .agg(pl.len(), (pl.col("timestamp").max() - pl.col("timestamp").min()).alias("span"))
        .filter(pl.col("len") > 1)
    )
    assert repeats.height >= 10
    assert (repeats["span"] > 3 * DAY_MS).mean() > 0.8


def test_cheaper_items_convert_better(log):
    per_item = log.group_by("item_id").agg(
        pl.col("price").first(),
        (pl.col("behavior") == "buy").sum().alias("buys"),
        (pl.col("behavior") == "view").sum().alias("views"),
    )
    cheap = per_item["price"] <= per_item["price"].median()
    rate = [
        per_item.filter(m)["buys"].sum() / per_item.filter(m)["views"].sum()
        for m in (cheap, ~cheap)
    ]
    assert rate[0] > 1.3 * rate[1]


def test_next_view_stays_in_category_far_above_chance(log):
    pairs = next_view_pairs(log)
    same = (pairs["category_id"] == pairs["next_category"]).mean()
    shares = views(log)["category_id"].value_counts(normalize=True)["proportion"]
    chance = (shares**2).sum()
    assert same > 0.5
    assert same > 4 * chance


def test_transition_model_beats_popularity_on_held_out_users(log):
    pairs = next_view_pairs(log).with_columns(
        (pl.col("user_id").str.slice(1).cast(pl.Int64) % 2 == 0).alias("held_out")
    )
    train, test = pairs.filter(~pl.col("held_out")), pairs.filter(pl.col("held_out"))
    popular = train["next_item"].value_counts().sort("count", "next_item", descending=True)
    popular_hit = test["next_item"].is_in(popular["next_item"].head(10).implode()).mean()
    top_next = (
        train.group_by("item_id", "next_item")
        .len()
        .sort("item_id", "len", "next_item", descending=[False, True, False])
        .group_by("item_id", maintain_order=True)
        .head(10)
        .with_columns(pl.lit(True).alias("hit"))
    )
    markov = test.join(top_next, on=["item_id", "next_item"], how="left")
    markov_hit = markov["hit"].fill_null(False).mean()
    assert markov_hit > 2 * popular_hit
    assert markov_hit > 0.4


def test_category_interests_drift_over_time():
    def first_to_last_overlap(drift: float) -> float:
        cfg = SynthConfig(
            n_users=300, n_items=300, n_categories=12, n_days=30, interest_drift=drift
        )
        v = views(synth(cfg))
        mid = START_MS + 15 * DAY_MS
        halves = v.with_columns((pl.col("timestamp") < mid).alias("early"))
        share = (
            halves.group_by("user_id", "early", "category_id")
            .len()
            .with_columns(
                (pl.col("len") / pl.col("len").sum().over("user_id", "early")).alias("share")
            )
        )
        early = share.filter(pl.col("early")).select("user_id", "category_id", "share")
        late = share.filter(~pl.col("early")).select("user_id", "category_id", "share")
        both = early.join(late, on=["user_id", "category_id"], how="inner")
        overlap = both.select(pl.min_horizontal("share", "share_right").sum()).item()
        n_users = early.select("user_id").unique().join(late, on="user_id", how="semi").height
        return overlap / n_users  # mean over users of 1 - total variation distance

    assert first_to_last_overlap(0.9) < first_to_last_overlap(0.0) - 0.05


def test_titles_are_readable_and_one_per_item(log):
    per_item = log.group_by("item_id").agg(
        pl.col("title").n_unique().alias("n_titles"), pl.col("title").first()
    )
    assert per_item["n_titles"].max() == 1
    assert per_item["title"].str.split(" ").list.len().min() >= 3
    assert per_item["title"].n_unique() > per_item.height // 2
    assert log.group_by("item_id").agg(pl.col("category_id").n_unique())["category_id"].max() == 1
    assert log.group_by("item_id").agg(pl.col("price").n_unique())["price"].max() == 1
    assert (log["price"] > 0).all()


def test_default_config_is_demo_sized():
    log = synth()
    assert 50_000 <= log.height <= 150_000
    assert log["user_id"].n_unique() == 2000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "synth: n_users must be >= 1, got 0"),
        ({"n_items": 10, "n_categories": 6}, "synth: n_items (10) must be >= 2 * n_categories (6)"),
        ({"churn_share": -0.1}, "synth: churn_share must be >= 0, got -0.1"),
        ({"p_neighbour": 0.9}, "synth: transition probabilities sum to 1.230 > 1"),
        ({"start_date": "Jan 1"}, "synth: start_date must be YYYY-MM-DD, got 'Jan 1'"),
    ],
)
def test_bad_config_names_the_field(kwargs, message):
    with pytest.raises(ShopseqInputError) as err:
        SynthConfig(**kwargs)
    assert str(err.value) == message
