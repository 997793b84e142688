"""Model benchmark: the Behaviour Transformer beside the foundation baselines, same protocol.

Leave-one-out, full-catalogue ranking, test at the best valid epoch; seen items filtered on the
Amazon sets, kept on Taobao (repeat views are common there, so re-recommending a seen item is a
legitimate answer). Every model runs in its own subprocess so peak memory (ru_maxrss) is its own.
Writes bench-results/models-<dataset>[-<target>].json and prints a table. Usage:

    python benchmarks/bench_models.py --dataset beauty            # model + baselines
    python benchmarks/bench_models.py --dataset beauty --speed    # + epoch / ranking seconds
    python benchmarks/bench_models.py --dataset taobao --ablation # + model without behaviours
    python benchmarks/bench_models.py --dataset taobao --target-behavior buy --ablation

Options: ``--config`` (default configs/<amazon-dataset|dataset>.yaml), ``--set key=value``
(repeatable), ``--threads`` (torch threads, default 2), ``--baselines pop,markov,itemknn``,
``--reuse`` (take a model row from its run dir's metrics.json when one exists), ``--recbole``
(add the row bench_recbole.py wrote to bench-results/recbole-<dataset>.json, if present).

Test columns: ``test`` is the test model the config asks for (with ``train.refit_for_test``:
retrained on the test phase's inputs, valid targets included, for the best valid epoch count,
as the baselines are refit per phase); ``test no-refit`` is the strict published protocol (the
model trained on the valid phase's inputs, tested with the valid item in its input).
``--speed`` times epochs with full and sampled softmax (median of 3 epochs each, no refit) and
full ranking of every test user (median of 3), and records the load average beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_data import DATA, DATASETS, ROOT

COLUMNS = [
    "model", "valid HR@10", "valid NDCG@10", "test HR@10", "test NDCG@10",
    "no-refit HR@10", "no-refit NDCG@10", "behaviour F1", "epochs", "best epoch", "to best s",
    "s/epoch", "train s", "peak MiB",
]  # fmt: skip


def load(name: str, target_behavior: str | None = None) -> Any:
    return load_with_side(name, target_behavior, None)[0]


def load_with_side(name: str, target_behavior: str | None, cfg: Any) -> tuple[Any, Any]:
    """(Dataset, the item side table ``cfg.model`` needs or None); the title embeddings are
    cached under bench-results/text/."""
    from shopseq.data.dataset import prepare
    from shopseq.data.ingest import ingest
    from shopseq.data.sequences import SplitSpec
    from shopseq.models.item_text import side_table

    rel, fmt, _ = DATASETS[name]
    result = ingest(DATA / rel, fmt)
    spec = SplitSpec(kind="loo", target_behavior=target_behavior)
    ds = prepare(result.events, spec, result.time_unit)
    if cfg is None:
        return ds, None
    cache = ROOT / "bench-results" / "text" / f"{name}-item-text.safetensors"
    return ds, side_table(cfg.model, result.events, ds.vocab, cache, progress=False)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def model_row(label: str, metrics: dict[str, Any], peak: float | None) -> dict[str, Any]:
    """One table/JSON row from a run's metrics.json."""
    row = {
        "model": label,
        "valid": metrics["valid"],
        "test": metrics["test"],
        "test_without_refit": metrics.get("test_without_refit"),
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "time_to_best_s": metrics["time_to_best_seconds"],
        "seconds_per_epoch": metrics["seconds_per_epoch_median"],
        "train_seconds": metrics["train_seconds"] + metrics.get("refit_seconds", 0.0),
        "peak_mib": peak,
    }
    if "next_behavior" in metrics:
        row["next_behavior"] = metrics["next_behavior"]
    return row


def run_model(args: argparse.Namespace, label: str, overrides: list[str], out: Path) -> Any:
    """Train + test our model in this process (or reuse a finished run dir's metrics)."""
    from shopseq.config import load_config
    from shopseq.train.loop import METRICS_FILE, train

    side = out / "bench.json"
    if args.reuse and (out / METRICS_FILE).exists():
        peak = json.loads(side.read_text())["peak_mib"] if side.exists() else None
        return model_row(label, json.loads((out / METRICS_FILE).read_text()), peak)
    cfg = load_config(args.config, overrides)
    ds, table = load_with_side(args.dataset, args.target_behavior, cfg)
    out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("shopseq")  # per-epoch lines, to follow a long run
    log.addHandler(logging.FileHandler(out / "train.log", mode="w"))
    log.setLevel(logging.INFO)
    start = load_average()
    metrics = train(ds, cfg, out, progress=False, item_text=table)
    side.write_text(json.dumps({"peak_mib": peak_mib(), "load_average": [start, load_average()]}))
    return {**model_row(label, metrics, peak_mib()), "load_average": [start, load_average()]}


