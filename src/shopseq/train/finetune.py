"""Fine-tune a pretrained run on one task, fully or with a `peft` method; metrics before and after.

    metrics = finetune("runs/base", ds, "purchase", "lora", cfg, "runs/purchase-lora")
    model, cfg = load_finetuned("runs/purchase-lora")

Yes/no tasks (purchase, churn) train a binary head on the users labelled at the train cut-off
and are reported at the test cut-off (:mod:`shopseq.train.task_examples`); users held out at the
train cut-off pick the epoch (:func:`shopseq.train.finetune_loop.fit_epochs`).
Sequence tasks (next-item, next-behavior) train on the valid phase's training windows, as
``train`` does, and are selected on the valid phase and reported on the test phase.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from shopseq.config import FinetuneConfig, PeftMethod, RunConfig, Task, load_config, save_config
from shopseq.data.batching import Batch
from shopseq.data.dataset import Dataset
from shopseq.data.sequences import resolve_cutoffs
from shopseq.errors import ShopseqInputError
from shopseq.evaluate import classification as clf
from shopseq.models.behavior_model import BehaviorModel
from shopseq.models.item_text import spared_items
from shopseq.models.task_heads import BinaryHead, binary_loss
from shopseq.train import loop, optim, windows
from shopseq.train.finetune_loop import fit_epochs, peak_rss_mb, reset_peak_rss
from shopseq.train.peft import adapter_state, apply_peft, load_adapter, trainable_summary
from shopseq.train.task_examples import (
    BINARY_TASKS,
    Examples,
    binary_examples,
    report,
    user_batch,
    user_batches,
)

SELECT_METRIC = {
    "next-item": "NDCG@10",
    "next-behavior": "macro_f1",
    "purchase": "roc_auc",
    "churn": "roc_auc",
}
ADAPTER_DIR = "adapter"
TASK_TENSORS = "task.safetensors"  # our trainable tensors beside the peft adapter
FINETUNE_FILE = "finetune.json"
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


# ---------------------------------------------------------------- scoring


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


# ---------------------------------------------------------------- fine-tuning per task kind


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
        tc, seqs, ds.vocab.n_tokens, generator, spared_items(ds, seqs, base.cfg)
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
    task: Task,
    peft: PeftMethod,
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
