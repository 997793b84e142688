"""A prepared dataset: encoded sequences + vocabulary + split, stored as Parquet and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from shopseq.data.schema import EVENTS_FILE, TIME_UNIT_MS
from shopseq.data.sequences import (
    PHASES,
    Phase,
    Sequences,
    SplitSpec,
    build_sequences,
    split,
    truncate,
)
from shopseq.data.vocab import Vocab, build_vocab
from shopseq.errors import ShopseqInputError

VOCAB_FILE = "vocab.json"
SPLIT_FILE = "split.json"
META_FILE = "meta.json"


@dataclass(frozen=True)
class Dataset:
    """Everything a model needs: sequences, vocabulary, and the valid/test phases of a split."""

    sequences: Sequences
    vocab: Vocab
    spec: SplitSpec
    phases: dict[str, Phase]
    time_unit: str

    def train_sequences(self, phase: str = "valid") -> Sequences:
        """The training inputs of ``phase``: no target of that phase or a later one is included."""
        return truncate(self.sequences, self.phases[phase].train_end)


def prepare(events: pl.DataFrame, spec: SplitSpec, time_unit: str = TIME_UNIT_MS) -> Dataset:
    """Build the vocabulary and sequences of an EventLog and split them."""
    if events.height == 0:
        raise ShopseqInputError("the event log is empty: nothing to prepare")
    vocab = build_vocab(events)
    seqs = build_sequences(events, vocab)
    return Dataset(seqs, vocab, spec, split(seqs, spec, vocab, time_unit), time_unit)


def save_dataset(ds: Dataset, events: pl.DataFrame, out_dir: str | Path) -> dict[str, object]:
    """Write events.parquet, vocab.json, split.json and meta.json; returns the meta dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events.write_parquet(out / EVENTS_FILE)
    ds.vocab.save(out / VOCAB_FILE)
    (out / SPLIT_FILE).write_text(json.dumps(asdict(ds.spec), indent=2))
    meta = dataset_summary(ds)
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def load_dataset(path: str | Path) -> Dataset:
    """Load a dataset dir written by :func:`save_dataset`; the split is recomputed identically."""
    root = Path(path)
    missing = [
        f for f in (EVENTS_FILE, VOCAB_FILE, SPLIT_FILE, META_FILE) if not (root / f).exists()
    ]
    if missing:
        raise ShopseqInputError(
            f"{root}: not a prepared dataset (missing {', '.join(missing)}); run `shopseq prepare`"
        )
    vocab = Vocab.load(root / VOCAB_FILE)
    spec = SplitSpec(**json.loads((root / SPLIT_FILE).read_text()))
    time_unit = json.loads((root / META_FILE).read_text())["time_unit"]
    seqs = build_sequences(pl.read_parquet(root / EVENTS_FILE), vocab)
    return Dataset(seqs, vocab, spec, split(seqs, spec, vocab, time_unit), time_unit)


def dataset_summary(ds: Dataset) -> dict[str, object]:
    """Counts a user wants to see after prepare (also stored as meta.json)."""
    summary: dict[str, object] = {
        "time_unit": ds.time_unit,
        "n_users": ds.sequences.n_users,
        "n_items": ds.vocab.n_items,
        "n_events": ds.sequences.n_events,
        "behaviors": list(ds.vocab.behaviors),
        "split": asdict(ds.spec),
    }
    for name in PHASES:
        phase = ds.phases[name]
        train_events = int((phase.train_end - ds.sequences.offsets[:-1]).sum())
        summary[f"{name}_targets"] = phase.n_targets
        summary[f"{name}_train_events"] = train_events
    summary["median_seq_len"] = float(np.median(ds.sequences.lengths))
    return summary