def run_speed(args: argparse.Namespace, overrides: list[str], out: Path) -> dict[str, Any]:
    """Median epoch seconds (full vs sampled softmax) and full-ranking seconds of all users."""
    import torch

    from shopseq.config import load_config
    from shopseq.evaluate.runner import evaluate_phase
    from shopseq.train.loop import load_run, train

    side_cfg = load_config(args.config, overrides)
    ds, table = load_with_side(args.dataset, args.target_behavior, side_cfg)
    filter_seen = DATASETS[args.dataset][2]
    result: dict[str, Any] = {"model": "speed", "load_average_before": load_average()}
    fixed = ["train.max_epochs=3", "train.patience=100", "train.refit_for_test=false"]
    for loss in ("full", "sampled"):
        cfg = load_config(args.config, [*overrides, *fixed, f"train.loss={loss}"])
        metrics = train(ds, cfg, out / loss, progress=False, item_text=table)
        result[f"epoch_s_{loss}"] = statistics.median(r["seconds"] for r in metrics["history"])
        result[f"epoch_s_{loss}_all"] = [r["seconds"] for r in metrics["history"]]
    model, cfg = load_run(out / "full")
    torch.set_num_threads(cfg.train.num_threads)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        evaluate_phase(
            model, ds, "test", filter_seen=filter_seen, batch_size=cfg.train.eval_batch_size,
            progress=False,
        )  # fmt: skip
        times.append(time.perf_counter() - start)
    result |= {"ranking_s": statistics.median(times), "ranking_s_all": times}
    result |= {"n_ranked_users": int(ds.phases["test"].n_targets), "threads": args.threads}
    result |= {"load_average_after": load_average(), "peak_mib": peak_mib()}
    return result


def run_baseline(args: argparse.Namespace, baseline: str) -> dict[str, Any]:
    from shopseq.evaluate.runner import evaluate_baseline

    ds = load(args.dataset, args.target_behavior)
    start = time.perf_counter()
    metrics = evaluate_baseline(baseline, ds, filter_seen=DATASETS[args.dataset][2], progress=False)
    row = {"model": baseline, "valid": metrics["valid"], "test": metrics["test"]}
    return row | {"train_seconds": time.perf_counter() - start, "peak_mib": peak_mib()}


