"""LoRA-tune the pretrained sentence encoder on behaviour, then embed item text with it.

Shoppers' consecutive items are pairs (a, b); the encoder learns to place b's title nearest
a's among the other titles of a batch (in-batch softmax over cosine similarities, as
sentence-transformers' MultipleNegativesRankingLoss). Only LoRA matrices train, so the result
is a small adapter beside the shared MiniLM weights:

    pairs = next_item_pairs(ds.train_sequences("valid"), texts)      # [P, 2] item ids
    tune_text_encoder(pairs, texts, TextTuneConfig(), out_dir)        # out_dir/adapter_*
    encoder = load_tuned_encoder(out_dir)                             # shopseq.models.text

Pairs come from a phase's training inputs only, so tuning never reads a valid/test target.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from shopseq.config import TextTuneConfig
from shopseq.data.sequences import Sequences
from shopseq.errors import ShopseqInputError

log = logging.getLogger(__name__)

TUNING_FILE = "text_tuning.json"
BERT_LORA_TARGETS = ["query", "key", "value"]


def next_item_pairs(seqs: Sequences, texts: Sequence[str]) -> np.ndarray:
    """[P, 2] distinct (item, next item) id pairs of consecutive events, both items with text.

    ``texts`` [n_tokens] per item id ('' = none). Consecutive = same user, adjacent positions.
    """
    has_text = np.array([bool(text.strip()) for text in texts])
    items = seqs.item_ids
    has_next = np.ones(len(items), dtype=bool)
    ends = seqs.offsets[1:]
    has_next[ends[ends > 0] - 1] = False  # a user's last event has no next one
    left = np.flatnonzero(has_next)
    a, b = items[left], items[left + 1]
    keep = (a != b) & has_text[a] & has_text[b]
    pairs = np.stack([a[keep], b[keep]], axis=1).astype(np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def split_pairs(
    pairs: np.ndarray, cfg: TextTuneConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(training pairs, held-out pairs): a seeded shuffle, at most ``max_pairs`` for training."""
    if len(pairs) < 2 * cfg.batch_size:
        raise ShopseqInputError(
            f"tuning the text encoder needs at least {2 * cfg.batch_size} pairs of consecutive "
            f"titled items; this dataset has {len(pairs)}"
        )
    order = rng.permutation(len(pairs))
    n_hold = min(cfg.holdout_pairs, len(pairs) // 5)
    return pairs[order[n_hold : n_hold + cfg.max_pairs]], pairs[order[:n_hold]]


def in_batch_loss(a: torch.Tensor, b: torch.Tensor, same: torch.Tensor, scale: float) -> Any:
    """(loss, top-1 accuracy): a [B, D], b [B, D] unit vectors; row i's answer is b[i].

    ``same`` [B, B] bool marks other rows holding the very same answer item: not a negative.
    """
    logits = scale * (a @ b.T)  # [B, B]
    logits = logits.masked_fill(same & ~torch.eye(len(a), dtype=torch.bool), float("-inf"))
    labels = torch.arange(len(a))
    return F.cross_entropy(logits, labels), (logits.argmax(1) == labels).float().mean()


class PairEncoder:
    """Texts by item id, tokenised per batch and embedded by a (LoRA-wrapped) encoder.

    Tokenising 2 x 32 short titles costs little beside a MiniLM forward and backward pass."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.texts = texts
        self.max_tokens = max_tokens

    def __call__(self, model: torch.nn.Module, ids: np.ndarray) -> torch.Tensor:
        from shopseq.models.text import mean_pool

        encoded = self.tokenizer(
            [self.texts[i] for i in ids.tolist()],
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        states = model(**encoded).last_hidden_state
        return mean_pool(states, encoded["attention_mask"])


def evaluate_pairs(
    model: torch.nn.Module, embed: PairEncoder, pairs: np.ndarray, cfg: TextTuneConfig
) -> dict[str, float]:
    """Mean in-batch loss and top-1 accuracy over ``pairs`` in fixed batches (no dropout)."""
    model.eval()
    losses, accs = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), cfg.batch_size):
            batch = pairs[start : start + cfg.batch_size]
            loss, acc = step_loss(model, embed, batch, cfg)
            losses.append(float(loss))
            accs.append(float(acc))
    model.train()
    return {"loss": float(np.mean(losses)), "top1": float(np.mean(accs))}


def step_loss(
    model: torch.nn.Module, embed: PairEncoder, batch: np.ndarray, cfg: TextTuneConfig
) -> Any:
    same = torch.from_numpy(batch[:, 1][:, None] == batch[:, 1][None, :])
    return in_batch_loss(embed(model, batch[:, 0]), embed(model, batch[:, 1]), same, cfg.scale)


def tune_text_encoder(
    pairs: np.ndarray,
    texts: Sequence[str],
    cfg: TextTuneConfig,
    out_dir: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """LoRA-tune on ``pairs`` [P, 2] of ids into ``texts``; the best adapter lands in ``out_dir``.

    Keeps the adapter with the lowest held-out loss (checked every ``eval_every`` steps) and
    writes ``text_tuning.json`` (config, trainable share, held-out loss/top-1 before and after).
    """
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    from shopseq.models.text import load_text_encoder

    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train_pairs, held = split_pairs(pairs, cfg, rng)
    tokenizer, base = load_text_encoder()
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=BERT_LORA_TARGETS,
    )
    model = get_peft_model(base, lora)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    embed = PairEncoder(tokenizer, texts, cfg.max_tokens)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    before = evaluate_pairs(model, embed, held, cfg)
    best, best_step, history = before["loss"], 0, []
    model.save_pretrained(str(out))  # step 0 = the untuned encoder, until a step beats it
    tick = time.perf_counter()
    bar = tqdm(range(1, cfg.steps + 1), desc="tune text encoder", disable=not progress)
    for step in bar:
        rows = rng.integers(0, len(train_pairs), cfg.batch_size)
        loss, _ = step_loss(model, embed, train_pairs[rows], cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            held_metrics = evaluate_pairs(model, embed, held, cfg)
            history.append({"step": step, **held_metrics})
            log.info(f"step {step}: held-out loss {held_metrics['loss']:.4f}")
            if held_metrics["loss"] < best:
                best, best_step = held_metrics["loss"], step
                model.save_pretrained(str(out))
    result = {
        "config": asdict(cfg),
        "pairs": {"train": len(train_pairs), "held_out": len(held)},
        "trainable_params": trainable,
        "trainable_share": trainable / total,
        "before": before,
        "best_step": best_step,
        "after": next((h for h in history if h["step"] == best_step), before),
        "history": history,
        "seconds": time.perf_counter() - tick,
    }
    (out / TUNING_FILE).write_text(json.dumps(result, indent=2))
    return result
