"""Vocabularies: raw item / behaviour / category names to dense ids, stable, JSON on disk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from shopseq.data.schema import BEHAVIOR, CANONICAL_BEHAVIORS, CATEGORY, ITEM, N_SPECIAL, PAD


@dataclass(frozen=True)
class Vocab:
    """Item ids are ``N_SPECIAL + index``; behaviour, category ids ``1 + index`` (0 = PAD)."""

    items: tuple[str, ...]
    behaviors: tuple[str, ...]
    categories: tuple[str, ...] = ()

    @property
    def n_items(self) -> int:
        """Catalogue size (real items, no special ids)."""
        return len(self.items)

    @property
    def n_tokens(self) -> int:
        """Size of the item id space, special ids included."""
        return len(self.items) + N_SPECIAL

    @property
    def n_behaviors(self) -> int:
        return len(self.behaviors)

    def behavior_id(self, name: str) -> int:
        """The id of one behaviour name; unknown names are an error naming the known ones."""
        if name not in self.behaviors:
            known = ", ".join(self.behaviors)
            raise KeyError(f"behaviour '{name}' not in this dataset (behaviours: {known})")
        return self.behaviors.index(name) + 1

    def encode_items(self, raw: pl.Series) -> np.ndarray:
        """Raw item ids -> item ids; items outside the catalogue map to PAD."""
        return _encode(raw, self.items, N_SPECIAL)

    def encode_behaviors(self, raw: pl.Series) -> np.ndarray:
        return _encode(raw, self.behaviors, 1)

    def encode_categories(self, raw: pl.Series) -> np.ndarray:
        return _encode(raw, self.categories, 1)

    def decode_items(self, ids: np.ndarray) -> list[str]:
        """Item ids -> raw item ids (special ids are an error)."""
        ids = np.asarray(ids)
        if ids.size and int(ids.min()) < N_SPECIAL:
            raise ValueError("special ids (PAD/MASK) have no raw item id")
        return [self.items[i - N_SPECIAL] for i in ids.tolist()]

    def to_json(self) -> dict[str, object]:
        return {
            "pad": PAD,
            "n_special": N_SPECIAL,
            "items": list(self.items),
            "behaviors": list(self.behaviors),
            "categories": list(self.categories),
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        data = json.loads(Path(path).read_text())
        return cls(tuple(data["items"]), tuple(data["behaviors"]), tuple(data["categories"]))


def build_vocab(events: pl.DataFrame) -> Vocab:
    """A deterministic vocabulary over the whole catalogue seen in ``events``.

    Items are sorted numerically when every raw id is an integer, else lexicographically, so the
    vocabulary does not depend on row order. Canonical behaviours come first in funnel order.
    """
    items = _sorted_names(events[ITEM])
    present = set(events[BEHAVIOR].unique().to_list())
    behaviors = [b for b in CANONICAL_BEHAVIORS if b in present]
    behaviors += sorted(present - set(CANONICAL_BEHAVIORS))
    categories = _sorted_names(events[CATEGORY].drop_nulls()) if CATEGORY in events.columns else ()
    return Vocab(items, tuple(behaviors), categories)


def _sorted_names(raw: pl.Series) -> tuple[str, ...]:
    unique = raw.unique()
    as_int = unique.cast(pl.Int64, strict=False)
    order = as_int.arg_sort() if as_int.null_count() == 0 else unique.arg_sort()
    return tuple(unique.gather(order).to_list())


def _encode(raw: pl.Series, names: tuple[str, ...], first_id: int) -> np.ndarray:
    mapping = pl.DataFrame(
        {"name": list(names), "id": np.arange(first_id, first_id + len(names), dtype=np.int64)},
        schema={"name": pl.Utf8, "id": pl.Int64},
    )
    frame = pl.DataFrame({"name": raw.cast(pl.Utf8)})
    joined = frame.join(mapping, on="name", how="left", maintain_order="left")
    return joined["id"].fill_null(PAD).to_numpy().astype(np.int64)
