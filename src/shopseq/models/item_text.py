"""Items with side features: the pretrained sentence embedding of each item's title and/or its
attributes (brand, categories), projected into the model.

    table = dataset_item_text(events, ds.vocab, cache)  # [n_tokens, 384], cached safetensors
    run = train(ds, load_config(path, ["model.item_text=add"]), out, item_text=table)
    model, cfg = load_run(out)  # the table is kept in the run dir: no encoder needed

The SideTable holds the title embeddings (``model.item_text`` add/only: Linear(text) joins
the item vector) and/or each item's attribute ids (``model.item_attributes``: the mean of one
learned vector per attribute joins it); ``side_table`` builds it from an event log.
``model.item_text`` picks the item representation (it is also the tied next-item head):
``none``/``add`` ID embedding plus the side parts; ``only`` the side parts alone, so an item
never seen in training but with a title or attributes gets a real score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn
from torch.nn import functional as F

from shopseq.config import ModelConfig
from shopseq.data.dataset import Dataset
from shopseq.data.schema import ATTRIBUTE_SEP, ATTRIBUTES, ITEM, N_SPECIAL, PAD, TITLE
from shopseq.data.sequences import Phase, Sequences
from shopseq.data.vocab import Vocab
from shopseq.errors import ShopseqInputError

ITEM_TEXT_FILE = "item_text.safetensors"
TEXT_TENSOR = "item_text"
ATTRIBUTES_TENSOR = "item_attributes"


def first_per_item(events: pl.DataFrame, column: str) -> dict[str, str]:
    """{raw item id: its first non-blank ``column`` value} ({} without the column)."""
    if column not in events.columns:
        return {}
    rows = (
        events.select(ITEM, column)
        .filter(pl.col(column).str.strip_chars().str.len_chars() > 0)
        .unique(ITEM, keep="first", maintain_order=True)
    )
    return dict(zip(rows[ITEM].to_list(), rows[column].to_list(), strict=True))


def item_titles(events: pl.DataFrame) -> dict[str, str]:
    """{raw item id: text} from an EventLog's ``title`` column (first non-empty per item)."""
    return first_per_item(events, TITLE)


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
    return {
        item: [a.strip() for a in text.split(ATTRIBUTE_SEP) if a.strip()]
        for item, text in first_per_item(events, ATTRIBUTES).items()
    }


def attribute_table(vocab: Vocab, attributes: Mapping[str, list[str]]) -> torch.Tensor:
    """[vocab.n_tokens, K] int64 attribute ids per item: 1.. in sorted attribute order, each
    item's distinct attributes first, 0-padded to the longest list (K); zero rows for PAD,
    MASK and items without attributes. Attributes of items outside the vocabulary are ignored.
    """
    rows = {item: N_SPECIAL + i for i, item in enumerate(vocab.items)}
    known = {item: sorted(set(attrs)) for item, attrs in attributes.items() if item in rows}
    names = sorted({a for attrs in known.values() for a in attrs})
    ids = {a: j + 1 for j, a in enumerate(names)}
    table = torch.zeros(vocab.n_tokens, max(map(len, known.values()), default=0), dtype=torch.long)
    for item, attrs in known.items():
        table[rows[item], : len(attrs)] = torch.tensor([ids[a] for a in attrs], dtype=torch.long)
    return table


@dataclass(frozen=True)
class SideTable:
    """What an item table reads beside its ID embedding, one row per item id."""

    text: torch.Tensor | None = None  # [n_tokens, d_text] float: title embeddings
    attributes: torch.Tensor | None = None  # [n_tokens, K] int64 attribute ids, 0 = none

    @property
    def n_attributes(self) -> int:
        return 0 if self.attributes is None else int(self.attributes.max())


# what the training entry points accept: a SideTable, or a bare title-embedding tensor
ItemSide = SideTable | torch.Tensor


def side_table(
    cfg: ModelConfig,
    events: pl.DataFrame,
    vocab: Vocab,
    text_cache: str | Path,
    progress: bool = True,
    text_encoder: str | Path | None = None,
) -> SideTable | None:
    """The side table ``cfg`` asks for (None when it uses neither text nor attributes): the
    title embeddings (cached at ``text_cache``) and/or the attribute ids."""
    if not cfg.side_features:
        return None
    text = None
    if cfg.item_text != "none":
        text = dataset_item_text(events, vocab, text_cache, progress, text_encoder)
    attributes = None
    if cfg.item_attributes:
        by_item = item_attributes(events)
        if not by_item:
            raise ShopseqInputError(
                "model.item_attributes needs item attributes, and this event log has none "
                "(no non-empty 'attributes' values)"
            )
        attributes = attribute_table(vocab, by_item)
    return SideTable(text, attributes)


