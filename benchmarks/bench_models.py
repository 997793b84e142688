"""Model benchmark: the Behaviour Transformer beside the foundation baselines, same protocol.

Leave-one-out, full-catalogue ranking, seen items filtered, test at the best valid epoch.
Each model runs in its own subprocess so peak memory (ru_maxrss) is per model. Writes
bench-results/models-<dataset>.json and prints a table. Usage:

    python benchmarks/bench_models.py --dataset beauty [--config configs/amazon-beauty.yaml]
        [--set train.max_epochs=50 ...] [--speed] [--baselines pop,markov,itemknn]

``--speed`` also times epochs with full and sampled softmax (median of 3 epochs each) and
full ranking of all test users (median of 3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOPSEQ_DATA_DIR", ROOT.parent / "shared" / "data"))
DATASETS: dict[str, tuple[str, str]] = {
    "beauty": ("amazon-beauty/Beauty.txt", "s3rec"),
    "sports": ("amazon-sports/Sports_and_Outdoors.txt", "s3rec"),
    "toys": ("amazon-toys/Toys_and_Games.txt", "s3rec"),
    "videogames": ("amazon-videogames/Video.txt", "sasrec"),
}
COLUMNS = ["model", "HR@10", "NDCG@10", "best epoch", "to best s", "s/epoch", "peak MiB"]


def load(name: str) -> Any:
    from shopseq.data.dataset import prepare
    from shopseq.data.ingest import ingest
    from shopseq.data.sequences import SplitSpec

    rel, fmt = DATASETS[name]
    result = ingest(DATA / rel, fmt)
    return prepare(result.events, SplitSpec(kind="loo"), result.time_unit)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_model(name: str, config: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """Train + test our model (in this process)."""
    from shopseq.config import load_config
    from shopseq.train.loop import train

    ds = load(name)
    metrics = train(ds, load_config(config, overrides), out, progress=False)
    return {
        "model": "behavior-transformer",
        "valid": metrics["valid"],
        "test": metrics["test"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "time_to_best_s": metrics["time_to_best_seconds"],
        "seconds_per_epoch": metrics["seconds_per_epoch_median"],
        "train_seconds": metrics["train_seconds"],
        "peak_mib": peak_mib(),
    }


def run_speed(name: str, config: str, overrides: list[str], out: Path) -> dict[str, Any]:
    """Median epoch seconds (full vs sampled softmax) and full-ranking seconds."""
    import torch

    from shopseq.config import load_config
    from shopseq.evaluate.runner import evaluate_phase
    from shopseq.train.loop import load_run, train

    ds = load(name)
    result: dict[str, Any] = {"model": "speed"}
    for loss in ("full", "sampled"):
        cfg = load_config(config, [*overrides, f"train.loss={loss}", "train.max_epochs=3"])
        metrics = train(ds, cfg, out / loss, progress=False)
        result[f"epoch_s_{loss}"] = statistics.median(r["seconds"] for r in metrics["history"])
    model, cfg = load_run(out / "full")
    torch.set_num_threads(cfg.train.num_threads)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        evaluate_phase(model, ds, "test", batch_size=cfg.train.eval_batch_size, progress=False)
        times.append(time.perf_counter() - start)
    result["ranking_s"] = statistics.median(times)
    result["n_test_users"] = int(ds.phases["test"].n_targets)
    result["peak_mib"] = peak_mib()
    return result


def run_baseline(name: str, baseline: str) -> dict[str, Any]:
    from shopseq.evaluate.runner import evaluate_baseline

    ds = load(name)
    start = time.perf_counter()
    metrics = evaluate_baseline(baseline, ds, progress=False)
    return {
        "model": baseline,
        "valid": metrics["valid"],
        "test": metrics["test"],
        "train_seconds": time.perf_counter() - start,
        "peak_mib": peak_mib(),
    }


def subprocess_json(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], col: str) -> str:
        values = {
            "model": row["model"],
            "HR@10": row.get("test", {}).get("HR@10"),
            "NDCG@10": row.get("test", {}).get("NDCG@10"),
            "best epoch": row.get("best_epoch"),
            "to best s": row.get("time_to_best_s"),
            "s/epoch": row.get("seconds_per_epoch"),
            "peak MiB": row.get("peak_mib"),
        }
        value = values[col]
        if value is None:
            return "-"
        return (
            f"{value:.4f}"
            if isinstance(value, float) and col.startswith(("HR", "ND"))
            else (f"{value:.1f}" if isinstance(value, float) else str(value))
        )

    lines = [" | ".join(COLUMNS), " | ".join("---" for _ in COLUMNS)]
    lines += [" | ".join(cell(row, col) for col in COLUMNS) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty", choices=sorted(DATASETS))
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--baselines", default="pop,markov,itemknn")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--one", choices=["model", "speed", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = args.config or str(ROOT / "configs" / f"amazon-{args.dataset}.yaml")
    out = Path(args.out)
    runs = out / "runs" / args.dataset
    if args.one == "model":
        print(json.dumps(run_model(args.dataset, config, args.overrides, runs / "model")))
        return
    if args.one == "speed":
        print(json.dumps(run_speed(args.dataset, config, args.overrides, runs / "speed")))
        return
    if args.one == "baseline":
        print(json.dumps(run_baseline(args.dataset, args.baseline)))
        return
    common = ["--dataset", args.dataset, "--config", config, "--out", str(out)]
    common += [f"--set={o}" for o in args.overrides]
    rows = [subprocess_json([*common, "--one", "baseline", "--baseline", b])
            for b in args.baselines.split(",") if b]  # fmt: skip
    rows.append(subprocess_json([*common, "--one", "model"]))
    if args.speed:
        rows.append(subprocess_json([*common, "--one", "speed"]))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"models-{args.dataset}.json"
    path.write_text(json.dumps({"dataset": args.dataset, "config": config, "rows": rows}, indent=2))
    print(table([r for r in rows if r["model"] != "speed"]))
    for row in rows:
        if row["model"] == "speed":
            print(
                f"epoch s: full {row['epoch_s_full']:.1f}, sampled {row['epoch_s_sampled']:.1f}; "
                f"ranking {row['n_test_users']} users: {row['ranking_s']:.2f} s"
            )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
