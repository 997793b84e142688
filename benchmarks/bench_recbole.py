"""RecBole 1.2.1 SASRec under shopseq's protocol, trained from a throwaway venv.

RecBole is a reference point, never a shopseq dependency. This script creates (once) a venv
outside the repo with the pinned packages below, converts the sequences to RecBole atomic files
in a temp dir, trains SASRec in a child process with that venv's Python, and writes a JSON
result, RecBole's own log beside it, and a table. Protocol, as in shopseq's full-ranking
evaluation: leave-one-out by time order (2nd-to-last item validates, last item tests), every
item ranked, the user's earlier items filtered, HR/NDCG@5/10/20, max_seq_len 50, early stopping
on valid NDCG@10, test metrics of the best validation epoch. RecBole's own full-sort evaluation
filters no seen items for sequential models, so the child ranks with a filtered evaluation of its
own (RecBole's unfiltered test metrics are kept too, as `metrics_recbole_unfiltered`). Usage:

    python benchmarks/bench_recbole.py --dataset beauty --out bench-results/recbole-beauty.json
    python benchmarks/bench_recbole.py --input path/Beauty.txt --max-users 2000 --epochs 2
    python benchmarks/bench_recbole.py --prepared runs/beauty/dataset --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOPSEQ_DATA_DIR", ROOT.parent / "shared" / "data"))

# name: (relative path, format); the formats RecBole's protocol matches (all filter seen items)
DATASETS: dict[str, tuple[str, str]] = {
    "beauty": ("amazon-beauty/Beauty.txt", "s3rec"),
    "sports": ("amazon-sports/Sports_and_Outdoors.txt", "s3rec"),
    "toys": ("amazon-toys/Toys_and_Games.txt", "s3rec"),
    "videogames": ("amazon-videogames/Video.txt", "sasrec"),
}

# Torch goes in first and alone, pinned, so nothing later can swap in another build.
TORCH = "torch==2.13.0"
RECBOLE = "recbole==1.2.1"  # installed --no-deps: its metadata also pulls ray, plotly, thop, ...
REQUIREMENTS = (
    "numpy==1.26.4",  # numpy 2 breaks RecBole's own np.float_/np.unicode_ aliases in Config
    "pandas==2.2.3",  # pandas 3 copy-on-write turns its chained fillna(inplace=True) into no-ops
    "scipy==1.13.1",
    "scikit-learn==1.5.2",  # imported by recbole.evaluator
    "tqdm==4.67.1",
    "PyYAML==6.0.2",
    "colorlog==4.7.2",  # exact pins of RecBole's own metadata
    "colorama==0.4.4",
    "tensorboard==2.18.0",  # recbole.utils imports torch.utils.tensorboard at module level
    "protobuf==5.29.3",
    "texttable==1.7.0",  # imported by recbole.utils
)
# Left out on purpose: ray (only recbole.quick_start imports it, the runner does not), plotly
# (hyper-parameter tuning), thop and psutil (FLOPs and environment reports of quick_start).
PIN_MARKER = "shopseq-recbole-pins.json"

RUNNER = r"""
"Child process: train and test RecBole SASRec; argv = job.json result.json."
import json, resource, sys, time
from pathlib import Path

import torch

# Shim: torch >= 2.6 loads weights only by default, but RecBole's checkpoints pickle its Config;
# RecBole reloads its own checkpoint for the test. Only files this run wrote are loaded.
_load = torch.load
torch.load = lambda *a, **k: _load(*a, **{"weights_only": False, **k})

job = json.loads(Path(sys.argv[1]).read_text())
result_path = sys.argv[2]
sys.argv = sys.argv[:1]  # RecBole's Config parses sys.argv
if job["threads"]:
    torch.set_num_threads(job["threads"])

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed


