"""Item-text benchmark: ID-only vs text-aware (add) vs text-only item representations.

Leave-one-out, full-catalogue ranking, seen items filtered, test at the best valid epoch (with
the config's refit), same recipe for every mode; only ``model.item_text`` changes. Two protocols:

- ``standard``: every item's events train the model. The cold slice = test targets whose item
  never occurs in the test phase's training inputs (on 5-core data: next to none).
- ``holdout``: a seeded random ``--holdout`` share of items has all its events removed from the
  training inputs of every phase (valid and test); histories and targets used for evaluation are
  untouched, as for items added to the catalogue after training. Held-out items are never drawn
  as softmax negatives either (the sampler only draws items present in training), so their ID
  rows stay at init. The cold slice = test targets on held-out (or otherwise unseen) items.

Writes bench-results/text-<dataset>.json (incrementally) and prints a table. Usage:

    python benchmarks/bench_text.py --dataset scientific [--config configs/amazon-beauty.yaml]
        [--modes none,add,only] [--protocols standard,holdout] [--set train.max_epochs=50 ...]
        [--text-encoder DIR]

``--text-encoder DIR``: item text from the MiniLM encoder LoRA-tuned on consecutive-item title
pairs (``shopseq tune-text``); tuned into DIR first when DIR holds no adapter, on the valid
phase's training inputs of the holdout protocol (no valid/test target, no held-out item), so
one tuned encoder serves both protocols. Its rows are keyed ``<protocol>/<mode>+tuned``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOPSEQ_DATA_DIR", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench-results"
DATASETS: dict[str, tuple[str, str]] = {
    "scientific": ("amazon-scientific/Scientific.train.inter", "recbole"),
    "beauty": ("amazon-beauty/Beauty.txt", "s3rec"),
}
COLUMNS = ["protocol", "item_text", "HR@10", "NDCG@10", "cold n", "cold HR@10", "cold NDCG@10"]


def load(name: str) -> tuple[Any, Any, dict[str, str]]:
    """(Dataset, item text table [n_tokens, 384], titles); the table cached under bench-results/."""
    from shopseq.data.dataset import prepare
    from shopseq.data.ingest import ingest
    from shopseq.data.sequences import SplitSpec
    from shopseq.models.item_text import item_titles
    from shopseq.models.text import embed_item_texts

    rel, fmt = DATASETS[name]
    result = ingest(DATA / rel, fmt)
    ds = prepare(result.events, SplitSpec(kind="loo"), result.time_unit)
    cache = RESULTS / "text" / f"{name}-item-text.safetensors"
    titles = item_titles(result.events)
    return ds, embed_item_texts(ds.vocab, titles, cache, progress=False), titles


def tuned_table(name: str, ds: Any, titles: dict[str, str], encoder_dir: Path) -> Any:
    """The item text table from the LoRA-tuned encoder in ``encoder_dir`` (tuned there first
    on ``ds``'s valid-phase training inputs when it holds no adapter)."""
    from shopseq.config import TextTuneConfig
    from shopseq.models.text import ADAPTER_FILE, embed_item_texts, item_texts
    from shopseq.train.text_encoder import next_item_pairs, tune_text_encoder

    if not (encoder_dir / ADAPTER_FILE).is_file():
        texts = item_texts(ds.vocab, titles)
        pairs = next_item_pairs(ds.train_sequences("valid"), texts)
        tune_text_encoder(pairs, texts, TextTuneConfig(num_threads=1), encoder_dir)
    cache = RESULTS / "text" / f"{name}-item-text-tuned.safetensors"
    return embed_item_texts(ds.vocab, titles, cache, encoder_dir, progress=False)


def run_one(ds: Any, table: Any, cfg: Any, out: Path) -> dict[str, Any]:
    """Train one mode and test it on all test targets and on the cold slice."""
    from shopseq.evaluate.runner import evaluate_phase
    from shopseq.models.item_text import cold_targets, restrict_phase
    from shopseq.train.loop import load_run, train

    tick = time.perf_counter()
    metrics = train(ds, cfg, out, progress=False, item_text=table)
    cold = cold_targets(ds, "test")
    row: dict[str, Any] = {
        "valid": metrics["valid"],
        "test": metrics["test"],
        "test_without_refit": metrics.get("test_without_refit"),
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "n_parameters": metrics["n_parameters"],
        "wall_seconds": time.perf_counter() - tick,
        "cold_targets": int(cold.sum()),
        "test_targets": int(len(cold)),
    }
    if cold.any():
        model, _ = load_run(out)
        row["cold_test"] = evaluate_phase(
            model, restrict_phase(ds, "test", cold), "test", progress=False
        )
        row["warm_test"] = evaluate_phase(
            model, restrict_phase(ds, "test", ~cold), "test", progress=False
        )
    return row


def table_rows(runs: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for key, run in runs.items():
        protocol, mode = key.split("/")
        cold = run.get("cold_test", {})
        rows.append(
            [
                protocol,
                mode,
                f"{run['test']['HR@10']:.4f}",
                f"{run['test']['NDCG@10']:.4f}",
                str(run["cold_targets"]),
                f"{cold['HR@10']:.4f}" if cold else "-",
                f"{cold['NDCG@10']:.4f}" if cold else "-",
            ]
        )
    return rows


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def main() -> None:
    import torch

    from shopseq.config import config_to_dict, load_config
    from shopseq.models.item_text import hold_out_items

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--config", default=str(ROOT / "configs" / "amazon-beauty.yaml"))
    parser.add_argument("--modes", default="none,add,only")
    parser.add_argument("--protocols", default="standard,holdout")
    parser.add_argument("--holdout", type=float, default=0.05, help="share of items held out")
    parser.add_argument("--seed", type=int, default=0, help="which items are held out")
    parser.add_argument("--set", nargs="*", default=[], dest="overrides")
    parser.add_argument("--out", default=None)
    parser.add_argument("--text-encoder", default=None, help="LoRA-tuned encoder dir")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    out = Path(args.out or RESULTS / f"text-{args.dataset}.json")
    config_text = Path(args.config).read_text()
    result: dict[str, Any] = {
        "dataset": args.dataset,
        "source": DATASETS[args.dataset],
        "protocol": "leave-one-out, full ranking, seen items filtered, test at best valid epoch",
        "config_file": args.config,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "config_text": config_text,
        "overrides": args.overrides,
        "holdout_share": args.holdout,
        "holdout_seed": args.seed,
        "runs": {},
    }
    if out.exists():  # resume: keep finished runs of the same recipe, never overwrite others
        old = json.loads(out.read_text())
        recipe = (result["config_sha256"], args.overrides)
        if (old.get("config_sha256"), old.get("overrides")) != recipe:
            raise SystemExit(
                f"{out} holds runs of another recipe (config or --set differ): pass --out NEW"
            )
        result["runs"] = old.get("runs", {})
    tick = time.perf_counter()
    ds, table, titles = load(args.dataset)
    result["load_seconds"] = time.perf_counter() - tick
    variants = {"standard": ds}
    held = hold_out_items(ds, args.holdout, np.random.default_rng(args.seed))
    if "holdout" in args.protocols:
        variants["holdout"] = held
        result["held_out_items"] = int(held.held_out.sum())
    suffix = ""
    if args.text_encoder:
        from shopseq.train.text_encoder import TUNING_FILE

        encoder_dir = Path(args.text_encoder)
        table = tuned_table(args.dataset, held, titles, encoder_dir)
        result["text_tuning"] = json.loads((encoder_dir / TUNING_FILE).read_text())
        suffix = "+tuned"
    for protocol in args.protocols.split(","):
        for mode in args.modes.split(","):
            key = f"{protocol}/{mode}{suffix}"
            if key in result["runs"]:
                continue
            cfg = load_config(args.config, [*args.overrides, f"model.item_text={mode}"])
            run_dir = RESULTS / "text-runs" / args.dataset / protocol / mode
            row = run_one(variants[protocol], table, cfg, run_dir)
            row["config"] = config_to_dict(cfg)
            result["runs"][key] = row
            out.write_text(json.dumps(result, indent=2))
            print(f"{key}: {json.dumps({k: row[k] for k in ('test', 'cold_targets')})}")
    print_table(table_rows(result["runs"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
