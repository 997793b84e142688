import json

import polars as pl
import pytest

from shopseq.cli import main
from shopseq.cli.data import parse_pairs, parse_time
from shopseq.errors import ShopseqInputError


def test_synth_then_prepare_writes_the_documented_files(demo_dataset):
    log = demo_dataset / "log"
    info = json.loads((log / "ingest.json").read_text())
    assert info["read"] == info["kept"] + info["rejected"]
    assert pl.read_parquet(log / "events.parquet").height == info["kept"]
    for name in ("events.parquet", "vocab.json", "split.json", "meta.json"):
        assert (demo_dataset / "ds" / name).exists()


def test_missing_file_is_one_line_and_exit_code_2(tmp_path, capsys):
    code = main(["ingest", str(tmp_path / "nope.csv"), "--format", "csv", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"shopseq: error: file not found: {tmp_path / 'nope.csv'}\n"


def test_prepare_of_a_non_ingest_dir_exits_2(tmp_path, capsys):
    code = main(["prepare", str(tmp_path), "--out", str(tmp_path / "ds")])
    assert code == 2
    assert "not an ingest output" in capsys.readouterr().err


def test_temporal_split_on_order_only_log_exits_2(tmp_path, capsys):
    src = tmp_path / "seqs.txt"
    src.write_text("1 10 11 12\n2 11 12 13\n")
    assert main(["ingest", str(src), "--format", "s3rec", "--out", str(tmp_path / "log")]) == 0
    code = main(["prepare", str(tmp_path / "log"), "--split", "temporal", "--out", str(tmp_path)])
    assert code == 2
    assert "order-only (ordinal) timestamps; use --split loo" in capsys.readouterr().err


def test_unknown_format_is_rejected_by_the_parser(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "x.csv", "--format", "excel", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_parse_pairs_and_times():
    assert parse_pairs("user=visitorid, item=itemid", "--map") == {
        "user": "visitorid",
        "item": "itemid",
    }
    with pytest.raises(ShopseqInputError, match="--map: expected key=value pairs"):
        parse_pairs("user", "--map")
    assert parse_time("1511544070", "--cutoff") == 1_511_544_070_000
    assert parse_time("2017-12-02T00:00+08:00", "--cutoff") == 1_512_144_000_000
    assert parse_time("2017-12-02", "--cutoff") == 1_512_172_800_000
    with pytest.raises(ShopseqInputError, match="--cutoff: cannot read 'soon' as a time"):
        parse_time("soon", "--cutoff")
