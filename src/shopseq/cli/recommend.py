"""The `recommend` command: top-k next items for named users from a trained run."""

from __future__ import annotations

import argparse
import json

from shopseq.cli.common import run_dataset


def cmd_recommend(args: argparse.Namespace) -> None:
    from shopseq.evaluate.runner import recommend
    from shopseq.tables import format_table
    from shopseq.train.loop import load_run

    ds = run_dataset(args.run)
    model, _ = load_run(args.run)
    recs = recommend(model, ds, args.user, k=args.k, filter_seen=not args.keep_seen)
    if args.json:
        print(json.dumps([{"user": r.user, "items": r.items, "scores": r.scores} for r in recs]))
        return
    for rec in recs:
        print(f"user {rec.user}")
        rows = [
            {"rank": i + 1, "item": item, "score": score}
            for i, (item, score) in enumerate(zip(rec.items, rec.scores, strict=True))
        ]
        print(format_table(rows, ["rank", "item", "score"]))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `recommend` to the `shopseq` parser."""
    p = sub.add_parser("recommend", help="top-k next items for users from a trained run")
    p.add_argument("run", help="a run dir written by `shopseq train`")
    p.add_argument("--user", action="append", required=True, help="raw user id (repeatable)")
    p.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--keep-seen", action="store_true", help="allow items already in the history")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_recommend)
