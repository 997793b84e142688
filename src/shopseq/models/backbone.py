"""A `transformers` backbone built from scratch (no download), fed our event tokens.

Any HF model type works by name (``gpt2``, ``llama``, ``mistral``, ``bert``, ...): the generic
size keys below are set on its config wherever the config has them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shopseq.config import ModelConfig
from shopseq.errors import ShopseqInputError
from shopseq.models.embedding import positions


def backbone_config(cfg: ModelConfig) -> Any:
    """The HF config of ``cfg.arch`` sized by ``cfg`` (keys a config lacks are skipped)."""
    from transformers import AutoConfig

    try:
        hf = AutoConfig.for_model(cfg.arch)
    except ValueError:
        raise ShopseqInputError(
            f"model.arch '{cfg.arch}' is not a transformers model type (try gpt2, llama, bert)"
        ) from None
    if cfg.d_model % cfg.n_heads:
        raise ShopseqInputError(
            f"model.d_model ({cfg.d_model}) must be divisible by model.n_heads ({cfg.n_heads})"
        )
    d_ff = cfg.d_ff or 4 * cfg.d_model
    sizes: dict[str, Any] = {
        "hidden_size": cfg.d_model,
        "n_embd": cfg.d_model,
        "num_hidden_layers": cfg.n_layers,
        "n_layer": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "n_head": cfg.n_heads,
        "num_key_value_heads": cfg.n_heads,
        "head_dim": cfg.d_model // cfg.n_heads,
        "intermediate_size": d_ff,
        "n_inner": d_ff,
        "max_position_embeddings": cfg.max_len + 1,
        "n_positions": cfg.max_len + 1,
        "vocab_size": 2,  # token ids are never fed: we pass inputs_embeds
        "pad_token_id": 0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "initializer_range": cfg.init_std,
        # dropout under every name the common architectures use
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": 0.0,  # our EventEmbedding applies input dropout
        "attn_pdrop": cfg.dropout,
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.dropout,
        "attention_dropout": cfg.dropout,
        "hidden_dropout": cfg.dropout,
        "use_cache": False,
    }
    for key, value in sizes.items():
        if hasattr(hf, key):
            setattr(hf, key, value)
    return hf


class Backbone(nn.Module):
    """[B, T, D] event tokens + [B, T] padding mask -> [B, T, D] contextual states."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from transformers import AutoModel

        self.causal = cfg.causal
        try:
            self.model = AutoModel.from_config(
                backbone_config(cfg), attn_implementation=cfg.attention
            )
        except (ValueError, ImportError) as e:
            first = str(e).split(". ")[0]
            raise ShopseqInputError(f"model.attention '{cfg.attention}': {first}") from None
        # The backbone's own token/position tables are unused (EventEmbedding does that job):
        # zero and freeze them so they neither add signal nor take optimiser steps.
        for module in self.model.modules():
            if isinstance(module, nn.Embedding):
                nn.init.zeros_(module.weight)
                module.weight.requires_grad_(False)

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor, causal_pass: bool = False
    ) -> torch.Tensor:
        """``causal_pass``: run a bidirectional backbone under a causal mask (objective both)."""
        mask: torch.Tensor = (~padding_mask).long()  # [B, T] 1 = attend
        if causal_pass and not self.causal:
            # [B, 1, T, T] used as given: additive (0 or the dtype's min), the one form that
            # every attention kernel reads alike (eager would add a bool mask as 0/1)
            allowed = causal_attention_mask(padding_mask)
            blocked = torch.finfo(x.dtype).min
            mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(~allowed, blocked)
        out = self.model(
            inputs_embeds=x,  # [B, T, D]
            attention_mask=mask,
            position_ids=positions(padding_mask),  # rotary archs need real positions
        )
        return out.last_hidden_state  # [B, T, D]


def causal_attention_mask(padding_mask: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, T] bool, True = attend: real keys at or before the query.

    Each position also sees itself, so a left-padding query has one key instead of none
    (no NaN); padding states are never trained or read.
    """
    t = padding_mask.shape[1]
    earlier = torch.ones(t, t, dtype=torch.bool, device=padding_mask.device).tril()  # [T, T]
    allowed = earlier[None] & ~padding_mask[:, None, :]  # [B, T, T]
    allowed |= torch.eye(t, dtype=torch.bool, device=padding_mask.device)[None]
    return allowed[:, None]
