"""Training commands: `train`, `pretrain`, `tune-text`, `finetune` and `text-classify`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from shopseq.cli.common import REPORT_METRICS, RUN_FILE, write_json
from shopseq.config import BinaryTask, ItemText, Objective, PeftMethod, Task, TextPeft, choices
from shopseq.errors import ShopseqInputError

if TYPE_CHECKING:
    from shopseq.config import ModelConfig, RunConfig
    from shopseq.data.dataset import Dataset
    from shopseq.models.item_text import SideTable


def _start_run(args: argparse.Namespace) -> tuple[RunConfig, Dataset, Path, SideTable | None]:
    """Config, dataset, run dir (recording the dataset) and item side table for train/pretrain."""
    from shopseq.config import load_config
    from shopseq.data.dataset import load_dataset

    item_text = [] if args.item_text is None else [f"model.item_text={args.item_text}"]
    cfg = load_config(args.config, [*(args.set or ()), *item_text])
    ds = load_dataset(args.dataset)
    table = _side_table(args.dataset, ds, cfg.model, args.text_encoder)
    out = Path(args.out)
    write_json(out / RUN_FILE, {"dataset": str(Path(args.dataset).resolve())})
    return cfg, ds, out, table


def _side_table(
    dataset_dir: str, ds: Dataset, cfg: ModelConfig, text_encoder: str | None
) -> SideTable | None:
    """The item side table ``model.item_text`` / ``item_attributes`` need: title embeddings
    (cached per dataset; the shipped MiniLM or a ``shopseq tune-text`` dir) and attributes."""
    if text_encoder is not None and cfg.item_text == "none":
        raise ShopseqInputError("--text-encoder needs --item-text add or only")
    if not cfg.side_features:
        return None
    import polars as pl

    from shopseq.data.schema import EVENTS_FILE
    from shopseq.models.item_text import side_table

    events = pl.read_parquet(Path(dataset_dir) / EVENTS_FILE)
    name = "item_text" if text_encoder is None else f"item_text-{Path(text_encoder).name}"
    cache = Path(dataset_dir) / f"{name}.safetensors"
    return side_table(cfg, events, ds.vocab, cache, text_encoder=text_encoder)


def _dataset_titles(dataset_dir: str) -> dict[str, str]:
    """{raw item id: title} from a prepared dataset's events (empty when it has no titles)."""
    import polars as pl

    from shopseq.data.schema import EVENTS_FILE, ITEM, TITLE
    from shopseq.models.item_text import item_titles

    events = pl.scan_parquet(Path(dataset_dir) / EVENTS_FILE)
    if TITLE not in events.collect_schema().names():
        return {}
    return item_titles(events.select(ITEM, TITLE).collect())


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
    write_json(out / RUN_FILE, {"dataset": str(Path(dataset).resolve())})
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
    write_json(out / RUN_FILE, {"dataset": str(Path(args.dataset).resolve())})
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


def _add_item_text_args(p: argparse.ArgumentParser) -> None:
    """--item-text / --text-encoder, shared by train and pretrain (see :func:`_start_run`)."""
    p.add_argument(
        "--item-text",
        choices=choices(ItemText),
        help="item titles through the pretrained MiniLM encoder: add to the ID embedding, or "
        "replace it (only: items known by title alone can be recommended)",
    )
    p.add_argument(
        "--text-encoder",
        metavar="DIR",
        help="embed the titles with a LoRA-tuned encoder written by `shopseq tune-text`",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `train`, `pretrain`, `tune-text`, `finetune` and `text-classify` to the parser."""
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
    p.add_argument(
        "--objective",
        choices=[o for o in choices(Objective) if o != "auto"],
        help="default: by arch",
    )
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
    p.add_argument("--task", required=True, choices=choices(Task))
    p.add_argument(
        "--peft",
        default="none",
        choices=choices(PeftMethod),
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
    p.add_argument("--task", required=True, choices=choices(BinaryTask))
    p.add_argument(
        "--peft",
        default="none",
        choices=choices(TextPeft),
        help="none = full fine-tuning (default), lora = adapter + classifier head only",
    )
    p.add_argument(
        "--config", help="YAML/JSON config; text.* (max_tokens, lr, ...) and finetune.* keys"
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", required=True, help="run dir to write (metrics.json, weights)")
    p.set_defaults(func=cmd_text_classify)
