"""Data commands: `synth`, `ingest` and `prepare` — from a raw log to a prepared dataset."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shopseq.errors import ShopseqInputError

if TYPE_CHECKING:
    from shopseq.data.ingest import IngestResult

FORMATS = ("taobao", "rees46", "yoochoose", "otto", "sasrec", "s3rec", "recbole", "csv")


def parse_pairs(text: str | None, flag: str) -> dict[str, str]:
    """'a=b,c=d' -> {'a': 'b', 'c': 'd'}; a malformed pair is a one-line error naming the flag."""
    if not text:
        return {}
    pairs = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ShopseqInputError(
                f"{flag}: expected key=value pairs separated by commas, got '{part}'"
            )
        pairs[key.strip()] = value.strip()
    return pairs


def parse_time(text: str | None, flag: str) -> int | None:
    """A cut-off given as ISO-8601 (UTC unless stated) or Unix seconds -> Unix milliseconds."""
    if text is None:
        return None
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ShopseqInputError(
            f"{flag}: cannot read '{text}' as a time (use ISO-8601 like 2017-12-02T00:00 "
            "or Unix seconds)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def cmd_synth(args: argparse.Namespace) -> None:
    import polars as pl

    from shopseq.data.ingest import REJECT_SCHEMA, IngestResult, summarize, write_ingest
    from shopseq.data.schema import TIME_UNIT_MS
    from shopseq.data.synth import SynthConfig, synth

    cfg = SynthConfig(n_users=args.users, n_items=args.items, n_days=args.days, seed=args.seed)
    events = synth(cfg)
    result = IngestResult(
        events=events,
        rejects=pl.DataFrame(schema=REJECT_SCHEMA),
        read=events.height,
        kept=events.height,
        rejected=0,
        time_unit=TIME_UNIT_MS,
        format="synth",
        sources=(f"synth(seed={cfg.seed})",),
    )
    write_ingest(result, args.out)
    _print_log_summary(summarize(events, TIME_UNIT_MS), result, args.out)


def cmd_ingest(args: argparse.Namespace) -> None:
    from shopseq.data.ingest import ingest, summarize, write_ingest

    result = ingest(
        args.path,
        args.format,
        column_map=parse_pairs(args.map, "--map") or None,
        behavior_map=parse_pairs(args.behavior_map, "--behavior-map") or None,
    )
    write_ingest(result, args.out)
    _print_log_summary(summarize(result.events, result.time_unit), result, args.out)


def _print_log_summary(summary: dict, result: IngestResult, out: str) -> None:
    print(f"read {result.read:,} rows: kept {result.kept:,} + rejected {result.rejected:,}")
    if result.rejected:
        print(f"rejected rows and their reasons: {out}/rejects.parquet")
    for key, value in summary.items():
        print(f"  {key:<22} {json.dumps(value) if isinstance(value, dict | list) else value}")
    print(f"wrote {out}/events.parquet")


def cmd_prepare(args: argparse.Namespace) -> None:
    from shopseq.data.dataset import prepare, save_dataset
    from shopseq.data.ingest import read_events
    from shopseq.data.sequences import SplitSpec

    events, info = read_events(args.dir)
    spec = SplitSpec(
        kind=args.split,
        cutoff=parse_time(args.cutoff, "--cutoff"),
        valid_cutoff=parse_time(args.valid_cutoff, "--valid-cutoff"),
        target_behavior=args.target_behavior,
    )
    ds = prepare(events, spec, str(info["time_unit"]))
    meta = save_dataset(ds, events, args.out)
    for key, value in meta.items():
        print(f"  {key:<22} {json.dumps(value) if isinstance(value, dict | list) else value}")
    print(f"wrote {args.out}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `synth`, `ingest` and `prepare` to the `shopseq` parser."""
    p = sub.add_parser("synth", help="generate the built-in synthetic store event log")
    p.add_argument("--out", required=True, help="output dir (events.parquet + ingest.json)")
    p.add_argument("--users", type=int, default=2000, help="number of shoppers (default 2000)")
    p.add_argument("--items", type=int, default=1500, help="catalogue size (default 1500)")
    p.add_argument("--days", type=int, default=60, help="length of the log in days (default 60)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("ingest", help="validate a raw event log into the canonical EventLog")
    p.add_argument("path", help="raw log file (CSV/TSV/Parquet/JSONL, .gz allowed)")
    p.add_argument("--format", required=True, choices=FORMATS, metavar="|".join(FORMATS))
    p.add_argument(
        "--map",
        help="column mapping for --format csv, e.g. user=visitorid,item=itemid,"
        "behavior=event,timestamp=timestamp",
    )
    p.add_argument(
        "--behavior-map", help="extra behaviour names, e.g. addtocart=cart,transaction=buy"
    )
    p.add_argument("--out", required=True, help="output dir")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("prepare", help="build vocabulary, sequences and a leakage-free split")
    p.add_argument("dir", help="an ingest (or synth) output dir")
    p.add_argument("--split", choices=("loo", "temporal"), default="loo")
    p.add_argument("--cutoff", help="temporal: test cut-off time (ISO-8601 or Unix seconds)")
    p.add_argument("--valid-cutoff", help="temporal: validation cut-off (default: before --cutoff)")
    p.add_argument("--target-behavior", help="make targets this behaviour only, e.g. buy")
    p.add_argument("--out", required=True, help="dataset dir to write")
    p.set_defaults(func=cmd_prepare)