class ItemTable(nn.Module):
    """Item vectors: an ID embedding and/or a projection of the frozen title embeddings and/or
    the mean of the item's attribute vectors.

    ``weight`` [n_tokens, D] is the whole table (what the tied next-item head scores against);
    calling the module on ids [...] gives their rows [..., D]. The side table's tensors are
    non-persistent buffers: they are saved beside the weights (:func:`save_item_text`), not
    inside them.
    """

    text: torch.Tensor | None  # [n_tokens, d_text] buffer
    bag_index: torch.Tensor  # [n_pairs] attribute ids of every item's bag, items in order
    bag_offsets: torch.Tensor  # [n_tokens] where each item's bag starts in bag_index

    def __init__(self, side: SideTable, n_tokens: int, d_model: int, with_ids: bool) -> None:
        super().__init__()
        self.ids = nn.Embedding(n_tokens, d_model, padding_idx=PAD) if with_ids else None
        # No bias: PAD, MASK and untitled items (zero text rows) get no text component.
        self.project = None
        if side.text is not None:
            self.project = nn.Linear(side.text.shape[1], d_model, bias=False)
        self.register_buffer("text", _float(side.text), persistent=False)
        self.attributes = None
        if side.attributes is not None:
            self.attributes = nn.Embedding(side.n_attributes + 1, d_model, padding_idx=0)
            present = side.attributes > 0  # [n_tokens, K]
            sizes = present.sum(1)
            self.register_buffer("bag_index", side.attributes[present], persistent=False)
            self.register_buffer("bag_offsets", sizes.cumsum(0) - sizes, persistent=False)

    def attribute_vectors(self) -> torch.Tensor | None:
        """[n_tokens, D] each item's mean attribute vector (zero without attributes)."""
        if self.attributes is None:
            return None
        return F.embedding_bag(
            self.bag_index, self.attributes.weight, self.bag_offsets, mode="mean"
        )

    @property
    def weight(self) -> torch.Tensor:
        """[n_tokens, D] every item's vector."""
        parts = [] if self.ids is None else [self.ids.weight]
        if self.project is not None and self.text is not None:
            parts.append(self.project(self.text))
        attrs = self.attribute_vectors()
        return torch.stack(parts if attrs is None else [*parts, attrs]).sum(0)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """[...] item ids -> [..., D] their vectors."""
        parts = [] if self.ids is None else [self.ids(item_ids)]
        if self.project is not None and self.text is not None:
            parts.append(self.project(self.text[item_ids]))
        attrs = self.attribute_vectors()  # the whole bag table: nnz x D, cheap
        return torch.stack(parts if attrs is None else [*parts, attrs[item_ids]]).sum(0)


def _float(table: torch.Tensor | None) -> torch.Tensor | None:
    return None if table is None else table.float().contiguous()


def save_item_text(side: SideTable, run_dir: str | Path) -> None:
    """Store the side table in a run dir so load_run / recommend need no encoder."""
    from safetensors.torch import save_file

    tensors = {TEXT_TENSOR: side.text, ATTRIBUTES_TENSOR: side.attributes}
    kept = {k: v.contiguous() for k, v in tensors.items() if v is not None}
    save_file(kept, str(Path(run_dir) / ITEM_TEXT_FILE))


def load_item_text(run_dir: str | Path) -> SideTable | None:
    """The side table stored in a run dir, or None when the run has none."""
    from safetensors.torch import load_file

    path = Path(run_dir) / ITEM_TEXT_FILE
    if not path.is_file():
        return None
    tensors = load_file(str(path))
    return SideTable(tensors.get(TEXT_TENSOR), tensors.get(ATTRIBUTES_TENSOR))


def check_table(cfg: ModelConfig, table: ItemSide | None, n_tokens: int) -> SideTable | None:
    """The side table ``cfg`` needs (None when it uses neither text nor attributes), validated;
    a bare tensor is taken as the title embeddings."""
    if not cfg.side_features:
        return None
    side = SideTable(text=table) if isinstance(table, torch.Tensor) else table
    if side is None or (cfg.item_text != "none" and side.text is None):
        wants = f"model.item_text={cfg.item_text}"
        raise ShopseqInputError(
            f"{wants} needs the item text table: pass item_text= "
            "(shopseq.models.item_text.side_table)"
        )
    if cfg.item_attributes and side.attributes is None:
        raise ShopseqInputError(
            "model.item_attributes=true needs the item attribute ids: pass item_text= "
            "(shopseq.models.item_text.side_table)"
        )
    for name, part in (("text", side.text), ("attribute", side.attributes)):
        if part is not None and (part.ndim != 2 or part.shape[0] != n_tokens):
            raise ShopseqInputError(
                f"the item {name} table has shape {tuple(part.shape)}; it needs one row per "
                f"item id ({n_tokens} rows: the vocabulary's n_tokens)"
            )
    return SideTable(
        side.text if cfg.item_text != "none" else None,
        side.attributes if cfg.item_attributes else None,
    )


# ---------------------------------------------------------------- cold items


def seen_items(seqs: Sequences, n_tokens: int) -> np.ndarray:
    """[n_tokens] bool: the item id occurs somewhere in ``seqs``."""
    seen = np.zeros(n_tokens, dtype=bool)
    seen[seqs.item_ids] = True
    return seen


def spared_items(ds: Dataset, seqs: Sequences, cfg: ModelConfig) -> np.ndarray | None:
    """[n_tokens] bool: items a sampled softmax over ``seqs`` (``ds``'s training inputs) never
    draws as negatives, or None.

    A table of side features alone (``item_text=only``) scores an item without training events
    exactly as it scores its look-alikes, so no such item is drawn (that would teach "never
    bought"). A table with ID rows spares only items added after training (held out of the
    catalogue, :func:`hold_out_items`) when it has side features to score them from; every
    other catalogue item stays a negative, as in the full softmax: never pushed down, the
    untrained ID rows of items without training events crowd every top-k (on Amazon Sports
    with attributes, 73 such items took 24 % of the top-10 slots).
    """
    if cfg.item_text == "only":
        return ~seen_items(seqs, ds.vocab.n_tokens)
    if cfg.side_features and isinstance(ds, HeldOutDataset):
        return ds.held_out
    return None


def catalogue_probs(probs: torch.Tensor | None, spared: np.ndarray) -> torch.Tensor | None:
    """[V] negative-sampling probabilities (uniform when ``probs`` is None) without the
    ``spared`` [V] items (and PAD, MASK); None when no item is spared."""
    if not spared[N_SPECIAL:].any():
        return None
    out = torch.ones(len(spared)) if probs is None else probs.clone()
    out[torch.from_numpy(spared)] = 0.0
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
