"""Checkpoints without pickle: the last training state of a run (weights, optimiser moments, RNG
states) as safetensors and its scalars (loop state, param groups, numpy RNG) as JSON, so
``train(..., resume=True)`` continues exactly where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

MODEL_FILE = "model.safetensors"  # the weights, in a run dir and in its checkpoint dir
EMA_FILE = "ema.safetensors"  # their moving average (train.ema_decay > 0), checkpoint dir only


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rng: np.random.Generator,
    state: dict[str, Any],
    ema: torch.nn.Module | None = None,
) -> None:
    """Last state: weights (and their moving average), optimiser moments and RNG states as
    safetensors, scalars as JSON."""
    path.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path / MODEL_FILE))
    if ema is not None:
        save_model(ema, str(path / EMA_FILE))
    opt = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value.detach().reshape(-1) if value.ndim == 0 else value
        for index, slots in opt["state"].items()
        for name, value in slots.items()
    }
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(path / "optimizer.safetensors"))
    scalars = {
        "state": state,
        "param_groups": opt["param_groups"],
        "numpy": rng.bit_generator.state,
    }
    (path / "state.json").write_text(json.dumps(scalars))


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rng: np.random.Generator,
    ema: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote; returns the loop state."""
    load_model(model, str(path / MODEL_FILE))
    if ema is not None:
        load_model(ema, str(path / EMA_FILE))
    tensors = load_file(str(path / "optimizer.safetensors"))
    scalars = json.loads((path / "state.json").read_text())
    generator.set_state(tensors.pop("rng.generator"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        slots.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict({"state": slots, "param_groups": scalars["param_groups"]})
    rng.bit_generator.state = scalars["numpy"]
    state: dict[str, Any] = scalars["state"]
    return state
