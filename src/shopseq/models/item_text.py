"""Text-aware items: the pretrained sentence embedding of each item, projected into the model.

    table = dataset_item_text(events, ds.vocab, cache)  # [n_tokens, 384], cached safetensors
    run = train(ds, load_config(path, ["model.item_text=add"]), out, item_text=table)
    model, cfg = load_run(out)  # the table is kept in the run dir: no encoder needed

``model.item_text`` picks the item representation (it is also the tied next-item head):
``none`` ID embedding only; ``add`` ID embedding + Linear(text); ``only`` Linear(text) alone,
so an item never seen in training but with a title gets a real score.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from shopseq.data.dataset import Dataset
from shopseq.data.schema import ITEM, N_SPECIAL, PAD, TITLE
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


class ItemTable(nn.Module):
    """Item vectors from an ID embedding and/or a projected, frozen text table.

    ``weight`` [n_tokens, D] is the whole table (what the tied next-item head scores against);
    calling the module on ids [...] gives their rows [..., D] without building the table.
    The text table is a non-persistent buffer: it is saved beside the weights
    (:func:`save_item_text`), not inside them.
    """

    text: torch.Tensor  # [n_tokens, d_text] buffer

    def __init__(self, text: torch.Tensor, d_model: int, with_ids: bool) -> None:
        super().__init__()
        n_tokens, d_text = text.shape
        self.ids = nn.Embedding(n_tokens, d_model, padding_idx=PAD) if with_ids else None
        # No bias: PAD, MASK and untitled items (zero text rows) get no text component.
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


def check_table(mode: str, table: torch.Tensor | None, n_tokens: int) -> torch.Tensor | None:
    """The table a model with ``model.item_text=mode`` needs (None for ``none``), validated."""
    if mode == "none":
        return None
    if table is None:
        raise ShopseqInputError(
            f"model.item_text={mode} needs the item text table: pass item_text= "
            "(shopseq.models.item_text.item_titles + shopseq.models.text.embed_item_texts)"
        )
    if table.ndim != 2 or table.shape[0] != n_tokens:
        raise ShopseqInputError(
            f"the item text table has shape {tuple(table.shape)}; it needs one row per item id "
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
