"""The `shopseq` command: one thin sub-command per step of the pipeline.

Heavy libraries are imported inside the commands so `shopseq --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shopseq.errors import ShopseqInputError

if TYPE_CHECKING:
    import torch

    from shopseq.config import RunConfig
    from shopseq.data.dataset import Dataset
    from shopseq.data.ingest import IngestResult

FORMATS = ("taobao", "rees46", "yoochoose", "otto", "sasrec", "s3rec", "recbole", "csv")
BASELINE_NAMES = ("pop", "recent-pop", "markov", "itemknn")
REPORT_METRICS = ("HR@10", "NDCG@10", "MRR@10", "HR@20", "NDCG@20")
RUN_FILE = "run.json"  # records which prepared dataset a run was trained on


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
        _write_json(target / "metrics.json", metrics)
        rows.append({"model": name, **{f"test {m}": metrics["test"][m] for m in REPORT_METRICS}})
    print(f"full-catalogue ranking on {args.target} (test; filter seen: {args.filter_seen})")
    print(format_table(rows, ["model", *(f"test {m}" for m in REPORT_METRICS)]))
    if len(names) > 1:
        _write_json(out / "comparison.json", rows)
    print(f"wrote {out}")


def _evaluate_run(args: argparse.Namespace) -> None:
    from shopseq.evaluate.runner import evaluate_phase
    from shopseq.tables import format_table
    from shopseq.train.loop import load_run

    ds = _run_dataset(args.target)
    model, _ = load_run(args.target)
    metrics = {
        phase: evaluate_phase(model, ds, phase, filter_seen=args.filter_seen, progress=True)
        for phase in ("valid", "test")
    }
    out = Path(args.out) if args.out else Path(args.target) / "evaluation"
    _write_json(out / "metrics.json", metrics)
    rows = [{"phase": phase, **{m: metrics[phase][m] for m in REPORT_METRICS}} for phase in metrics]
    print(f"full-catalogue ranking of {args.target} (filter seen: {args.filter_seen})")
    print(format_table(rows, ["phase", *REPORT_METRICS]))
    print(f"wrote {out / 'metrics.json'}")


def _run_dataset(run_dir: str) -> Dataset:
    """The prepared dataset a run was trained on (recorded in its run.json)."""
    from shopseq.data.dataset import load_dataset

    info = json.loads((Path(run_dir) / RUN_FILE).read_text())
    return load_dataset(info["dataset"])


def _start_run(args: argparse.Namespace) -> tuple[RunConfig, Dataset, Path, torch.Tensor | None]:
    """Config, dataset, run dir (recording the dataset) and item-text table for train/pretrain."""
    from shopseq.config import load_config
    from shopseq.data.dataset import load_dataset

    item_text = [] if args.item_text is None else [f"model.item_text={args.item_text}"]
    cfg = load_config(args.config, [*(args.set or ()), *item_text])
    ds = load_dataset(args.dataset)
    table = _item_text_table(args.dataset, ds, cfg.model.item_text, args.text_encoder)
    out = Path(args.out)
    _write_json(out / RUN_FILE, {"dataset": str(Path(args.dataset).resolve())})
    return cfg, ds, out, table


def _item_text_table(
    dataset_dir: str, ds: Dataset, mode: str, text_encoder: str | None
) -> torch.Tensor | None:
    """The title embeddings ``model.item_text`` add/only needs (cached per dataset), from the
    shipped MiniLM or from a ``shopseq tune-text`` dir."""
    if mode == "none":
        if text_encoder is not None:
            raise ShopseqInputError("--text-encoder needs --item-text add or only")
        return None
    import polars as pl

    from shopseq.data.schema import EVENTS_FILE
    from shopseq.models.item_text import dataset_item_text

    events = pl.read_parquet(Path(dataset_dir) / EVENTS_FILE)
    name = "item_text" if text_encoder is None else f"item_text-{Path(text_encoder).name}"
    cache = Path(dataset_dir) / f"{name}.safetensors"
    return dataset_item_text(events, ds.vocab, cache, text_encoder=text_encoder)


def cmd_train(args: argparse.Namespace) -> None:
    from shopseq.tables import format_table
    from shopseq.train.loop import train

    cfg, ds, out, table = _start_run(args)
    metrics = train(ds, cfg, out, resume=args.resume, item_text=table)
    rows = [{"phase": p, **{m: metrics[p][m] for m in REPORT_METRICS}} for p in ("valid", "test")]
    print(
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']} "
        f"({metrics['train_seconds']:.1f} s of training)"
    )
    print(format_table(rows, ["phase", *REPORT_METRICS]))
    print(f"wrote {out}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    from shopseq.train.loop import pretrain

    cfg, ds, out, table = _start_run(args)
    metrics = pretrain(ds, cfg, out, objective=args.objective, item_text=table)
    print(f"pretrained {metrics['epochs_run']} epochs; base run for `shopseq finetune`: {out}")


def cmd_tune_text(args: argparse.Namespace) -> None:
    from shopseq.config import load_config
    from shopseq.data.dataset import load_dataset
    from shopseq.models.text import item_texts
    from shopseq.tables import format_table
    from shopseq.train.text_encoder import next_item_pairs, tune_text_encoder

    cfg = load_config(args.config, args.set or ())
    ds = load_dataset(args.dataset)
    titles = _dataset_titles(args.dataset)
    if not titles:
        raise ShopseqInputError(f"{args.dataset}: the event log has no titles to tune on")
    texts = item_texts(ds.vocab, titles)
    # the valid phase's training inputs: no valid or test target is ever read
    pairs = next_item_pairs(ds.train_sequences("valid"), texts)
    result = tune_text_encoder(pairs, texts, cfg.text_tune, args.out)
    print(
        f"tuned on {result['pairs']['train']:,} consecutive-item title pairs: trainable "
        f"{result['trainable_params']:,} parameters ({result['trainable_share']:.2%}), "
        f"best step {result['best_step']} of {cfg.text_tune.steps}"
    )
    rows = [
        {
            "encoder": name,
            "held-out loss": result[key]["loss"],
            "held-out top-1": result[key]["top1"],
        }
        for key, name in (("before", "shipped MiniLM"), ("after", "LoRA-tuned"))
    ]
    print(format_table(rows, ["encoder", "held-out loss", "held-out top-1"]))
    print(f"wrote {args.out} (use it: shopseq train ... --item-text add --text-encoder {args.out})")


def cmd_finetune(args: argparse.Namespace) -> None:
    from shopseq.config import load_config
    from shopseq.data.dataset import load_dataset
    from shopseq.train.finetune import finetune

    cfg = load_config(args.config, args.set or ())
    dataset = args.data or json.loads((Path(args.base) / RUN_FILE).read_text())["dataset"]
    ds = load_dataset(dataset)
    out = Path(args.out)
    metrics = finetune(args.base, ds, args.task, args.peft, cfg, out)
    _write_json(out / RUN_FILE, {"dataset": str(Path(dataset).resolve())})
    metric = metrics["select_metric"]
    print(
        f"{args.task} with peft={args.peft}: trainable {metrics['trainable_params']:,} "
        f"parameters ({metrics['trainable_share']:.2%})"
    )
    before, after = metrics["before"][metric], metrics["after"][metric]
    print(f"{metric}: before fine-tuning {before:.4f}, after {after:.4f}")
    print(f"wrote {out}")


def cmd_text_classify(args: argparse.Namespace) -> None:
    from shopseq.config import load_config
    from shopseq.data.dataset import load_dataset
    from shopseq.tables import format_table
    from shopseq.train.text_classifier import text_classify

    cfg = load_config(args.config, args.set or ())
    ds = load_dataset(args.dataset)
    titles = _dataset_titles(args.dataset)
    out = Path(args.out)
    metrics = text_classify(ds, titles, args.task, args.peft, cfg, out)
    _write_json(out / RUN_FILE, {"dataset": str(Path(args.dataset).resolve())})
    named = "titles" if titles else "item and category ids (the log has no titles)"
    print(
        f"{args.task} from histories as text ({named}, {cfg.text.max_tokens} tokens) with "
        f"peft={args.peft}: trainable {metrics['trainable_params']:,} parameters "
        f"({metrics['trainable_share']:.2%}), best epoch {metrics['best_epoch']}"
    )
    columns = ["model", "holdout ROC-AUC", "holdout PR-AUC", "test ROC-AUC", "test PR-AUC"]
    columns += ["test F1", "test ECE"]
    rows = []
    for name, label in (("before", "untuned MiniLM + probe"), ("after", "fine-tuned MiniLM")):
        m = metrics[name]
        if m is None:
            continue
        rows.append(
            {
                "model": label,
                "holdout ROC-AUC": m["holdout"]["roc_auc"],
                "holdout PR-AUC": m["holdout"]["pr_auc"],
                "test ROC-AUC": m["roc_auc"],
                "test PR-AUC": m["pr_auc"],
                "test F1": m["f1"],
                "test ECE": m["ece"],
            }
        )
    print(format_table(rows, columns))
    print(f"wrote {out}")


def _dataset_titles(dataset_dir: str) -> dict[str, str]:
    """{raw item id: title} from a prepared dataset's events (empty when it has no titles)."""
    import polars as pl

    from shopseq.data.schema import EVENTS_FILE, ITEM, TITLE
    from shopseq.models.item_text import item_titles

    events = pl.scan_parquet(Path(dataset_dir) / EVENTS_FILE)
    if TITLE not in events.collect_schema().names():
        return {}
    return item_titles(events.select(ITEM, TITLE).collect())


