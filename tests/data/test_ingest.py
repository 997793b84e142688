"""Validation, rejects, errors and storage of `ingest`, on small hand-written files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopseq.data.ingest import (
    IngestResult,
    ingest,
    read_events,
    summarize,
    write_ingest,
)
from shopseq.data.schema import TIME_UNIT_MS, TIME_UNIT_ORDINAL
from shopseq.errors import ShopseqInputError

HEADER = "user,item,event,ts,price\n"
MAP = {"user": "user", "item": "item", "behavior": "event", "timestamp": "ts", "price": "price"}


def _csv(tmp_path: Path, body: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def _only_reject(result: IngestResult) -> dict[str, object]:
    assert result.rejected == 1 and result.kept + result.rejected == result.read
    return result.rejects.row(0, named=True)


def _error(*args: object, **kwargs: object) -> str:
    with pytest.raises(ShopseqInputError) as err:
        ingest(*args, **kwargs)  # type: ignore[arg-type]
    return str(err.value)


# ---------------------------------------------------------------- rejected rows


def test_bad_timestamp_is_rejected_and_good_rows_survive(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, HEADER + "u1,i1,view,1511544070,\nu1,i2,view,yesterday,\nu2,i3,buy,1511544071,\n"
    )
    result = ingest(path, "csv", MAP)
    assert _only_reject(result) == {
        "file": str(path),
        "line": 3,
        "column": "timestamp",
        "reason": "bad timestamp",
        "raw": "u1,i2,view,yesterday,",
    }
    assert result.events["item_id"].to_list() == ["i1", "i3"]


@pytest.mark.parametrize(
    ("row", "reason", "column"),
    [
        (",i2,view,1,", "missing user_id", "user_id"),
        ("  ,i2,view,1,", "missing user_id", "user_id"),
        ("u1,,view,1,", "missing item_id", "item_id"),
        ("u1,i2,,1,", "missing behavior", "behavior"),
        ("u1,i2,view,,", "bad timestamp", "timestamp"),
        ("u1,i2,view,1,abc", "bad price", "price"),
        ("u1,i2,view,1,nan", "bad price", "price"),
        ("u1,i2,view,1,,extra", "wrong field count", None),
        ("u1,i2,view", "wrong field count", None),
    ],
)
def test_malformed_row_gets_its_reason(tmp_path: Path, row: str, reason: str, column: str) -> None:
    path = _csv(tmp_path, HEADER + "u1,i1,view,1,9.5\n" + row + "\n")
    result = ingest(path, "csv", MAP)
    assert _only_reject(result) | {"file": None} == {
        "file": None,
        "line": 3,
        "column": column,
        "reason": reason,
        "raw": row,
    }
    assert result.events.row(0) == ("u1", "i1", "view", 1000, 9.5)


def test_exact_duplicate_keeps_the_first(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "u1,i1,view,5,\nu1,i1,buy,5,\nu1,i1,view,5,1.0\n")
    result = ingest(path, "csv", MAP)
    assert _only_reject(result)["line"] == 4
    assert _only_reject(result)["reason"] == "duplicate"
    assert result.events["behavior"].to_list() == ["view", "buy"]


def test_every_row_rejected_still_gives_an_empty_event_log(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "u1,i1,view,never,\n,i1,view,1,\n")
    result = ingest(path, "csv", MAP)
    assert (result.read, result.kept, result.rejected) == (2, 0, 2)
    assert result.events.columns == ["user_id", "item_id", "behavior", "timestamp", "price"]


def test_blank_lines_are_not_rows_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "\nu1,i1,view,1,\r\n\n u1 ,i2,view,bad,\n")
    result = ingest(path, "csv", MAP)
    assert result.read == 2
    assert _only_reject(result)["line"] == 5
    assert result.events["user_id"].to_list() == ["u1"]


# ---------------------------------------------------------------- user errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert _error(path, "csv") == f"file not found: {path}"


def test_empty_file(tmp_path: Path) -> None:
    assert _error(_csv(tmp_path, ""), "taobao") == f"{tmp_path / 'log.csv'}: file is empty"
    assert _error(_csv(tmp_path, " \n\n"), "csv") == f"{tmp_path / 'log.csv'}: file is empty"


def test_header_without_rows(tmp_path: Path) -> None:
    assert _error(_csv(tmp_path, HEADER), "csv", MAP) == f"{tmp_path / 'log.csv'}: no data rows"


def test_unknown_format(tmp_path: Path) -> None:
    assert _error(_csv(tmp_path, HEADER), "excel") == (
        "unknown format 'excel'; choose one of: "
        "taobao, rees46, yoochoose, otto, sasrec, s3rec, recbole, csv"
    )


def test_missing_mapped_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user,item,ts\nu,i,1\n")
    assert _error(path, "csv", {"user": "visitorid", "item": "item"}) == (
        f"{path}: column 'visitorid' not found (columns: user, item, ts)"
    )


def test_missing_default_user_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user,item\nu,i\n")
    assert _error(path, "csv") == f"{path}: column 'user_id' not found (columns: user, item)"


def test_wrong_delimiter_in_header(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user;item;ts\nu;i;1\n")
    assert _error(path, "csv", {"user": "user", "item": "item"}) == (
        f"{path}: expected at least 2 comma-separated fields, found 1 on line 1 — wrong delimiter?"
    )


def test_unknown_column_map_key(tmp_path: Path) -> None:
    assert _error(_csv(tmp_path, HEADER), "csv", {"customer": "user"}) == (
        "unknown column_map key 'customer'; "
        "choose from: user, item, behavior, timestamp, category, price, title, attributes"
    )


def test_column_map_on_a_named_format(tmp_path: Path) -> None:
    assert _error(_csv(tmp_path, HEADER), "taobao", {"user": "u"}) == (
        "column_map applies only to format 'csv', not 'taobao'"
    )


def test_unsupported_extension(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER, name="log.xlsx")
    assert _error(path, "csv") == (
        f"{path}: unsupported extension '.xlsx' for format csv "
        "(use .csv, .tsv, .txt, .parquet or .jsonl; text may be .gz)"
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("user_id,item_id\nJosé,1\n".encode("latin-1"))
    assert _error(path, "csv") == f"{path}: not UTF-8 text (bad byte at offset 19)"


# ---------------------------------------------------------------- mapping and parsing


def test_timestamps_in_seconds_ms_and_datetime_text(tmp_path: Path) -> None:
    stamps = [
        "1511544070",
        "1511544070.5",
        "1511544070000",
        "2017-11-24 17:21:10 UTC",
        "2017-11-24T17:21:10Z",
        "2017-11-25T01:21:10+08:00",
        "2017-11-24 17:21:10.250",
        "2017-11-24",
    ]
    rows = "".join(f"u,i{n},{s}\n" for n, s in enumerate(stamps))
    result = ingest(_csv(tmp_path, "user_id,item_id,timestamp\n" + rows), "csv")
    assert result.time_unit == TIME_UNIT_MS and result.rejected == 0
    base = 1_511_544_070_000
    assert result.events["timestamp"].to_list() == [
        1_511_481_600_000,
        base,
        base,
        base,
        base,
        base,
        base + 250,
        base + 500,
    ]
    assert set(result.events["behavior"]) == {"view"}


def test_out_of_range_timestamps_are_rejected(tmp_path: Path) -> None:
    body = "user_id,item_id,timestamp\nu,i,1e300\nu,j,inf\nu,k,99999999999999999999\nu,l,1\n"
    result = ingest(_csv(tmp_path, body), "csv")
    assert result.rejects["reason"].to_list() == ["bad timestamp"] * 3
    assert result.events["item_id"].to_list() == ["l"]


def test_unmapped_timestamp_means_file_order(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,item_id\nb,1\na,2\nb,3\nb,1\n")
    result = ingest(path, "csv")
    assert result.time_unit == TIME_UNIT_ORDINAL and result.rejected == 0
    assert result.events.select("user_id", "item_id", "timestamp").rows() == [
        ("a", "2", 0),
        ("b", "1", 0),
        ("b", "3", 1),
        ("b", "1", 2),
    ]


def test_behaviour_map_extends_the_defaults_and_unknown_names_pass_through(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "user_id,item_id,behavior,timestamp\nu,1,PV,1\nu,2,Seen,2\nu,3,remove_from_cart,3\n",
    )
    result = ingest(path, "csv", behavior_map={" seen ": "view"})
    assert result.events["behavior"].to_list() == ["view", "view", "remove_from_cart"]


def test_canonical_and_short_column_map_keys_agree(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, "visitorid,itemid,event,timestamp,categoryid\n7,3,addtocart,1433221332117,9\n"
    )
    short = ingest(
        path,
        "csv",
        {"user": "visitorid", "item": "itemid", "behavior": "event", "category": "categoryid"},
    )
    long = ingest(
        path,
        "csv",
        {
            "user_id": "visitorid",
            "item_id": "itemid",
            "behavior": "event",
            "category_id": "categoryid",
        },
    )
    assert short.events.equals(long.events)
    assert short.events.row(0) == ("7", "3", "cart", 1_433_221_332_117, "9")


def test_sort_is_stable_for_equal_timestamps(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,item_id,timestamp\nb,x,5\na,z,5\na,y,5\na,w,4\n")
    events = ingest(path, "csv").events
    assert events.select("user_id", "item_id").rows() == [
        ("a", "w"),
        ("a", "z"),
        ("a", "y"),
        ("b", "x"),
    ]


def test_quoted_fields_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes('\ufeffuser_id,item_id,title\r\nu,1,"Pen, blue ""fine"""\r\n'.encode())
    result = ingest(path, "csv")
    assert result.events["title"].to_list() == ['Pen, blue "fine"']
    assert result.time_unit == TIME_UNIT_ORDINAL