def seen_items(dataset, inter_path, drop):
    "[n_users, L] each user's items but the last `drop`, RecBole ids, 0 (PAD) padded."
    uid, iid = dataset.field2token_id["user_id"], dataset.field2token_id["item_id"]
    seqs = {}
    with open(inter_path) as lines:
        next(lines)
        for line in lines:
            user, item, _ = line.split("\t")
            seqs.setdefault(uid[user], []).append(iid[item])
    seen = torch.zeros(dataset.user_num, max(map(len, seqs.values())), dtype=torch.long)
    for u, items in seqs.items():
        kept = items[: max(len(items) - drop, 0)]
        seen[u, : len(kept)] = torch.tensor(kept, dtype=torch.long)
    return seen


@torch.no_grad()
def filtered_metrics(model, loader, seen, ks=(5, 10, 20)):
    "HR/NDCG@k over all items with the user's earlier items set to -inf; ties pessimistic."
    model.eval()
    ranks = []
    for interaction, _, _, target in loader:
        interaction = interaction.to(model.device)
        scores = model.full_sort_predict(interaction).view(len(target), -1)  # [B, n_items]
        scores[:, 0] = -torch.inf
        scores.scatter_(1, seen[interaction["user_id"]], -torch.inf)
        t = scores.gather(1, target.view(-1, 1))  # [B, 1]
        ranks.append((scores > t).sum(1) + (scores == t).sum(1) - 1)
    rank = torch.cat(ranks).double()  # [n_users] 0 = first
    out = {f"hit@{k}": (rank < k).double().mean().item() for k in ks}
    ndcg = {f"ndcg@{k}": ((rank < k) / torch.log2(rank + 2)).mean().item() for k in ks}
    return {**out, **ndcg}


start = time.perf_counter()
config = Config(model="SASRec", dataset=job["dataset"], config_dict=job["recbole"])
init_seed(config["seed"], config["reproducibility"])
init_logger(config)
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)
init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
if job.get("resume"):
    # model, optimizer, epoch, best score and patience count; the data order's RNG is not kept
    trainer.resume_checkpoint(job["resume"])
inter_path = Path(config["data_path"]) / (job["dataset"] + ".inter")
seen_valid = seen_items(dataset, inter_path, drop=2)
seen_test = seen_items(dataset, inter_path, drop=1)
prepare_s = time.perf_counter() - start

if job["filter_seen"]:
    # RecBole's full-sort evaluation filters nothing for sequential models (history_index is
    # None), so the validation that drives early stopping is replaced by the filtered one.
    def filtered_valid(valid_data, show_progress=False):
        result = filtered_metrics(model, valid_data, seen_valid)
        return result["ndcg@10"], result

    trainer._valid_epoch = filtered_valid

epochs = []
def on_epoch(epoch, valid_score):
    # fit() resets cur_step to 0 exactly when this epoch became the best one
    epochs.append({"epoch": epoch, "valid_score": float(valid_score),
                   "wall_seconds": job.get("prior_seconds", 0.0) + time.perf_counter() - fit_start,
                   "improved": trainer.cur_step == 0})

fit_start = time.perf_counter()
_, best_valid = trainer.fit(train_data, valid_data, show_progress=False, callback_fn=on_epoch)
train_s = time.perf_counter() - fit_start
start = time.perf_counter()
test_unfiltered = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
test = filtered_metrics(model, test_data, seen_test)
test_s = time.perf_counter() - start

keys = ["MAX_ITEM_LIST_LENGTH", "hidden_size", "inner_size", "n_layers", "n_heads",
        "hidden_dropout_prob", "attn_dropout_prob", "hidden_act", "loss_type", "learner",
        "learning_rate", "weight_decay", "train_batch_size", "eval_batch_size", "epochs",
        "stopping_step", "valid_metric", "eval_args", "repeatable", "seed", "device"]
