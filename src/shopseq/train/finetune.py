"""Fine-tune a pretrained run on one task, fully or with a `peft` method; metrics before and after.

    metrics = finetune("runs/base", ds, "purchase", "lora", cfg, "runs/purchase-lora")
    model, cfg = load_finetuned("runs/purchase-lora")

Yes/no tasks (purchase, churn) are labelled per user at two global cut-offs of the temporal
split: the train cut-off (the valid cut-off) and the test cut-off. Inputs are a user's events
strictly before the cut-off; train labels read only events before the test cut-off, so nothing
of the test period reaches training. Users held out at the train cut-off pick the epoch.
Sequence tasks (next-item, next-behavior) train on the valid phase's training windows, as
``train`` does, and are selected on the valid phase and reported on the test phase.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from shopseq.config import FinetuneConfig, RunConfig, load_config, save_config
from shopseq.data.batching import Batch, history_batch
from shopseq.data.dataset import Dataset
from shopseq.data.labels import churn_labels, history_ends, purchase_labels
from shopseq.data.sequences import resolve_cutoffs, truncate
from shopseq.errors import ShopseqInputError
from shopseq.evaluate import classification as clf
from shopseq.models.behavior_model import BehaviorModel, append_mask_slot
from shopseq.models.task_heads import BinaryHead, binary_loss
from shopseq.train import loop, optim, windows
from shopseq.train.peft import adapter_state, apply_peft, load_adapter, trainable_summary

TASKS = ("next-item", "next-behavior", "purchase", "churn")
BINARY_TASKS = ("purchase", "churn")
SELECT_METRIC = {
    "next-item": "NDCG@10",
    "next-behavior": "macro_f1",
    "purchase": "roc_auc",
    "churn": "roc_auc",
}
ADAPTER_DIR = "adapter"
TASK_TENSORS = "task.safetensors"  # our trainable tensors beside the peft adapter
FINETUNE_FILE = "finetune.json"
HOUR_MS = 3_600_000
log = logging.getLogger(__name__)


class TaskModel(nn.Module):
    """A pretrained BehaviorModel plus, for yes/no tasks, a binary head on its last state."""

    def __init__(self, base: BehaviorModel, task: str) -> None:
        super().__init__()
        self.base = base
        binary = task in BINARY_TASKS
        self.task_head = BinaryHead(base.cfg.d_model, base.cfg.dropout) if binary else None

    def forward(self, batch: Batch) -> torch.Tensor:
        """[B] yes/no logits read at the cut-off slot of :func:`user_batch` (binary tasks)."""
        assert self.task_head is not None
        return self.task_head(self.base(batch)[:, -1])  # [B]


@dataclass(frozen=True)
class Examples:
    """Users labelled at one cut-off: their input history ends and their labels."""

    users: np.ndarray  # [n] user index
    ends: np.ndarray  # [n] exclusive event index: inputs are events before the cut-off
    labels: np.ndarray  # [n] int8
    cutoff: int  # ms

    def take(self, rows: np.ndarray) -> Examples:
        return Examples(self.users[rows], self.ends[rows], self.labels[rows], self.cutoff)


def user_batch(ds: Dataset, ex: Examples, rows: np.ndarray, max_len: int) -> Batch:
    """Rows' last ``max_len`` events before the cut-off, then a cut-off slot to predict from.

    The slot is a MASK event stamped with the cut-off, so the time since the user's last
    event (recency, the strongest purchase/churn signal) reaches the model through its
    time-gap embedding; a causal model's state there has read the whole window.
    """
    batch = append_mask_slot(history_batch(ds.sequences, ex.users[rows], ex.ends[rows], max_len))
    stamps = batch.timestamps.clone()
    stamps[:, -1] = ex.cutoff
    return replace(batch, timestamps=stamps)


# ---------------------------------------------------------------- labels


def binary_examples(ds: Dataset, task: str, ft: FinetuneConfig) -> dict[str, Examples]:
    """{"fit", "holdout", "test"} examples of a yes/no task on a temporal split."""
    if ds.spec.kind != "temporal":
        raise ShopseqInputError(
            f"task '{task}' is labelled at global cut-offs: prepare the dataset with a temporal "
            f"split, not '{ds.spec.kind}'"
        )
    train_cut, test_cut = resolve_cutoffs(ds.sequences, ds.spec)
    train = labelled(ds, task, ft, train_cut, label_end=test_cut)
    test = labelled(ds, task, ft, test_cut, label_end=None)
    holdout = stratified_holdout(train.labels, ft.holdout_share, np.random.default_rng(ft.seed))
    parts = {"fit": train.take(np.flatnonzero(~holdout)), "holdout": train.take(holdout)}
    parts["test"] = test
    for name, part in parts.items():
        if np.unique(part.labels).size < 2:
            raise ShopseqInputError(
                f"task '{task}': the {name} examples have one class only "
                f"({len(part.labels)} users); change the horizon or the cut-offs"
            )
    return parts


def stratified_holdout(labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """[n] bool: a random ``share`` of each class (at least one row of each) held out."""
    holdout = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        holdout[rows[: max(1, round(share * len(rows)))]] = True
    return holdout


def labelled(
    ds: Dataset, task: str, ft: FinetuneConfig, cutoff: int, label_end: int | None
) -> Examples:
    """Users active before ``cutoff`` with labels read from ``[cutoff, label_end)`` only."""
    seqs = ds.sequences
    if label_end is not None:  # labels must not read the test period
        seqs = truncate(seqs, history_ends(seqs, label_end))
    if task == "purchase":
        horizon = {"horizon_events": ft.horizon_events} if ft.horizon_events > 0 else {}
        users, labels = purchase_labels(
            seqs,
            cutoff,
            buy_behavior_id=ds.vocab.behavior_id("buy"),
            horizon_ms=None if horizon else round(ft.horizon_hours * HOUR_MS),
            time_unit=ds.time_unit,
            log_end=label_end,
            **horizon,
        )
    elif task == "churn":
        horizon_ms = round(ft.churn_days * 24 * HOUR_MS)
        users, labels = churn_labels(
            seqs, cutoff, horizon_ms, time_unit=ds.time_unit, log_end=label_end
        )
    else:
        raise ShopseqInputError(f"task '{task}' is not a yes/no task ({', '.join(BINARY_TASKS)})")
    ends = history_ends(ds.sequences, cutoff)[users]
    return Examples(users, ends, labels, cutoff)


# ---------------------------------------------------------------- scoring


def user_batches(ds: Dataset, ex: Examples, max_len: int, size: int) -> Iterator[np.ndarray]:
    """Row indices of ``ex`` in batches of similar history length (in a fixed order)."""
    order = np.argsort(ex.ends - ds.sequences.offsets[ex.users], kind="stable")
    yield from (order[i : i + size] for i in range(0, len(order), size))


def frozen_states(model: TaskModel, ds: Dataset, ex: Examples, size: int = 512) -> np.ndarray:
    """[n, D] last states of the base model, layer-normalised (what the head's norm sees)."""
    out = np.zeros((len(ex.users), model.base.cfg.d_model), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for rows in user_batches(ds, ex, model.base.max_len, size):
            h = model.base(user_batch(ds, ex, rows, model.base.max_len))[:, -1]
            out[rows] = torch.nn.functional.layer_norm(h, h.shape[-1:]).numpy()
    return out


def binary_probs(model: TaskModel, ds: Dataset, ex: Examples, size: int = 512) -> np.ndarray:
    """[n] predicted probabilities of the yes/no task."""
    out = np.zeros(len(ex.users))
    model.eval()
    with torch.no_grad():
        for rows in user_batches(ds, ex, model.base.max_len, size):
            out[rows] = (
                torch.sigmoid(model(user_batch(ds, ex, rows, model.base.max_len))).double().numpy()
            )
    return out


def report(
    probs_holdout: np.ndarray, probs_test: np.ndarray, parts: dict[str, Examples]
) -> dict[str, Any]:
    """Test report with the F1 threshold tuned on the holdout users."""
    threshold = clf.best_f1_threshold(probs_holdout, parts["holdout"].labels)
    result = clf.binary_report(probs_test, parts["test"].labels, threshold)
    result["valid_roc_auc"] = clf.roc_auc(probs_holdout, parts["holdout"].labels)
    return result


def probe_before(model: TaskModel, ds: Dataset, parts: dict[str, Examples]) -> dict[str, Any]:
    """The metric before fine-tuning: a logistic probe on frozen base states.

    The probe then becomes the task head's starting point.
    """
    from sklearn.linear_model import LogisticRegression

    states = {name: frozen_states(model, ds, ex) for name, ex in parts.items()}
    probe = LogisticRegression(max_iter=1000).fit(states["fit"], parts["fit"].labels)
    probs = {name: probe.predict_proba(x)[:, 1] for name, x in states.items()}
    assert model.task_head is not None
    model.task_head.init_from_probe(torch.from_numpy(probe.coef_[0]).float(), probe.intercept_[0])
    return {"kind": "logistic probe on frozen base states"} | report(
        probs["holdout"], probs["test"], parts
    )


# ---------------------------------------------------------------- the fine-tuning loop


def fit_epochs(
    model: nn.Module,
    ft: FinetuneConfig,
    batches: Callable[[], list[Any]],
    loss_of: Callable[[Any], torch.Tensor],
    validate: Callable[[], float],
    progress: bool,
    start_competes: bool = True,
) -> dict[str, Any]:
    """AdamW over the trainable parameters, early-stopped on ``validate`` (higher is better).

    The best epoch's trainable weights are restored. Epoch 0 (the starting point) competes too,
    so fine-tuning that only hurts on validation is undone (best_epoch 0) -- unless
    ``start_competes`` is False (a randomly initialised head is no starting point to keep).
    """
    from tqdm.auto import tqdm

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=ft.lr, weight_decay=ft.weight_decay)
    start = validate()
    best, best_epoch, bad = (start if start_competes else float("-inf")), 0, 0
    history: list[dict[str, float]] = [{"epoch": 0, "valid": start}]
    best_state = trainable_state(model)
    for epoch in range(1, ft.epochs + 1):
        tick = time.perf_counter()
        model.train()
        losses = []
        for item in tqdm(batches(), desc=f"finetune {epoch}", disable=not progress, leave=False):
            loss = loss_of(item)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(loss.item())
        score = validate()
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid": score})
        history[-1]["seconds"] = time.perf_counter() - tick
        log.info(f"finetune epoch {epoch}: loss {history[-1]['loss']:.4f} valid {score:.4f}")
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = trainable_state(model)
        else:
            bad += 1
            if bad >= ft.patience:
                break
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in best_state:
                p.copy_(best_state[name])
    return {"best_valid": best, "best_epoch": best_epoch, "history": history}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters by name (shared tensors once)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def run_binary(
    model: TaskModel,
    ds: Dataset,
    task: str,
    ft: FinetuneConfig,
    apply: Callable[[], None],
    progress: bool,
) -> dict[str, Any]:
    """purchase / churn: probe (before), then fine-tune the head (+ backbone or adapter)."""
    parts = binary_examples(ds, task, ft)
    before = probe_before(model, ds, parts)
    apply()
    rng = np.random.default_rng(ft.seed)
    fit_ex, max_len = parts["fit"], model.base.max_len
    lengths = fit_ex.ends - ds.sequences.offsets[fit_ex.users]

    def loss_of(rows: np.ndarray) -> torch.Tensor:
        batch = user_batch(ds, fit_ex, rows, max_len)
        return binary_loss(model(batch), torch.from_numpy(fit_ex.labels[rows]))

    def validate() -> float:
        return clf.roc_auc(binary_probs(model, ds, parts["holdout"]), parts["holdout"].labels)

    fit = fit_epochs(
        model,
        ft,
        lambda: windows.bucketed_batches(lengths, ft.batch_size, rng),
        loss_of,
        validate,
        progress,
    )
    after = report(
        binary_probs(model, ds, parts["holdout"]), binary_probs(model, ds, parts["test"]), parts
    )
    counts = {
        name: {"n": len(ex.labels), "positives": int(ex.labels.sum())} for name, ex in parts.items()
    }
    return {"before": before, "after": after, "examples": counts} | fit


def run_sequence(
    model: TaskModel,
    ds: Dataset,
    task: str,
    cfg: RunConfig,
    apply: Callable[[], None],
    progress: bool,
) -> dict[str, Any]:
    """next-item / next-behavior: the pretraining windows with one loss switched on."""
    from shopseq.evaluate.runner import evaluate_phase

    base = model.base
    item = task == "next-item"
    tc = replace(cfg.train, item_weight=float(item), behavior_weight=float(not item))

    def measure(phase: str) -> dict[str, Any]:
        if item:
            return evaluate_phase(base, ds, phase, batch_size=tc.eval_batch_size, progress=False)
        return loop.evaluate_behavior(base, ds, phase, tc.eval_batch_size)

    trained_head = item or cfg.train.behavior_weight > 0
    before = {"kind": "zero-shot" if trained_head else "untrained behaviour head"}
    before |= measure("test")
    apply()
    seqs = ds.train_sequences("valid")
    span = base.cfg.max_len + 1 if base.causal else base.cfg.max_len
    starts, ends = windows.training_windows(seqs, span, span - 1 if base.causal else span, True)
    generator = torch.Generator().manual_seed(cfg.finetune.seed)
    rng = np.random.default_rng(cfg.finetune.seed)
    sampler = optim.make_sampler(
        tc, seqs, ds.vocab.n_tokens, generator, text_items=base.cfg.item_text != "none"
    )

    def loss_of(rows: np.ndarray) -> torch.Tensor:
        tb = windows.make_train_batch(
            seqs, starts[rows], ends[rows], base.causal, tc.mask_prob, generator
        )
        return optim.batch_loss(base, tb, tc, sampler)

    def validate() -> float:
        return float(measure("valid")[SELECT_METRIC[task]])

    ft = cfg.finetune
    fit = fit_epochs(
        model,
        ft,
        lambda: windows.bucketed_batches(ends - starts, ft.batch_size, rng),
        loss_of,
        validate,
        progress,
    )
    return {"before": before, "after": measure("test")} | fit


# ---------------------------------------------------------------- entry points


def finetune(
    base_run: str | Path,
    ds: Dataset,
    task: str,
    peft: str,
    cfg: RunConfig,
    out_dir: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Adapt the base run to ``task`` with ``peft`` (none = full fine-tuning); write a run dir.

    ``cfg.finetune`` sets the method's knobs, horizons and optimisation (``task``/``peft``
    given here win); the model comes from ``base_run``. Writes config.json, vocab.json,
    finetune.json, metrics.json and either model.safetensors (full) or adapter/ (peft files +
    task.safetensors: the small part to ship per task). Returns the metrics (before and after).
    """
    if task not in TASKS:
        raise ShopseqInputError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}")
    ft = replace(cfg.finetune, task=task, peft=peft)
    torch.set_num_threads(cfg.train.num_threads)
    torch.manual_seed(ft.seed)
    base, base_cfg = loop.load_run(base_run)
    run_cfg = replace(base_cfg, finetune=ft)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = TaskModel(base, task)
    summary: dict[str, Any] = {}

    def apply() -> None:
        apply_peft(base, peft, ft)
        summary.update(trainable_summary(model))
        log.info(
            f"{peft}: {summary['trainable_params']:,} trainable of {summary['total_params']:,} "
            f"parameters ({100 * summary['trainable_share']:.2f}%)"
        )

    reset_peak_rss()
    tick = time.perf_counter()
    if task in BINARY_TASKS:
        result = run_binary(model, ds, task, ft, apply, progress)
    else:
        result = run_sequence(model, ds, task, run_cfg, apply, progress)
    metrics = {"task": task, "peft": peft, "select_metric": SELECT_METRIC[task]} | summary
    metrics |= {"train_seconds": time.perf_counter() - tick, "peak_rss_mb": peak_rss_mb()}
    metrics |= result
    if task in BINARY_TASKS:
        metrics["cutoffs_ms"] = dict(
            zip(("train", "test"), resolve_cutoffs(ds.sequences, ds.spec), strict=True)
        )
    save_config(run_cfg, out / loop.CONFIG_FILE)
    shutil.copyfile(Path(base_run) / loop.VOCAB_FILE, out / loop.VOCAB_FILE)
    (out / FINETUNE_FILE).write_text(
        json.dumps({"base_run": str(Path(base_run).resolve()), "task": task, "peft": peft})
    )
    save_finetuned(model, out)
    (out / loop.METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    return metrics


def save_finetuned(model: TaskModel, out: Path) -> None:
    """Full fine-tuning: the whole model; peft: adapter/ = peft adapter + our trainable tensors."""
    adapter = adapter_state(model.base)
    if adapter is None:
        save_model(model, str(out / loop.MODEL_FILE))
        return
    adapter.save_pretrained(str(out / ADAPTER_DIR))
    ours = {
        name: p.detach().contiguous()
        for name, p in model.named_parameters()
        if p.requires_grad and not name.startswith("base.backbone.")
    }
    save_file(ours, str(out / ADAPTER_DIR / TASK_TENSORS))


def load_finetuned(run_dir: str | Path) -> tuple[TaskModel, RunConfig]:
    """A fine-tuned run (eval mode): its base run with the adapter (or full weights) applied."""
    root = Path(run_dir)
    info = json.loads((root / FINETUNE_FILE).read_text())
    cfg = load_config(root / loop.CONFIG_FILE)
    base, _ = loop.load_run(info["base_run"])
    model = TaskModel(base, info["task"])
    if info["peft"] == "none":
        load_model(model, str(root / loop.MODEL_FILE))
    else:
        load_adapter(base, str(root / ADAPTER_DIR))
        missing, unexpected = model.load_state_dict(
            load_file(str(root / ADAPTER_DIR / TASK_TENSORS)), strict=False
        )
        if unexpected:
            raise ShopseqInputError(f"{root}: unexpected tensors in {TASK_TENSORS}: {unexpected}")
    return model.eval(), cfg


def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS counter (Linux), so the peak covers fine-tuning alone."""
    with contextlib.suppress(OSError):  # elsewhere the peak is the process's since start
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """Peak resident memory in MiB since :func:`reset_peak_rss` (or since the process began)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