def test_a_mapped_attributes_column_is_kept_and_blanks_become_null(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("u,i,tags\nu1,1,brand A|shoes\nu1,2, \n")
    result = ingest(path, "csv", column_map={"user": "u", "item": "i", "attributes": "tags"})
    assert result.events["attributes"].to_list() == ["brand A|shoes", None]


def test_gzipped_tsv_parquet_and_jsonl_read_alike(tmp_path: Path) -> None:
    frame = pl.DataFrame({"user_id": ["u", "u"], "item_id": ["1", "2"], "timestamp": [10, 20]})
    tsv = tmp_path / "log.tsv.gz"
    tsv.write_bytes(gzip.compress(b"user_id\titem_id\ttimestamp\nu\t1\t10\nu\t2\t20\n"))
    frame.write_parquet(tmp_path / "log.parquet")
    frame.write_ndjson(tmp_path / "log.jsonl")
    results = [ingest(p, "csv") for p in (tsv, tmp_path / "log.parquet", tmp_path / "log.jsonl")]
    for result in results:
        assert result.events.equals(results[0].events)
    assert results[0].events["timestamp"].to_list() == [10_000, 20_000]


def test_parquet_datetime_column_becomes_ms(tmp_path: Path) -> None:
    frame = pl.DataFrame({"user_id": [1], "item_id": [2], "timestamp": ["2019-10-01 00:00:01"]})
    frame = frame.with_columns(pl.col("timestamp").str.to_datetime())
    frame.write_parquet(tmp_path / "log.parquet")
    result = ingest(tmp_path / "log.parquet", "csv")
    assert result.events.row(0) == ("1", "2", "view", 1_569_888_001_000)


def test_jsonl_malformed_line_is_rejected(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, '{"user_id":"u","item_id":1}\n[1,2]\n{"user_id":"u","item_id":2}\n', "log.jsonl"
    )
    result = ingest(path, "csv")
    assert _only_reject(result)["reason"] == "malformed row"
    assert result.events["item_id"].to_list() == ["1", "2"]


# ---------------------------------------------------------------- summary and storage


def test_summarize_counts_span_and_lengths() -> None:
    events = pl.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "item_id": ["1", "2", "1", "3"],
            "behavior": ["view", "buy", "view", "view"],
            "timestamp": [0, 1_000, 2_000, 86_400_000],
        }
    )
    stats = summarize(events, TIME_UNIT_MS)
    assert (stats["n_users"], stats["n_items"], stats["n_events"]) == (2, 3, 4)
    assert stats["behavior_counts"] == {"view": 3, "buy": 1}
    assert stats["time_min"] == "1970-01-01T00:00:00+00:00"
    assert stats["time_max"] == "1970-01-02T00:00:00+00:00"
    assert stats["seq_len"] == {
        "min": 1,
        "p25": 1.5,
        "p50": 2.0,
        "p75": 2.5,
        "p90": 2.8,
        "max": 3,
        "mean": 2.0,
    }
    assert summarize(events, TIME_UNIT_ORDINAL)["time_max"] == 86_400_000


