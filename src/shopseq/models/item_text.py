"""Items with side features: the pretrained sentence embedding of each item's title and/or its
attributes (brand, categories), projected into the model.

    table = dataset_item_text(events, ds.vocab, cache)  # [n_tokens, 384], cached safetensors
    run = train(ds, load_config(path, ["model.item_text=add"]), out, item_text=table)
    model, cfg = load_run(out)  # the table is kept in the run dir: no encoder needed

The side table [n_tokens, F] is the text embedding columns (``model.item_text`` add/only),
then the attribute columns (``model.item_attributes``: row-normalised multi-hot, so its
projection is the mean of one learned vector per attribute); ``side_table`` builds it.
``model.item_text`` picks the item representation (it is also the tied next-item head):
``none``/``add`` ID embedding (+ Linear(side)); ``only`` Linear(side) alone, so an item never
seen in training but with a title or attributes gets a real score.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from shopseq.config import ModelConfig
from shopseq.data.dataset import Dataset
from shopseq.data.schema import ATTRIBUTE_SEP, ATTRIBUTES, ITEM, N_SPECIAL, PAD, TITLE
from shopseq.data.sequences import Phase, Sequences
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError

ITEM_TEXT_FILE = "item_text.safetensors"
TABLE_TENSOR = "item_text"


def item_titles(events: pl.DataFrame) -> dict[str, str]:
    """{raw item id: text} from an EventLog's ``title`` column (first non-empty per item)."""
    if TITLE not in events.columns:
        return {}
    rows = (
        events.select(ITEM, TITLE)
        .filter(pl.col(TITLE).str.strip_chars().str.len_chars() > 0)
        .unique(ITEM, keep="first", maintain_order=True)
    )
    return dict(zip(rows[ITEM].to_list(), rows[TITLE].to_list(), strict=True))


def dataset_item_text(
    events: pl.DataFrame,
    vocab: Vocab,
    cache_path: str | Path,
    progress: bool = True,
    text_encoder: str | Path | None = None,
) -> torch.Tensor:
    """[vocab.n_tokens, 384] text table of a dataset's items, cached at ``cache_path``.

    ``text_encoder``: a dir written by ``shopseq tune-text`` (the LoRA-tuned encoder embeds the
    titles); None = the pretrained encoder as shipped.
    """
    from shopseq.models.text import embed_item_texts

    titles = item_titles(events)
    if not titles:
        raise ShopseqInputError(
            "model.item_text needs item titles, and this event log has none "
            "(no non-empty 'title' values)"
        )
    return embed_item_texts(vocab, titles, cache_path, text_encoder, progress=progress)


def item_attributes(events: pl.DataFrame) -> dict[str, list[str]]:
    """{raw item id: its attribute tokens} from an EventLog's ``attributes`` column ("a|b|c",
    first non-empty per item)."""
    if ATTRIBUTES not in events.columns:
        return {}
    rows = (
        events.select(ITEM, ATTRIBUTES)
        .filter(pl.col(ATTRIBUTES).str.strip_chars().str.len_chars() > 0)
        .unique(ITEM, keep="first", maintain_order=True)
    )
    return {
        item: [a.strip() for a in text.split(ATTRIBUTE_SEP) if a.strip()]
        for item, text in zip(rows[ITEM].to_list(), rows[ATTRIBUTES].to_list(), strict=True)
    }


def attribute_table(vocab: Vocab, attributes: dict[str, list[str]]) -> torch.Tensor:
    """[vocab.n_tokens, n_attributes] row-normalised multi-hot: row i is 1/k on each of item
    i's k attributes (columns in sorted attribute order); zero rows for PAD, MASK and items
    without attributes. Attributes of items outside the vocabulary are ignored."""
    rows = {item: N_SPECIAL + i for i, item in enumerate(vocab.items)}
    known = {item: attrs for item, attrs in attributes.items() if item in rows and attrs}
    columns = {a: j for j, a in enumerate(sorted({a for attrs in known.values() for a in attrs}))}
    table = torch.zeros(vocab.n_tokens, len(columns))
    for item, attrs in known.items():
        unique = set(attrs)
        table[rows[item], [columns[a] for a in unique]] = 1.0 / len(unique)
    return table


def side_table(
    cfg: ModelConfig,
    events: pl.DataFrame,
    vocab: Vocab,
    text_cache: str | Path,
    progress: bool = True,
    text_encoder: str | Path | None = None,
) -> torch.Tensor | None:
    """The side table ``cfg`` asks for (None when it uses neither text nor attributes): the
    title embeddings (cached at ``text_cache``) and/or the attribute columns, side by side."""
    parts = []
    if cfg.item_text != "none":
        parts.append(dataset_item_text(events, vocab, text_cache, progress, text_encoder))
    if cfg.item_attributes:
        attributes = item_attributes(events)
        if not attributes:
            raise ShopseqInputError(
                "model.item_attributes needs item attributes, and this event log has none "
                "(no non-empty 'attributes' values)"
            )
        parts.append(attribute_table(vocab, attributes))
    return torch.cat(parts, dim=1) if parts else None


