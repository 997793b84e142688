"""Early-stopped fine-tuning epochs and the peak memory they cost (finetune, text_classifier).

fit = fit_epochs(model, cfg.finetune, batches, loss_of, validate, progress)
# {"best_valid", "best_epoch", "history"}; the best epoch's trainable weights are restored
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shopseq.config import FinetuneConfig

log = logging.getLogger(__name__)


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
