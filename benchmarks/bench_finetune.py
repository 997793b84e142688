"""Pretrain -> fine-tune on Taobao: purchase and churn, full vs PEFT vs from scratch vs features,
and the text-serialisation baseline (MiniLM fine-tuned on histories written as text).

Split: temporal, test cut-off 2017-12-02 00:00 +08:00, train (valid) cut-off 2017-12-01 00:00
+08:00; purchase = a buy within 24 h after the cut-off; churn = no event within 1 day after it
(the 9-day log allows no longer). All 84,287 sample rows are kept, the 35 rows dated before the
official 2017-11-25 start included (they are old history, before both cut-offs).

The text rows (``shopseq text-classify``) use the same examples, cut-offs, labels and holdout.
Taobao has no titles, so their histories read "view item 2268318 (category 2520377) ; ...";
the untuned-encoder probe ("before") runs once per task, with the full fine-tuning row.

Each fine-tuning run is a subprocess, so peak memory (max RSS) is per run. Writes
bench-results/finetune.json and prints two tables. Usage (one CPU thread throughout):

    python benchmarks/bench_finetune.py [--work runs/bench-finetune] [--quick]
    python benchmarks/bench_finetune.py --only text   # these rows only, merged into the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOPSEQ_DATA_DIR", ROOT.parent / "shared" / "data"))
TAOBAO = "taobao-userbehavior-sample/UserBehavior_sample.csv.gz"
CST = timezone(timedelta(hours=8))
TEST_CUT = datetime(2017, 12, 2, tzinfo=CST)
TRAIN_CUT = datetime(2017, 12, 1, tzinfo=CST)
MODEL = [
    "model.arch=gpt2",
    "model.d_model=64",
    "model.n_layers=2",
    "model.n_heads=2",
    "model.max_len=50",
    "model.dropout=0.2",
    "train.num_threads=1",
    "train.batch_size=128",
    "train.lr=1e-3",
    "train.warmup_steps=20",  # ~11 batches an epoch: the default 100 would warm up for 9 epochs
    "train.max_epochs=15",
    "train.patience=15",
    "train.behavior_weight=0.5",
    "train.filter_seen=false",  # Taobao shoppers re-view items: seen items stay rankable
    "train.loss=sampled",
    "train.n_negatives=512",
]
FINETUNE = [
    "finetune.horizon_hours=24",
    "finetune.churn_days=1",
    "finetune.epochs=12",
    "finetune.patience=3",
    "finetune.batch_size=64",
]
LR = {"none": "3e-4", "scratch": "1e-3"}  # peft methods: 3e-3
# MiniLM on serialised histories: text.lr (full) 5e-5 and text.lora_lr 1e-3 are the defaults;
# 128 tokens and 2 epochs keep four runs within ~25 min on one shared CPU thread
TEXT = [
    "text.max_tokens=128",
    "text.batch_size=16",
    "finetune.epochs=2",
    "finetune.patience=1",
]
JOBS = [  # (task, peft, base)
    ("purchase", "none", "pretrained"),
    ("purchase", "lora", "pretrained"),
    ("purchase", "adapter", "pretrained"),
    ("purchase", "prefix", "pretrained"),
    ("purchase", "ia3", "pretrained"),
    ("purchase", "none", "scratch"),
    ("churn", "none", "pretrained"),
    ("churn", "lora", "pretrained"),
    ("churn", "none", "scratch"),
    ("purchase", "none", "text"),
    ("purchase", "lora", "text"),
    ("churn", "none", "text"),
    ("churn", "lora", "text"),
]


def load_taobao() -> Any:
    from shopseq.data.dataset import prepare
    from shopseq.data.ingest import ingest
    from shopseq.data.sequences import SplitSpec

    result = ingest(DATA / TAOBAO, "taobao")
    assert result.rejected == 0, f"{result.rejected} rows rejected"
    spec = SplitSpec(
        kind="temporal",
        cutoff=int(TEST_CUT.timestamp() * 1000),
        valid_cutoff=int(TRAIN_CUT.timestamp() * 1000),
    )
    return prepare(result.events, spec, result.time_unit)


def make_bases(work: Path, quick: bool, reuse: bool) -> dict[str, Any]:
    """Pretrain the base (causal next-event) and write an untrained twin for 'from scratch'."""
    import torch
    from safetensors.torch import save_model

    from shopseq.config import load_config, save_config
    from shopseq.train.fit import build_model, effective_config
    from shopseq.train.loop import pretrain

    ds = load_taobao()
    overrides = MODEL + (["train.max_epochs=2"] if quick else [])
    cfg = effective_config(load_config(None, overrides), ds)
    done = work / "pretrain.json"
    if reuse and done.exists():
        info: dict[str, Any] = json.loads(done.read_text())
        return info
    tick = time.perf_counter()
    metrics = pretrain(ds, cfg, work / "pretrained", "causal", progress=False)
    seconds = time.perf_counter() - tick
    selected = "best valid NDCG@10"
    if metrics["valid"]["NDCG@10"] == 0:  # no signal to select on: keep the last epoch
        last = work / "pretrained" / "checkpoint" / "model.safetensors"
        shutil.copyfile(last, work / "pretrained" / "model.safetensors")
        selected = "last epoch (valid NDCG@10 was 0 throughout)"
    scratch = work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_model(build_model(cfg, ds.vocab), str(scratch / "model.safetensors"))
    save_config(cfg, scratch / "config.json")
    ds.vocab.save(scratch / "vocab.json")
    info = {
        "seconds": seconds,
        "selected": selected,
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "test_ranking": metrics["test"],
        "test_next_behavior_macro_f1": metrics["next_behavior"]["macro_f1"],
        "history": metrics["history"],
    }
    done.write_text(json.dumps(info))
    return info


def run_job(task: str, peft: str, base: str, work: Path, quick: bool) -> dict[str, Any]:
    """One fine-tuning run in this process (called in a subprocess)."""
    import warnings

    warnings.filterwarnings("ignore")
    if base == "text":
        return run_text_job(task, peft, work, quick)
    from shopseq.config import load_config
    from shopseq.train.finetune import finetune

    ds = load_taobao()
    lr = LR["scratch"] if base == "scratch" else LR.get(peft, "3e-3")
    overrides = [*MODEL, *FINETUNE, f"finetune.lr={lr}"]
    overrides += ["finetune.epochs=2"] if quick else []
    cfg = load_config(None, overrides)
    out = work / f"{task}-{peft}-{base}"
    tick = time.perf_counter()
    m = finetune(work / base, ds, task, peft, cfg, out, progress=False)
    wall = time.perf_counter() - tick
    keep = ("roc_auc", "pr_auc", "f1", "log_loss", "ece", "valid_roc_auc", "n", "positive_rate")
    return {
        "task": task,
        "peft": peft,
        "base": base,
        "wall_s": wall,
        "peak_rss_mb": m["peak_rss_mb"],
        "trainable_params": m["trainable_params"],
        "total_params": m["total_params"],
        "trainable_share": m["trainable_share"],
        "best_epoch": m["best_epoch"],
        "before": {k: m["before"][k] for k in keep},
        "after": {k: m["after"][k] for k in keep},
        "examples": m["examples"],
        "adapter_bytes": dir_bytes(out / "adapter"),
    }


def run_text_job(task: str, peft: str, work: Path, quick: bool) -> dict[str, Any]:
    """MiniLM fine-tuned on histories written as text (`shopseq text-classify`)."""
    from shopseq.config import load_config
    from shopseq.train.text_classifier import text_classify

    ds = load_taobao()
    overrides = [*FINETUNE, *TEXT, "train.num_threads=1", f"text.probe={peft == 'none'}"]
    overrides += ["finetune.epochs=1", "text.max_tokens=32"] if quick else []
    cfg = load_config(None, overrides)
    out = work / f"{task}-{peft}-text"
    tick = time.perf_counter()
    m = text_classify(ds, {}, task, peft, cfg, out, progress=False)  # Taobao: no titles
    wall = time.perf_counter() - tick
    keep = ("roc_auc", "pr_auc", "f1", "log_loss", "ece", "valid_roc_auc", "n", "positive_rate")
    sides = {side: m[side] for side in ("before", "after") if m[side] is not None}
    return {
        "task": task,
        "peft": peft,
        "base": "text",
        "settings": overrides,
        "wall_s": wall,
        "train_s": m["train_seconds"],
        "peak_rss_mb": m["peak_rss_mb"],
        "trainable_params": m["trainable_params"],
        "total_params": m["total_params"],
        "trainable_share": m["trainable_share"],
        "best_epoch": m["best_epoch"],
        "history": m["history"],
        **{side: {k: r[k] for k in keep} for side, r in sides.items()},
        **{f"{side}_holdout": {k: r["holdout"][k] for k in keep[:5]} for side, r in sides.items()},
        "examples": m["examples"],
        "adapter_bytes": dir_bytes(out / "adapter"),
    }


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def feature_baselines() -> list[dict[str, Any]]:
    """Logistic / GBM on hand-made features, fit at the train cut-off, tested at the test one."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from shopseq.config import load_config
    from shopseq.evaluate.classification import best_f1_threshold, binary_report
    from shopseq.models.features import fit_feature_baseline, sequence_features
    from shopseq.train.task_examples import binary_examples

    ds = load_taobao()
    cfg = load_config(None, FINETUNE).finetune
    rows = []
    for task in ("purchase", "churn"):
        parts = binary_examples(ds, task, cfg)
        cut = {"fit": TRAIN_CUT, "holdout": TRAIN_CUT, "test": TEST_CUT}
        X = {
            name: sequence_features(
                ds.sequences, ex.users, int(cut[name].timestamp() * 1000), ds.vocab
            )[0]
            for name, ex in parts.items()
        }
        for kind in ("logistic", "gbm"):
            with threadpool_limits(limits=1):
                tick = time.perf_counter()
                model = fit_feature_baseline(X["fit"], parts["fit"].labels, kind)  # type: ignore[arg-type]
                probs = {name: model.predict_proba(x)[:, 1] for name, x in X.items()}
                wall = time.perf_counter() - tick
            threshold = best_f1_threshold(probs["holdout"], parts["holdout"].labels)
            report = binary_report(probs["test"], parts["test"].labels, threshold)
            rows.append(
                {
                    "task": task,
                    "model": f"features + {kind}",
                    "wall_s": wall,
                    "after": {k: report[k] for k in ("roc_auc", "pr_auc", "f1", "ece")},
                    "n_test": int(len(parts["test"].labels)),
                    "test_positive_rate": float(np.mean(parts["test"].labels)),
                }
            )
    return rows