Path(result_path).write_text(json.dumps({
    "n_users": dataset.user_num - 1, "n_items": dataset.item_num - 1,
    "n_train_samples": len(train_data.dataset),
    "n_params": sum(p.numel() for p in model.parameters()),
    "torch_threads": torch.get_num_threads(),
    "config": {k: str(config[k]) if k == "device" else config[k] for k in keys},
    "prepare_seconds": prepare_s, "train_seconds": train_s, "test_seconds": test_s,
    "epochs": epochs, "valid": dict(best_valid or {}), "test": test,
    "test_recbole_unfiltered": dict(test_unfiltered),
    "self_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}, indent=2))
"""

TRAIN_LINE = re.compile(r"epoch (\d+) training \[time: ([\d.]+)s, train loss: ([\d.]+)\]")
VALID_LINE = re.compile(r"epoch (\d+) evaluating \[time: ([\d.]+)s, valid_score: ([\d.]+)\]")
SAVED = "Saving current"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLUMNS = [
    "dataset", "users", "items", "train samples", "epochs", "best", "s/epoch", "s to best",
    "HR@10", "NDCG@10", "NDCG@10 unfiltered", "peak MiB",
]  # fmt: skip


def ensure_venv(venv: Path, torch_index_url: str | None) -> Path:
    """Create or complete the throwaway venv; returns its Python."""
    python = venv / "bin" / "python"
    pins = [TORCH, RECBOLE, *REQUIREMENTS]
    marker = venv / PIN_MARKER
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == pins:
        return python
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    torch_source = ["--index-url", torch_index_url] if torch_index_url else []
    _refuse_cuda_torch(python, torch_source)
    _run([*pip, *torch_source, TORCH])
    _run([*pip, *REQUIREMENTS])
    _run([*pip, "--no-deps", RECBOLE])
    probe = "import torch, recbole; print(torch.__version__, torch.version.cuda)"
    print("venv:", _run([str(python), "-c", probe], capture=True).strip(), file=sys.stderr)
    marker.write_text(json.dumps(pins))
    return python


def _refuse_cuda_torch(python: Path, torch_source: list[str]) -> None:
    """Stop before downloading a CUDA torch: this benchmark is a CPU comparison."""
    cmd = [str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-"]
    report = json.loads(_run([*cmd, *torch_source, TORCH], capture=True))
    names = [item["metadata"]["name"].lower() for item in report["install"]]
    cuda = [n for n in names if n.startswith("nvidia-") or n == "triton"]
    if cuda:
        sys.exit(
            f"pip would install a CUDA build of {TORCH} (with {', '.join(cuda)}); pass "
            "--torch-index-url with a CPU wheel index, e.g. PyTorch's /whl/cpu"
        )


def _run(cmd: list[str], capture: bool = False) -> str:
    done = subprocess.run(cmd, check=True, text=True, capture_output=capture)
    return done.stdout if capture else ""


def read_sequences(path: Path, fmt: str, max_users: int | None) -> list[tuple[str, list[str]]]:
    """Users' item sequences in time order, from an S3-Rec (`user i1 i2 ...`) or SASRec
    (`user item` per line, in time order) file; the first ``max_users`` users only."""
    seqs: dict[str, list[str]] = {}
    with path.open() as lines:
        for line in lines:
            user, *items = line.split() or [""]
            if not user:
                continue
            if user not in seqs and max_users is not None and len(seqs) >= max_users:
                if fmt == "s3rec":  # one line per user: nothing more to keep
                    break
                continue
            seqs.setdefault(user, []).extend(items if fmt == "s3rec" else items[:1])
    return list(seqs.items())


def read_prepared(path: Path, max_users: int | None) -> list[tuple[str, list[str]]]:
    """Users' item id sequences of a dataset written by `shopseq prepare`."""
    from shopseq.data.dataset import load_dataset

    seqs = load_dataset(path).sequences
    n_users = seqs.n_users if max_users is None else min(max_users, seqs.n_users)
    bounds = seqs.offsets
    return [
        (str(seqs.users[u]), [str(i) for i in seqs.item_ids[bounds[u] : bounds[u + 1]]])
        for u in range(n_users)
    ]


def write_atomic(seqs: list[tuple[str, list[str]]], path: Path) -> int:
    """A RecBole .inter file; timestamp = position in the user's sequence, so order is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n_events = 0
    with path.open("w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, items in seqs:
            out.writelines(f"{user}\t{item}\t{pos}\n" for pos, item in enumerate(items))
            n_events += len(items)
    return n_events


def recbole_config(args: argparse.Namespace, data_dir: Path, work: Path) -> dict[str, object]:
    """SASRec at RecBole's defaults except the protocol and the knobs given on the command line."""
    return {
        "data_path": str(data_dir),
        "checkpoint_dir": str(work / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": ["Hit", "NDCG"],
        "topk": [5, 10, 20],
        "valid_metric": "NDCG@10",
        "MAX_ITEM_LIST_LENGTH": 50,
        "hidden_size": 64,
        "n_layers": 2,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": args.train_batch_size,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "seed": args.seed,
        "gpu_id": "",
        "use_gpu": False,
        "show_progress": False,
    }


def run_child(python: Path, work: Path, threads: int | None) -> tuple[float, float, int]:
    """Run the runner in ``work``; returns (wall seconds, peak RSS MiB, exit code)."""
    env = dict(os.environ)
    if threads:
        env.update({v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    cmd = [str(python), "runner.py", "job.json", "result.json"]
    start = time.perf_counter()
    with (work / "console.log").open("w") as console:
        child = subprocess.Popen(cmd, cwd=work, env=env, stdout=console, stderr=console)
        # wait4 gives this child's own peak RSS, not the pip runs' before it
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, child.returncode


def parse_log(text: str) -> list[dict[str, float]]:
    """Per-epoch train/valid seconds, train loss, valid score and whether the epoch was saved
    as the best so far, from RecBole's log."""
    text = ANSI.sub("", text)
    epochs: dict[int, dict[str, float]] = {}
    for m in TRAIN_LINE.finditer(text):
        epochs[int(m[1])] = {"train_seconds": float(m[2]), "train_loss": float(m[3])}
    for m in VALID_LINE.finditer(text):
        following = TRAIN_LINE.search(text, m.end())
        saved = SAVED in text[m.end() : following.start() if following else len(text)]
        epochs.setdefault(int(m[1]), {}).update(
            valid_seconds=float(m[2]), valid_score=float(m[3]), improved=saved
        )
    return [{"epoch": e, **epochs[e]} for e in sorted(epochs)]


def epochs_before_resume(logs: list[Path]) -> list[dict[str, float]]:
    """The epochs an interrupted run's logs record up to its last saved (best) one, which is
    where a resumed run continues, each with its cumulative wall seconds (train + valid)."""
    merged: dict[int, dict[str, float]] = {}
    for log in logs:  # a later segment's epochs replace the ones it replayed
        merged.update({e["epoch"]: e for e in parse_log(log.read_text())})
    epochs = [merged[e] for e in sorted(merged)]
    saved = [i for i, e in enumerate(epochs) if e.get("improved")]
    if not saved:
        sys.exit(f"nothing to resume: no epoch was saved in {', '.join(map(str, logs))}")
    wall = 0.0
    kept = []
    for e in epochs[: saved[-1] + 1]:
        wall += e["train_seconds"] + e.get("valid_seconds", 0.0)
        kept.append({**e, "wall_seconds": wall})
    return kept


def summarise(child: dict, log_epochs: list[dict], wall_s: float, peak_mib: float) -> dict:
    """The benchmark record: speed, accuracy at the best validation epoch, memory."""
    walls = {e["epoch"]: e for e in child.pop("epochs")}
    epochs = [{**e, **walls.get(e["epoch"], {})} for e in log_epochs]
    best = [e for e in epochs if e.get("improved")]
    train_s = [e["train_seconds"] for e in epochs]
    with_valid = [e["train_seconds"] + e.get("valid_seconds", 0.0) for e in epochs]
    return {
        **{k: v for k, v in child.items() if k not in ("valid", "test", "test_recbole_unfiltered")},
        "epochs_run": len(epochs),
        "best_epoch": best[-1]["epoch"] if best else None,
        "seconds_per_epoch": statistics.median(train_s) if train_s else None,
        "seconds_per_epoch_with_valid": statistics.median(with_valid) if with_valid else None,
        "seconds_to_best": best[-1]["wall_seconds"] if best else None,
        "wall_seconds": wall_s,
        "peak_mib": peak_mib,
        "metrics": {"valid": _metric_names(child["valid"]), "test": _metric_names(child["test"])},
        # RecBole's own evaluator on the same checkpoint: seen items are not filtered
        "metrics_recbole_unfiltered": {"test": _metric_names(child["test_recbole_unfiltered"])},
        "epochs": epochs,
    }


def _metric_names(result: dict[str, float]) -> dict[str, float]:
    """RecBole's `hit@10` / `ndcg@10` as shopseq's `HR@10` / `NDCG@10`."""
    names = {"hit": "HR", "ndcg": "NDCG"}
    out = {}
    for key, value in result.items():
        metric, k = key.split("@")
        out[f"{names.get(metric, metric)}@{k}"] = float(value)
    return out


def load_input(args: argparse.Namespace) -> tuple[str, str, list[tuple[str, list[str]]]]:
    """(dataset name, source, sequences) from --dataset, --input or --prepared."""
    if args.prepared:
        path = Path(args.prepared)
        return args.name or path.name, str(path), read_prepared(path, args.max_users)
    if args.input:
        path, fmt, name = Path(args.input), args.format, args.name or Path(args.input).stem
    else:
        rel, fmt = DATASETS[args.dataset]
        path, name = DATA / rel, args.name or args.dataset
    if not path.exists():
        sys.exit(f"{path} not found (set SHOPSEQ_DATA_DIR or pass --input)")
    return name, str(path), read_sequences(path, fmt, args.max_users)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", choices=sorted(DATASETS), default="beauty")
    source.add_argument("--input", help="a sequence file instead of a named dataset")
    source.add_argument("--prepared", help="a dataset directory written by `shopseq prepare`")
    parser.add_argument("--format", choices=("s3rec", "sasrec"), default="s3rec")
    parser.add_argument("--name", help="dataset name in RecBole and the output (default: derived)")
    parser.add_argument("--max-users", type=int, help="keep only the first N users (smoke runs)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--stopping-step", type=int, default=10, help="early-stopping patience")
    parser.add_argument("--train-batch-size", type=int, default=2048, help="RecBole's default")
    parser.add_argument("--seed", type=int, default=2020, help="RecBole's default")
    parser.add_argument(
        "--recbole-valid",
        action="store_true",
        help="select the best epoch with RecBole's own validation, which filters no seen items",
    )
    parser.add_argument("--threads", type=int, help="torch/OpenMP threads (default: torch's)")
    parser.add_argument("--venv", default="/tmp/shopseq-recbole-venv")
    parser.add_argument("--torch-index-url", help="pip index for a CPU torch wheel")
    parser.add_argument("--keep-work", action="store_true", help="keep the temp dir (data, ckpt)")
    parser.add_argument(
        "--resume",
        metavar="WORK_DIR",
        help="continue an interrupted --keep-work run from its best checkpoint; its wall time "
        "counts the earlier epochs' train and valid seconds from its log",
    )
    parser.add_argument("--out", help="JSON path (default: bench-results/recbole-NAME.json)")
    return parser.parse_args(argv)


def new_job(args: argparse.Namespace, work: Path) -> dict:
    """Write the input as RecBole atomic files in ``work``; the child's job description."""
    name, source, seqs = load_input(args)
    n_events = write_atomic(seqs, work / "data" / name / f"{name}.inter")
    job = {"dataset": name, "source": source, "n_events": n_events, "threads": args.threads}
    job["max_users"] = args.max_users
    job["filter_seen"] = not args.recbole_valid
    job["recbole"] = recbole_config(args, work / "data", work)
    job["segments"] = [{"threads": args.threads, "from_epoch": 0}]
    print(f"training RecBole SASRec on {name}: {len(seqs)} users, {n_events} events")
    return job


def resume_job(args: argparse.Namespace, work: Path) -> dict:
    """The job of the interrupted run kept in ``work``, continued from its best checkpoint."""
    job = json.loads((work / "job.json").read_text())
    inter = work / "data" / job["dataset"] / f"{job['dataset']}.inter"
    job.setdefault("source", str(inter))  # jobs written before --resume existed lack these
    job.setdefault("n_events", sum(1 for _ in inter.open()) - 1)
    prior = epochs_before_resume(sorted((work / "log").glob("**/*.log")))
    checkpoints = sorted((work / "saved").glob("*.pth"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        sys.exit(f"nothing to resume: no checkpoint in {work / 'saved'}")
    threads = args.threads or job["threads"]
    from_epoch = prior[-1]["epoch"] + 1
    job["segments"] = [
        *job.get("segments", [{"threads": job["threads"], "from_epoch": 0}]),
        {"threads": threads, "from_epoch": from_epoch},
    ]
    job.update(resume=str(checkpoints[-1]), prior_seconds=prior[-1]["wall_seconds"])
    job.update(prior_epochs=prior, threads=threads)
    print(f"resuming RecBole SASRec on {job['dataset']} at epoch {from_epoch} from {work}")
    return job


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from shopseq.tables import format_table

    python = ensure_venv(Path(args.venv), args.torch_index_url)
    work = Path(args.resume) if args.resume else Path(tempfile.mkdtemp(prefix="shopseq-recbole-"))
    try:
        job = resume_job(args, work) if args.resume else new_job(args, work)
        name = job["dataset"]
        out = Path(args.out or ROOT / "bench-results" / f"recbole-{name}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        (work / "job.json").write_text(json.dumps(job))
        (work / "runner.py").write_text(RUNNER)
        earlier_logs = sorted((work / "log").glob("**/*.log"))
        if (work / "console.log").exists():  # an earlier segment's console output is kept
            (work / "console.log").rename(work / f"console.{len(earlier_logs)}.log")
        wall_s, peak_mib, code = run_child(python, work, job["threads"])
        logs = sorted((work / "log").glob("**/*.log"))
        new_logs = [log for log in logs if log not in earlier_logs]
        out.with_suffix(".log").write_text("".join(log.read_text() for log in logs))
        shutil.copy(work / "console.log", out.with_suffix(".console.log"))
        if code != 0:
            sys.exit(f"RecBole failed (exit {code}); see {out.with_suffix('.console.log')}")
        child = json.loads((work / "result.json").read_text())
        log_epochs = [
            *job.get("prior_epochs", []),
            *(parse_log(new_logs[-1].read_text()) if new_logs else []),
        ]
    finally:
        if args.keep_work or args.resume:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    freeze = _run([str(python), "-m", "pip", "freeze"], capture=True).split()
    record = {
        "model": "RecBole SASRec",
        "dataset": name,
        "source": job["source"],
        "n_events": job["n_events"],
        "best_epoch_by": "RecBole's valid NDCG@10 (seen items not filtered)"
        if args.recbole_valid
        else "valid NDCG@10, seen items filtered",
        "max_users": job.get("max_users"),
        "threads": job["threads"],
        # one per run of the child; a resumed run continues from its last best checkpoint
        "segments": job["segments"],
        "packages": freeze,
        "log": str(out.with_suffix(".log")),
        **summarise(child, log_epochs, job.get("prior_seconds", 0.0) + wall_s, peak_mib),
    }
    out.write_text(json.dumps(record, indent=2))
    test = record["metrics"]["test"]
    row = {
        "dataset": name,
        "users": record["n_users"],
        "items": record["n_items"],
        "train samples": record["n_train_samples"],
        "epochs": record["epochs_run"],
        "best": record["best_epoch"],
        "s/epoch": record["seconds_per_epoch"],
        "s to best": record["seconds_to_best"],
        "HR@10": test.get("HR@10"),
        "NDCG@10": test.get("NDCG@10"),
        "NDCG@10 unfiltered": record["metrics_recbole_unfiltered"]["test"].get("NDCG@10"),
        "peak MiB": round(peak_mib),
    }
    print(format_table([row], COLUMNS))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