def test_write_then_read_events_round_trip(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + "u1,i1,view,1,2.5\nu1,i1,view,1,2.5\n")
    result = ingest(path, "csv", MAP)
    meta = write_ingest(result, tmp_path / "out")
    events, stored = read_events(tmp_path / "out")
    assert events.equals(result.events)
    assert stored == meta == json.loads((tmp_path / "out" / "ingest.json").read_text())
    assert (meta["read"], meta["kept"], meta["rejected"], meta["n_users"], meta["n_items"]) == (
        2,
        1,
        1,
        1,
        1,
    )
    assert meta["columns"] == ["price"] and meta["reject_reasons"] == {"duplicate": 1}
    assert meta["format"] == "csv" and meta["sources"] == [str(path)]
    assert pl.read_parquet(tmp_path / "out" / "rejects.parquet").equals(result.rejects)


def test_read_events_of_a_folder_that_is_not_an_ingest_output(tmp_path: Path) -> None:
    with pytest.raises(ShopseqInputError) as err:
        read_events(tmp_path)
    assert (
        str(err.value) == f"{tmp_path}: not an ingest output (missing events.parquet, ingest.json)"
    )
    with pytest.raises(ShopseqInputError) as err:
        read_events(tmp_path / "absent")
    assert str(err.value) == f"{tmp_path / 'absent'}: not a directory (expected an ingest output)"


