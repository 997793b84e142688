"""The `evaluate` command: full-catalogue ranking of the baselines on a dataset, or of a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shopseq.cli.common import REPORT_METRICS, RUN_FILE, run_dataset, write_json
from shopseq.errors import ShopseqInputError

BASELINE_NAMES = ("pop", "recent-pop", "markov", "itemknn")


def cmd_evaluate(args: argparse.Namespace) -> None:
    if (Path(args.target) / RUN_FILE).exists():
        _evaluate_run(args)
    else:
        _evaluate_baselines(args)


def _evaluate_baselines(args: argparse.Namespace) -> None:
    from shopseq.data.dataset import load_dataset
    from shopseq.evaluate.runner import evaluate_baseline
    from shopseq.tables import format_table

    ds = load_dataset(args.target)
    names = args.baseline or list(BASELINE_NAMES)
    unknown = [n for n in names if n not in BASELINE_NAMES]
    if unknown:
        raise ShopseqInputError(
            f"unknown baseline '{unknown[0]}'; choose one of: {', '.join(BASELINE_NAMES)}"
        )
    if args.out is None:
        raise ShopseqInputError("evaluate DATASET needs --out DIR for metrics.json")
    out = Path(args.out)
    rows = []
    for name in names:
        try:
            metrics = evaluate_baseline(name, ds, filter_seen=args.filter_seen, progress=False)
        except ShopseqInputError as err:
            print(f"  {name}: n/a ({err})", file=sys.stderr)
            rows.append({"model": name})
            continue
        target = out if len(names) == 1 else out / name
        write_json(target / "metrics.json", metrics)
        rows.append({"model": name, **{f"test {m}": metrics["test"][m] for m in REPORT_METRICS}})
    print(f"full-catalogue ranking on {args.target} (test; filter seen: {args.filter_seen})")
    print(format_table(rows, ["model", *(f"test {m}" for m in REPORT_METRICS)]))
    if len(names) > 1:
        write_json(out / "comparison.json", rows)
    print(f"wrote {out}")


def _evaluate_run(args: argparse.Namespace) -> None:
    from shopseq.evaluate.runner import evaluate_phase
    from shopseq.tables import format_table
    from shopseq.train.loop import load_run

    ds = run_dataset(args.target)
    model, _ = load_run(args.target)
    metrics = {
        phase: evaluate_phase(model, ds, phase, filter_seen=args.filter_seen, progress=True)
        for phase in ("valid", "test")
    }
    out = Path(args.out) if args.out else Path(args.target) / "evaluation"
    write_json(out / "metrics.json", metrics)
    rows = [{"phase": phase, **{m: metrics[phase][m] for m in REPORT_METRICS}} for phase in metrics]
    print(f"full-catalogue ranking of {args.target} (filter seen: {args.filter_seen})")
    print(format_table(rows, ["phase", *REPORT_METRICS]))
    print(f"wrote {out / 'metrics.json'}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `evaluate` to the `shopseq` parser."""
    p = sub.add_parser(
        "evaluate", help="full-catalogue ranking of baselines on a dataset, or of a trained run"
    )
    p.add_argument("target", help="a prepared dataset dir (baselines) or a run dir (its model)")
    p.add_argument(
        "--baseline",
        action="append",
        metavar="|".join(BASELINE_NAMES),
        help="baseline to evaluate on a dataset (repeat for several; default: all)",
    )
    p.add_argument(
        "--filter-seen", action="store_true", help="never rank items already in the history"
    )
    p.add_argument("--out", help="output dir for metrics.json (default for a run: RUN/evaluation)")
    p.set_defaults(func=cmd_evaluate)
