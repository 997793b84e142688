"""Foundation benchmark: ingest + prepare + baselines + full-ranking evaluation on real datasets.

Each dataset runs in its own subprocess so peak memory is per dataset. Writes
bench-results/foundation.json and prints a table. Usage:

    python benchmarks/bench_foundation.py [--datasets beauty,taobao] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_data import DATA, DATASETS, ROOT

BASELINES = ("pop", "recent-pop", "markov", "itemknn")
COLUMNS = [
    "dataset", "events", "ingest ev/s", "prepare s", "model", "eval s", "HR@10", "NDCG@10",
    "peak MiB",
]  # fmt: skip


def run_one(name: str, repeats: int) -> dict[str, object]:
    """Benchmark one dataset in this process (called in a subprocess)."""
    from shopseq.data.dataset import prepare
    from shopseq.data.ingest import ingest
    from shopseq.data.sequences import SplitSpec
    from shopseq.errors import ShopseqInputError
    from shopseq.evaluate.runner import evaluate_baseline

    rel, fmt, filter_seen = DATASETS[name]
    ingest_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = ingest(DATA / rel, fmt)
        ingest_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    ds = prepare(result.events, SplitSpec(kind="loo"), result.time_unit)
    prepare_s = time.perf_counter() - start
    models: dict[str, object] = {}
    for baseline in BASELINES:
        times, metrics = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            try:
                metrics = evaluate_baseline(baseline, ds, filter_seen=filter_seen, progress=False)
            except ShopseqInputError as err:
                metrics = {"skipped": str(err)}
                break
            times.append(time.perf_counter() - start)
        models[baseline] = {"metrics": metrics, "eval_seconds": _median(times)}
    return {
        "dataset": name,
        "file": rel,
        "format": fmt,
        "filter_seen": filter_seen,
        "read": result.read,
        "kept": result.kept,
        "rejected": result.rejected,
        "n_users": ds.sequences.n_users,
        "n_items": ds.vocab.n_items,
        "ingest_seconds": _median(ingest_s),
        "ingest_events_per_s": result.read / statistics.median(ingest_s),
        "prepare_seconds": prepare_s,
        "models": models,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "repeats": repeats,
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def table_rows(results: list[dict]) -> list[dict[str, object]]:
    rows = []
    for res in results:
        for model, entry in res["models"].items():
            test = entry["metrics"].get("test", {})
            rows.append(
                {
                    "dataset": res["dataset"],
                    "events": res["kept"],
                    "ingest ev/s": round(res["ingest_events_per_s"]),
                    "prepare s": res["prepare_seconds"],
                    "model": model,
                    "eval s": entry["eval_seconds"],
                    "HR@10": test.get("HR@10"),
                    "NDCG@10": test.get("NDCG@10"),
                    "peak MiB": round(res["peak_mib"]),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "foundation.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats)))
        return
    from shopseq.tables import format_table

    results = []
    for name in args.datasets.split(","):
        if not (DATA / DATASETS[name][0]).exists():
            sys.exit(f"dataset {name} not found under {DATA} (set SHOPSEQ_DATA_DIR)")
        cmd = [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"done {name}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeats": args.repeats, "results": results}, indent=2))
    print(format_table(table_rows(results), COLUMNS))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