# ---------------------------------------------------------------- fuzz

_FIELD = st.one_of(
    st.text(max_size=8),
    st.just(""),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["pv", "buy", "2017-11-24 17:21:10 UTC", "1511544070", "ünï", '"q,"', "\t"]),
)
_ROW = st.lists(_FIELD, min_size=0, max_size=7).map(",".join)
_GOOD_ROW = st.integers(0, 5).map(lambda n: f"good{n},item{n},pv,1511544070,1.5")


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.one_of(_ROW, _GOOD_ROW), min_size=1, max_size=12))
def test_fuzzed_csv_never_loses_a_row(tmp_path: Path, rows: list[str]) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_text("u,i,b,t,p\n" + "\n".join(rows) + "\n", encoding="utf-8")
    column_map = {"user": "u", "item": "i", "behavior": "b", "timestamp": "t", "price": "p"}
    try:
        result = ingest(path, "csv", column_map)
    except ShopseqInputError as err:
        assert "\n" not in str(err)
        return
    assert result.read == result.kept + result.rejected
    assert result.rejects["reason"].null_count() == 0
    nulls = result.events.null_count().select("user_id", "item_id", "behavior", "timestamp")
    assert nulls.row(0) == (0, 0, 0, 0)
    good = {row.split(",")[0] for row in rows if row.startswith("good")}
    assert good <= set(result.events["user_id"])