def behavior_baselines(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Next-behaviour reference points on the test targets: majority class, repeat the last."""
    import numpy as np

    from shopseq.evaluate.classification import classification_report

    ds = load(args.dataset, args.target_behavior)
    seqs, test = ds.sequences, ds.phases["test"]
    names = list(ds.vocab.behaviors)
    truth = seqs.behavior_ids[test.targets] - 1  # [N] class ids 0..C-1
    train_ids = seqs.behavior_ids[np.concatenate(
        [np.arange(seqs.offsets[u], test.train_end[u]) for u in range(seqs.n_users)]
    )] - 1  # fmt: skip
    majority = np.full_like(truth, np.bincount(train_ids, minlength=len(names)).argmax())
    last = seqs.behavior_ids[test.history_end - 1] - 1
    rows = []
    for label, pred in (("majority behaviour", majority), ("repeat last behaviour", last)):
        probs = np.eye(len(names))[pred]
        rows.append({"model": label, "next_behavior": classification_report(probs, truth, names)})
    return rows


def subprocess_json(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def recbole_row(dataset: str) -> dict[str, Any] | None:
    """The row bench_recbole.py wrote for this dataset, in this table's shape (if it exists)."""
    path = ROOT / "bench-results" / f"recbole-{dataset}.json"
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    return {
        "model": "RecBole SASRec",
        "valid": rec["metrics"].get("valid", {}),
        "test_without_refit": rec["metrics"]["test"],  # one model for valid and test
        "best_epoch": rec.get("best_epoch"),
        "epochs_run": rec.get("epochs_run"),
        "train_seconds": rec.get("train_seconds"),
        "time_to_best_s": rec.get("seconds_to_best"),
        "seconds_per_epoch": rec.get("seconds_per_epoch"),
        "peak_mib": rec.get("peak_mib"),
        "source": str(path),
    }


def table_row(row: dict[str, Any]) -> dict[str, Any]:
    def metric(part: str, key: str) -> Any:
        return (row.get(part) or {}).get(key)

    behavior = row.get("next_behavior") or {}
    return {
        "model": row["model"],
        "valid HR@10": metric("valid", "HR@10"),
        "valid NDCG@10": metric("valid", "NDCG@10"),
        "test HR@10": metric("test", "HR@10"),
        "test NDCG@10": metric("test", "NDCG@10"),
        "no-refit HR@10": metric("test_without_refit", "HR@10"),
        "no-refit NDCG@10": metric("test_without_refit", "NDCG@10"),
        "behaviour F1": behavior.get("macro_f1"),
        "epochs": row.get("epochs_run"),
        "best epoch": row.get("best_epoch"),
        "to best s": _round(row.get("time_to_best_s")),
        "s/epoch": _round(row.get("seconds_per_epoch")),
        "train s": _round(row.get("train_seconds")),
        "peak MiB": _round(row.get("peak_mib")),
    }


def _round(value: Any) -> str | None:
    return None if value is None else f"{float(value):.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty", choices=sorted(DATASETS))
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (train.num_threads)")
    parser.add_argument("--target-behavior", default=None, help="e.g. buy: next-purchase targets")
    parser.add_argument("--baselines", default="pop,markov,itemknn")
    parser.add_argument("--ablation", action="store_true", help="also model.use_behavior=false")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="reuse finished run dirs")
    parser.add_argument("--recbole", action="store_true", help="add bench_recbole.py's row")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--one", choices=["model", "speed", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--label", default="behavior-transformer", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    prefix = "" if args.dataset == "taobao" else "amazon-"
    args.config = args.config or str(ROOT / "configs" / f"{prefix}{args.dataset}.yaml")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    tag = args.dataset + (f"-{args.target_behavior}" if args.target_behavior else "")
    runs = out / "runs" / tag
    overrides = [
        f"train.num_threads={args.threads}",
        f"train.filter_seen={str(DATASETS[args.dataset][2]).lower()}",
        *args.overrides,
    ]
    if args.one == "model":
        print(json.dumps(run_model(args, args.label, overrides, runs / args.label)))
        return
    if args.one == "speed":
        print(json.dumps(run_speed(args, overrides, runs / "speed")))
        return
    if args.one == "baseline":
        print(json.dumps(run_baseline(args, args.baseline)))
        return
    common = ["--dataset", args.dataset, "--config", args.config, "--out", str(out)]
    common += ["--threads", str(args.threads)] + [f"--set={o}" for o in args.overrides]
    common += ["--target-behavior", args.target_behavior] if args.target_behavior else []
    common += ["--reuse"] if args.reuse else []
    rows = [subprocess_json([*common, "--one", "baseline", "--baseline", b])
            for b in args.baselines.split(",") if b]  # fmt: skip
    rows.append(subprocess_json([*common, "--one", "model"]))
    if args.ablation:
        no_behavior = [*common, "--set=model.use_behavior=false"]
        rows.append(subprocess_json([*no_behavior, "--one", "model", "--label", "no-behaviour"]))
    if args.dataset == "taobao":
        rows += behavior_baselines(args)
    if args.recbole and (rec := recbole_row(args.dataset)) is not None:
        rows.append(rec)
    if args.speed:
        rows.append(subprocess_json([*common, "--one", "speed"]))
    record = {"dataset": args.dataset, "target_behavior": args.target_behavior}
    record |= {"filter_seen": DATASETS[args.dataset][2], "config": args.config}
    record |= {"overrides": overrides, "command": sys.argv, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"models-{tag}.json"
    path.write_text(json.dumps(record, indent=2))
    print(render(record))
    print(f"wrote {path}")


def render(record: dict[str, Any]) -> str:
    """The record as a text table (plus the speed line when there is one)."""
    from shopseq.tables import format_table

    rows = record["rows"]
    lines = [
        f"{record['dataset']}"
        + (f", target {record['target_behavior']}" if record["target_behavior"] else "")
        + f", filter seen: {record['filter_seen']}",
        format_table([table_row(r) for r in rows if r["model"] != "speed"], COLUMNS),
    ]
    for row in rows:
        if row["model"] == "speed":
            lines.append(
                f"seconds per epoch ({row['threads']} threads): full softmax "
                f"{row['epoch_s_full']:.1f}, sampled {row['epoch_s_sampled']:.1f}; full ranking "
                f"of {row['n_ranked_users']} users {row['ranking_s']:.2f} s; load average "
                f"{row['load_average_before']} -> {row['load_average_after']}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