def cmd_recommend(args: argparse.Namespace) -> None:
    from shopseq.evaluate.runner import recommend
    from shopseq.tables import format_table
    from shopseq.train.loop import load_run

    ds = _run_dataset(args.run)
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


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _add_item_text_args(p: argparse.ArgumentParser) -> None:
    """--item-text / --text-encoder, shared by train and pretrain (see :func:`_start_run`)."""
    p.add_argument(
        "--item-text",
        choices=("none", "add", "only"),
        help="item titles through the pretrained MiniLM encoder: add to the ID embedding, or "
        "replace it (only: items known by title alone can be recommended)",
    )
    p.add_argument(
        "--text-encoder",
        metavar="DIR",
        help="embed the titles with a LoRA-tuned encoder written by `shopseq tune-text`",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopseq",
        description="Predict what an online shopper does next from their behaviour sequence.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser("train", help="train the Behaviour Transformer on a prepared dataset")
    p.add_argument("dataset", help="a prepared dataset dir")
    p.add_argument("--config", help="YAML/JSON config, e.g. configs/amazon-beauty.yaml")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.lr=0.002",
    )
    p.add_argument("--out", required=True, help="run dir to write (model, config, metrics)")
    p.add_argument("--resume", action="store_true", help="continue from the run dir's checkpoint")
    _add_item_text_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="self-supervised pretraining: a base run for finetune")
    p.add_argument("dataset", help="a prepared dataset dir")
    p.add_argument("--objective", choices=("causal", "masked", "both"), help="default: by arch")
    p.add_argument("--config", help="YAML/JSON config, e.g. configs/taobao.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    _add_item_text_args(p)
    p.add_argument("--out", required=True, help="base run dir to write")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser(
        "tune-text",
        help="LoRA-tune the MiniLM title encoder on consecutive items (for --text-encoder)",
    )
    p.add_argument("dataset", help="a prepared dataset dir whose log has titles")
    p.add_argument("--config", help="YAML/JSON config; the text_tune.* keys (steps, lora_r, ...)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", required=True, help="dir to write (LoRA adapter, text_tuning.json)")
    p.set_defaults(func=cmd_tune_text)

    p = sub.add_parser("finetune", help="adapt a pretrained run to a task, fully or with peft")
    p.add_argument("base", help="a run dir written by `shopseq pretrain` or `shopseq train`")
    p.add_argument(
        "--task", required=True, choices=("next-item", "next-behavior", "purchase", "churn")
    )
    p.add_argument(
        "--peft",
        default="none",
        choices=("none", "lora", "adapter", "prefix", "ia3"),
        help="parameter-efficient method (default none = full fine-tuning)",
    )
    p.add_argument("--data", help="prepared dataset dir (default: the base run's dataset)")
    p.add_argument(
        "--config", help="YAML/JSON config; the finetune.* keys set horizons, LoRA rank, ..."
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", required=True, help="run dir to write (adapter/ for peft methods)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "text-classify",
        help="baseline: histories written as text, MiniLM fine-tuned on them (purchase, churn)",
    )
    p.add_argument("dataset", help="a prepared dataset dir with a temporal split")
    p.add_argument("--task", required=True, choices=("purchase", "churn"))
    p.add_argument(
        "--peft",
        default="none",
        choices=("none", "lora"),
        help="none = full fine-tuning (default), lora = adapter + classifier head only",
    )
    p.add_argument(
        "--config", help="YAML/JSON config; text.* (max_tokens, lr, ...) and finetune.* keys"
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", required=True, help="run dir to write (metrics.json, weights)")
    p.set_defaults(func=cmd_text_classify)

    p = sub.add_parser("recommend", help="top-k next items for users from a trained run")
    p.add_argument("run", help="a run dir written by `shopseq train`")
    p.add_argument("--user", action="append", required=True, help="raw user id (repeatable)")
    p.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--keep-seen", action="store_true", help="allow items already in the history")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_recommend)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.func(args)
    except ShopseqInputError as err:
        print(f"shopseq: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
