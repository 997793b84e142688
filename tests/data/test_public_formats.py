"""Every named format reads its real dataset file with nothing lost and the published counts."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from shopseq.data.ingest import IngestResult, ingest, summarize
from shopseq.data.schema import DTYPES, TIME_UNIT_MS, TIME_UNIT_ORDINAL
from shopseq.errors import ShopseqInputError


def _check_accounting(result: IngestResult) -> None:
    """Invariants of every ingest: nothing lost, canonical dtypes, stable (user, time) order."""
    assert result.kept + result.rejected == result.read
    assert result.events.height == result.kept and result.rejects.height == result.rejected
    assert {c: DTYPES[c] for c in result.events.columns} == dict(result.events.schema)
    assert result.events.equals(result.events.sort("user_id", "timestamp", maintain_order=True))


def test_taobao_reads_all_rows_and_maps_behaviours(real_data) -> None:
    result = ingest(real_data("taobao-userbehavior-sample/UserBehavior_sample.csv.gz"), "taobao")
    _check_accounting(result)
    assert (result.read, result.rejected, result.time_unit) == (84_287, 0, TIME_UNIT_MS)
    stats = summarize(result.events, result.time_unit)
    assert (stats["n_users"], stats["n_items"]) == (814, 55_233)
    assert stats["behavior_counts"] == {"view": 75_693, "cart": 4_494, "fav": 2_351, "buy": 1_749}
    assert result.events.row(0) == ("1", "2268318", "view", 1_511_544_070_000, "2520377")
    assert result.events["category_id"].n_unique() == 2_911


def test_rees46_builds_titles_and_rejects_exact_duplicates(real_data) -> None:
    result = ingest(real_data("rees46-ecommerce-head-sample/2019-Oct_head10k.csv.gz"), "rees46")
    _check_accounting(result)
    assert (result.read, result.kept, result.time_unit) == (9_999, 9_994, TIME_UNIT_MS)
    assert result.rejects["reason"].to_list() == ["duplicate"] * 5
    stats = summarize(result.events, result.time_unit)
    assert (stats["n_users"], stats["n_items"]) == (2_867, 4_148)
    assert stats["behavior_counts"] == {"view": 9_779, "buy": 118, "cart": 97}
    assert stats["time_min"] == "2019-10-01T00:00:00+00:00"
    first = result.events.filter(pl.col("item_id") == "3900821").row(0, named=True)
    assert first["title"] == "appliances.environment.water_heater aqua"
    assert first["price"] == 33.20 and first["timestamp"] == 1_569_888_000_000
    brand_only = result.events.filter(pl.col("item_id") == "44600062")["title"][0]
    assert brand_only == "shiseido"


def test_yoochoose_sessions_become_users_of_clicks(real_data) -> None:
    train = ingest(
        real_data("yoochoose-clicks-100k/yoochoose-clicks-100k_train_full.txt"), "yoochoose"
    )
    test = ingest(real_data("yoochoose-clicks-100k/yoochoose-clicks-100k_test.txt"), "yoochoose")
    for result in (train, test):
        _check_accounting(result)
        assert set(result.events["behavior"]) == {"view"}
    assert (train.read, train.rejected) == (70_278, 1)
    assert train.rejects.row(0, named=True)["line"] == 67_134
    assert (test.read, test.events["user_id"].n_unique(), test.events["item_id"].n_unique()) == (
        13_568,
        3_416,
        1_771,
    )
    assert test.events.filter(pl.col("user_id") == "1")["timestamp"][0] == 1_396_860_669_277


def test_yoochoose_raw_recsys15_clicks_format(tmp_path: Path) -> None:
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text(
        "1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,0\n"
    )
    result = ingest(path, "yoochoose")
    assert result.events["timestamp"].to_list() == [1_396_867_869_277, 1_396_868_049_868]
    assert result.events["item_id"].to_list() == ["214536502", "214536500"]


def test_otto_one_row_per_event(real_data) -> None:
    result = ingest(real_data("otto-sessions-sample/train_20sessions.jsonl"), "otto")
    _check_accounting(result)
    assert (result.read, result.rejected, result.time_unit) == (862, 0, TIME_UNIT_MS)
    stats = summarize(result.events, result.time_unit)
    assert (stats["n_users"], stats["n_items"]) == (20, 510)
    assert stats["behavior_counts"] == {"view": 800, "cart": 52, "buy": 10}
    assert result.events["timestamp"].min() == 1_659_304_800_025


def test_sasrec_video_has_ordinal_timestamps(real_data) -> None:
    result = ingest(real_data("amazon-videogames/Video.txt"), "sasrec")
    _check_accounting(result)
    assert (result.read, result.rejected, result.time_unit) == (287_107, 0, TIME_UNIT_ORDINAL)
    stats = summarize(result.events, result.time_unit)
    assert (stats["n_users"], stats["n_items"]) == (31_013, 23_715)
    assert stats["behavior_counts"] == {"buy": 287_107}
    user_1 = result.events.filter(pl.col("user_id") == "1")
    assert user_1["timestamp"].to_list() == list(range(user_1.height))
    assert user_1["item_id"].head(3).to_list() == ["6393", "13504", "14087"]


def test_s3rec_beauty_counts_and_titles(real_data) -> None:
    result = ingest(real_data("amazon-beauty/Beauty.txt"), "s3rec")
    _check_accounting(result)
    assert (result.read, result.rejected, result.time_unit) == (198_502, 0, TIME_UNIT_ORDINAL)
    stats = summarize(result.events, result.time_unit)
    assert (stats["n_users"], stats["n_items"]) == (22_363, 12_101)
    assert stats["seq_len"]["min"] == 5 and stats["seq_len"]["max"] == 204
    assert stats["seq_len"]["p50"] == 6
    titled = result.events.filter(pl.col("title").is_not_null())
    assert titled["item_id"].n_unique() == 12_094
    assert titled.filter(pl.col("item_id") == "1")["title"][0].startswith("OPI Nail Lacquer")
    assert result.sources[1].endswith("Beauty_items.tsv")
    assert result.sources[2].endswith("Beauty_item2attributes.json")
    first = result.events.filter(pl.col("item_id") == "4")["attributes"][0]
    assert first == "1|2|3"  # Beauty_item2attributes.json: "4": [1, 2, 3]
    assert result.events["attributes"].null_count() == 0


def test_s3rec_equals_its_sasrec_export(real_data) -> None:
    s3rec = ingest(real_data("amazon-beauty/Beauty.txt"), "s3rec").events
    s3rec = s3rec.drop("title", "attributes")
    sasrec = ingest(real_data("amazon-beauty/Beauty_sasrec.txt.gz"), "sasrec").events
    assert s3rec.equals(sasrec)


@pytest.mark.parametrize(
    ("relpath", "n_events", "n_users", "n_items"),
    [
        ("amazon-sports/Sports_and_Outdoors.txt", 296_337, 35_598, 18_357),
        ("amazon-toys/Toys_and_Games.txt", 167_597, 19_412, 11_924),
    ],
)
def test_s3rec_without_titles_has_no_title_column(
    real_data, relpath: str, n_events: int, n_users: int, n_items: int
) -> None:
    result = ingest(real_data(relpath), "s3rec")
    _check_accounting(result)
    assert "title" not in result.events.columns
    assert result.events["attributes"].null_count() == 0  # every item has attributes
    events = result.events
    assert (events.height, events["user_id"].n_unique(), events["item_id"].n_unique()) == (
        n_events,
        n_users,
        n_items,
    )


def test_recbole_rebuilds_the_full_sequences(real_data) -> None:
    train = real_data("amazon-scientific/Scientific.train.inter")
    expected = real_data("amazon-scientific/Scientific_sasrec.txt.gz")
    result = ingest(train, "recbole")
    _check_accounting(result)
    assert (result.read, result.rejected, result.time_unit) == (59_427, 0, TIME_UNIT_ORDINAL)
    rows = [line.split() for line in gzip.decompress(expected.read_bytes()).decode().splitlines()]
    want = pl.DataFrame(rows, schema=["user_id", "item_id"], orient="row")
    want = want.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("user_id").alias("ts"))
    got = result.events.select("user_id", "item_id", pl.col("timestamp").alias("ts"))
    assert got.equals(want.sort("user_id", "ts", maintain_order=True))


def test_recbole_reads_the_trio_from_any_member_or_the_stem(real_data) -> None:
    test_part = real_data("amazon-scientific/Scientific.test.inter")
    from_test = ingest(test_part, "recbole")
    from_stem = ingest(test_part.with_name("Scientific"), "recbole")
    assert from_test.events.equals(from_stem.events)
    assert len(from_stem.sources) == 5  # train, valid, test, item2index, text
    titled = from_stem.events.filter(pl.col("title").is_not_null())
    assert titled["item_id"].n_unique() == 4_385
    assert titled.filter(pl.col("item_id") == "0")["title"][0].startswith("eSUN Bronze filament")


def test_recbole_plain_atomic_inter_with_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "ml.inter"
    path.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t4\t978300760\n1\t11\t5\t978300000\n2\t10\t3\t978301968\n"
    )
    result = ingest(path, "recbole")
    assert result.time_unit == TIME_UNIT_MS
    assert result.events["item_id"].to_list() == ["11", "10", "10"]
    assert result.events["timestamp"].to_list() == [
        978_300_000_000,
        978_300_760_000,
        978_301_968_000,
    ]


def test_recbole_train_rows_are_stored_newest_first(tmp_path: Path) -> None:
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    (tmp_path / "x.train.inter").write_text(header + "u\ta b c\td\nu\ta b\tc\nu\ta\tb\n")
    (tmp_path / "x.valid.inter").write_text(header + "u\ta b c d\te\n")
    (tmp_path / "x.test.inter").write_text(header + "u\ta b c d e\tf\n")
    result = ingest(tmp_path / "x", "recbole")
    assert result.events["item_id"].to_list() == ["a", "b", "c", "d", "e", "f"]
    assert result.events["timestamp"].to_list() == [0, 1, 2, 3, 4, 5]


def test_taobao_tab_separated_file_is_a_wrong_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "ub.csv"
    path.write_text("1\t2268318\t2520377\tpv\t1511544070\n")
    with pytest.raises(ShopseqInputError) as err:
        ingest(path, "taobao")
    assert str(err.value) == (
        f"{path}: expected 5 comma-separated fields, found 1 on line 1 — wrong delimiter?"
    )


def test_s3rec_user_without_items_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 5 6 7\n2\n3 8\n")
    result = ingest(path, "s3rec")
    assert (result.read, result.kept) == (5, 4)
    assert result.rejects.row(0, named=True) == {
        "file": str(path),
        "line": 2,
        "column": None,
        "reason": "wrong field count",
        "raw": "2",
    }


def test_s3rec_attribute_file_that_is_not_a_mapping_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "shop.txt").write_text("u1 a b c\n")
    (tmp_path / "shop_item2attributes.json").write_text('["a", "b"]')
    with pytest.raises(ShopseqInputError) as err:
        ingest(tmp_path / "shop.txt", "s3rec")
    assert str(err.value).startswith(
        f"{tmp_path / 'shop_item2attributes.json'}: not an S3-Rec item2attributes file "
        "({item: [attribute ids]}): "
    )


def test_s3rec_reads_item_attributes_beside_the_sequences(tmp_path: Path) -> None:
    (tmp_path / "shop.txt").write_text("u1 a b c\n")
    (tmp_path / "shop_item2attributes.json").write_text('{"a": [3, 1], "b": [], "c": [7]}')
    events = ingest(tmp_path / "shop.txt", "s3rec").events
    assert events["attributes"].to_list() == ["3|1", None, "7"]


def test_otto_malformed_line_is_one_rejected_row(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"session":1,"events":[{"aid":5,"ts":1659304800025,"type":"clicks"}]}\n'
        '{"session":2,"events":[{"aid":6\n'
        '{"session":3,"events":[{"aid":7,"ts":1659304800026,"type":"orders"},'
        '{"aid":8,"type":"carts"}]}\n'
    )
    result = ingest(path, "otto")
    assert (result.read, result.kept) == (4, 2)
    assert result.rejects.select("line", "reason", "column").rows() == [
        (2, "malformed row", None),
        (3, "bad timestamp", "timestamp"),
    ]
    assert result.events["behavior"].to_list() == ["view", "buy"]