def job_name(job: dict[str, Any]) -> str:
    if job["base"] == "text":
        return f"text-serialisation MiniLM ({'full FT' if job['peft'] == 'none' else 'LoRA'})"
    return f"{job['base']} + {'full' if job['peft'] == 'none' else job['peft']}"


def tables(result: dict[str, Any]) -> str:
    lines = [f"task      {'model':<38} ROC-AUC  PR-AUC  F1     ECE"]

    def row(task: str, name: str, m: dict[str, float]) -> str:
        return (
            f"{task:<9} {name:<38} {m['roc_auc']:.4f}   {m['pr_auc']:.4f}  "
            f"{m['f1']:.3f}  {m['ece']:.3f}"
        )

    for job in result["jobs"]:
        lines.append(row(job["task"], job_name(job), job["after"]))
        if job["peft"] == "none" and job.get("before"):
            before = {"pretrained": "pretrained, probe (before)"}
            before["text"] = "untuned MiniLM, probe (before)"
            if job["base"] in before:
                lines.append(row(job["task"], before[job["base"]], job["before"]))
    for feat in result.get("features", []):
        lines.append(row(feat["task"], feat["model"], feat["after"]))
    lines += ["", "PEFT (purchase)  trainable   share    wall s  peak MiB  AUC     vs full"]
    purchase = [j for j in result["jobs"] if j["task"] == "purchase" and j["base"] == "pretrained"]
    full = next((j["after"]["roc_auc"] for j in purchase if j["peft"] == "none"), float("nan"))
    for job in purchase:
        auc = job["after"]["roc_auc"]
        lines.append(
            f"{job['peft']:<16} {job['trainable_params']:>9,}  {100 * job['trainable_share']:6.3f}%"
            f"  {job['wall_s']:6.1f}  {job['peak_rss_mb']:8.0f}  {auc:.4f}  "
            f"{100 * (auc - full) / full:+.2f}%"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-finetune"))
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "finetune.json"))
    parser.add_argument("--quick", action="store_true", help="2 epochs everywhere (smoke test)")
    parser.add_argument("--reuse-base", action="store_true", help="keep a finished pretraining")
    parser.add_argument(
        "--only",
        help="run only the jobs whose task-peft-base name contains one of these comma-separated "
        "parts (e.g. 'text', 'purchase-lora', 'features'); results are merged into --out",
    )
    parser.add_argument("--job", help=argparse.SUPPRESS)  # task,peft,base: one run, JSON out
    args = parser.parse_args()
    work = Path(args.work)
    if args.job:
        task, peft, base = args.job.split(",")
        print(json.dumps(run_job(task, peft, base, work, args.quick)))
        return
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    result: dict[str, Any] = {
        "dataset": TAOBAO,
        "split": {"kind": "temporal", "test_cutoff": TEST_CUT.isoformat()}
        | {"train_cutoff": TRAIN_CUT.isoformat()},
        "horizons": {"purchase_hours": 24, "churn_days": 1},
        "model": MODEL,
        "finetune": FINETUNE,
        "lr": LR | {"peft": "3e-3"},
    }
    wanted = [part.strip() for part in (args.only or "").split(",") if part.strip()]

    def selected(name: str) -> bool:
        return not wanted or any(part in name for part in wanted)

    jobs = [job for job in JOBS if selected("-".join(job))]
    if wanted and Path(args.out).exists():  # a subset: keep the other rows of the last full run
        result = json.loads(Path(args.out).read_text()) | {"text": TEXT}
    else:
        result |= {"text": TEXT, "jobs": [], "features": []}
    if any(base != "text" for _, _, base in jobs):
        result["pretrain"] = make_bases(work, args.quick, args.reuse_base)
    for task, peft, base in jobs:
        cmd = [sys.executable, __file__, "--work", str(work), "--job", f"{task},{peft},{base}"]
        cmd += ["--quick"] if args.quick else []
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{task}/{peft}/{base} failed:\n{done.stderr[-3000:]}")
        job = json.loads(done.stdout.strip().splitlines()[-1])
        keys = [(j["task"], j["peft"], j["base"]) for j in result["jobs"]]
        if (task, peft, base) in keys:  # a rerun replaces its row in place
            result["jobs"][keys.index((task, peft, base))] = job
        else:
            result["jobs"].append(job)
        write_json(Path(args.out), result)  # after every job: a stopped run keeps its rows
        print(f"done {task} {peft} {base} ({job['wall_s']:.0f} s)", file=sys.stderr)
    if selected("features"):
        result["features"] = feature_baselines()
    write_json(Path(args.out), result)
    print(tables(result))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
