import json

import polars as pl

from shopseq.cli import main


def test_recommend_serves_unseen_raw_item_ids(trained_run, demo_dataset, capsys):
    capsys.readouterr()
    assert main(["recommend", str(trained_run), "--user", "u00001", "--k", "3", "--json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    events = pl.read_parquet(demo_dataset / "log" / "events.parquet")
    seen = set(events.filter(pl.col("user_id") == "u00001")["item_id"].to_list())
    assert rec["user"] == "u00001" and len(rec["items"]) == 3
    assert set(rec["items"]) <= set(events["item_id"].to_list()) and not seen & set(rec["items"])


def test_recommend_for_an_unknown_user_exits_2(trained_run, capsys):
    assert main(["recommend", str(trained_run), "--user", "nobody"]) == 2
    assert "unknown user 'nobody'" in capsys.readouterr().err