class ItemTable(nn.Module):
    """Item vectors from an ID embedding and/or a projected, frozen side table.

    ``weight`` [n_tokens, D] is the whole table (what the tied next-item head scores against);
    calling the module on ids [...] gives their rows [..., D] without building the table.
    The side table (``text``) is a non-persistent buffer: it is saved beside the weights
    (:func:`save_item_text`), not inside them.
    """

    text: torch.Tensor  # [n_tokens, d_text] buffer

    def __init__(self, text: torch.Tensor, d_model: int, with_ids: bool) -> None:
        super().__init__()
        n_tokens, d_text = text.shape
        self.ids = nn.Embedding(n_tokens, d_model, padding_idx=PAD) if with_ids else None
        # No bias: PAD, MASK and items without side features (zero rows) get no side component.
        self.project = nn.Linear(d_text, d_model, bias=False)
        self.register_buffer("text", text.float().contiguous(), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        """[n_tokens, D] every item's vector."""
        out = self.project(self.text)
        return out if self.ids is None else out + self.ids.weight

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """[...] item ids -> [..., D] their vectors."""
        out = self.project(self.text[item_ids])
        return out if self.ids is None else out + self.ids(item_ids)


def save_item_text(table: torch.Tensor, run_dir: str | Path) -> None:
    """Store the text table in a run dir so load_run / recommend need no encoder."""
    from safetensors.torch import save_file

    save_file({TABLE_TENSOR: table.float().contiguous()}, str(Path(run_dir) / ITEM_TEXT_FILE))


def load_item_text(run_dir: str | Path) -> torch.Tensor | None:
    """The text table stored in a run dir, or None when the run has none."""
    from safetensors.torch import load_file

    path = Path(run_dir) / ITEM_TEXT_FILE
    return load_file(str(path))[TABLE_TENSOR] if path.is_file() else None


def check_table(cfg: ModelConfig, table: torch.Tensor | None, n_tokens: int) -> torch.Tensor | None:
    """The side table ``cfg`` needs (None when it uses neither text nor attributes), validated."""
    if not cfg.side_features:
        return None
    if table is None:
        wants = (
            f"model.item_text={cfg.item_text}"
            if cfg.item_text != "none"
            else "model.item_attributes=true"
        )
        raise ShopseqInputError(
            f"{wants} needs the item side table: pass item_text= "
            "(shopseq.models.item_text.side_table)"
        )
    if table.ndim != 2 or table.shape[0] != n_tokens:
        raise ShopseqInputError(
            f"the item side table has shape {tuple(table.shape)}; it needs one row per item id "
            f"({n_tokens} rows: the vocabulary's n_tokens)"
        )
    return table


# ---------------------------------------------------------------- cold items


def seen_items(seqs: Sequences, n_tokens: int) -> np.ndarray:
    """[n_tokens] bool: the item id occurs somewhere in ``seqs``."""
    seen = np.zeros(n_tokens, dtype=bool)
    seen[seqs.item_ids] = True
    return seen


def seen_item_probs(
    probs: torch.Tensor | None, seqs: Sequences, n_tokens: int
) -> torch.Tensor | None:
    """[V] negative-sampling probabilities (uniform when ``probs`` is None) limited to the items
    that occur in ``seqs``; None when every item occurs (nothing to restrict)."""
    seen = torch.from_numpy(seen_items(seqs, n_tokens))
    if seen[N_SPECIAL:].all():
        return None
    out = (torch.ones(n_tokens) if probs is None else probs.clone()) * seen
    out[:N_SPECIAL] = 0.0
    return out / out.sum()


def cold_targets(ds: Dataset, phase: str) -> np.ndarray:
    """[n_targets] bool: the target's item never occurs in the phase's training inputs."""
    seen = seen_items(ds.train_sequences(phase), ds.vocab.n_tokens)
    items = ds.sequences.item_ids[ds.phases[phase].targets]
    return ~seen[items]


def restrict_phase(ds: Dataset, phase: str, keep: np.ndarray) -> Dataset:
    """``ds`` with only the ``keep`` [n_targets] targets of ``phase``; training inputs as before."""
    p = ds.phases[phase]
    sub = Phase(p.name, p.users[keep], p.targets[keep], p.history_end[keep], p.train_end)
    return replace(ds, phases={**ds.phases, phase: sub})


def drop_items(seqs: Sequences, item_mask: np.ndarray) -> Sequences:
    """``seqs`` without the events whose item id has ``item_mask[id]`` True."""
    keep = ~item_mask[seqs.item_ids]  # [n_events]
    lengths = np.bincount(seqs.event_users()[keep], minlength=seqs.n_users)
    return replace(
        seqs,
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        item_ids=seqs.item_ids[keep],
        behavior_ids=seqs.behavior_ids[keep],
        timestamps=seqs.timestamps[keep],
        category_ids=None if seqs.category_ids is None else seqs.category_ids[keep],
    )


@dataclass(frozen=True)
class HeldOutDataset(Dataset):
    """A Dataset whose training inputs (every phase) lack the events of held-out items.

    Evaluation is untouched: histories still show the held-out items and their targets are
    scored, as for items added to the catalogue after training. Targets are never training
    inputs of their own phase, so no target leaks either way.
    """

    held_out: np.ndarray  # [n_tokens] bool, True = item held out

    def train_sequences(self, phase: str = "valid") -> Sequences:
        return drop_items(super().train_sequences(phase), self.held_out)


def hold_out_items(ds: Dataset, share: float, rng: np.random.Generator) -> HeldOutDataset:
    """``ds`` with a random ``share`` of its items removed from all training inputs."""
    n_held = round(share * ds.vocab.n_items)
    held = np.zeros(ds.vocab.n_tokens, dtype=bool)
    held[N_SPECIAL + rng.choice(ds.vocab.n_items, n_held, replace=False)] = True
    return HeldOutDataset(ds.sequences, ds.vocab, ds.spec, ds.phases, ds.time_unit, held)
