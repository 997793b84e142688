"""Raw rows: what every reader returns, and the line / field splitting all readers share.

A reader never validates values; it only splits rows into canonical columns. A row it cannot split
(wrong field count, malformed JSON) still comes back, with its reason in ``ERROR``, so that ingest
can account for every input row.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from shopseq.data.schema import TIMESTAMP, USER
from shopseq.errors import ShopseqInputError

# Bookkeeping columns every reader returns next to the canonical ones.
FILE = "__file"
LINE = "__line"
RAW = "__raw"
ERROR = "__error"
FIELDS = "__fields"

# How the raw timestamp column is to be parsed.
TIME_SECONDS = "s"
TIME_MS = "ms"
TIME_DATETIME = "datetime"
TIME_AUTO = "auto"
TIME_ORDINAL = "ordinal"

WRONG_FIELD_COUNT = "wrong field count"
MALFORMED_ROW = "malformed row"

_SEP_NAMES = {",": "comma", "\t": "tab", None: "space"}


@dataclass(frozen=True)
class RawRows:
    """Rows as read: canonical columns as strings plus FILE, LINE (1-based), RAW and ERROR."""

    rows: pl.DataFrame
    time_kind: str  # one of the TIME_* kinds above
    sources: tuple[str, ...]


# ---------------------------------------------------------------- text, lines and fields


def read_lines(path: Path) -> list[str]:
    """The physical lines of a text file (gzip detected by its magic bytes), without line ends."""
    if not path.is_file():
        raise ShopseqInputError(f"file not found: {path}")
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ShopseqInputError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    except (OSError, EOFError) as e:
        raise ShopseqInputError(f"{path}: cannot read ({e})") from None
    if not text.strip():
        raise ShopseqInputError(f"{path}: file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines] if "\r" in text else lines


def line_frame(path: Path, lines: list[str], first_line: int = 1) -> pl.DataFrame:
    """One row per non-blank line: FILE, LINE, RAW (blank lines are not rows)."""
    frame = pl.DataFrame({RAW: lines}, schema={RAW: pl.Utf8})
    return (
        frame.with_row_index(LINE, offset=first_line)
        .with_columns(pl.col(LINE).cast(pl.Int64), pl.lit(str(path)).alias(FILE))
        .filter(pl.col(RAW).str.strip_chars() != "")
    )


def _csv_fields(line: str, sep: str) -> list[str] | None:
    """Fields of one quoted CSV line; None when it does not parse (a quoted field spanning
    lines is not supported: its pieces become malformed or wrong-length rows)."""
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error:
        return None


def split_fields(frame: pl.DataFrame, sep: str | None, quoted: bool = False) -> pl.DataFrame:
    """Add the list column FIELDS: split on `sep`, on runs of whitespace when `sep` is None."""
    raw = pl.col(RAW)
    if sep is None:
        return frame.with_columns(raw.str.extract_all(r"\S+").alias(FIELDS))
    if quoted and frame[RAW].str.contains('"', literal=True).any():
        fields = [_csv_fields(line, sep) for line in frame[RAW]]
        return frame.with_columns(pl.Series(FIELDS, fields, dtype=pl.List(pl.Utf8)))
    return frame.with_columns(raw.str.split(sep).alias(FIELDS))


def check_fields(
    frame: pl.DataFrame, path: Path, n: int, sep: str | None, at_least: bool = False
) -> pl.DataFrame:
    """Mark rows with the wrong number of fields; raise when the first row has one field only."""
    count = pl.col(FIELDS).list.len()
    first = frame[FIELDS][0] if frame.height else None
    if first is not None and n > 1 and first.len() == 1:
        expected = f"at least {n}" if at_least else str(n)
        raise ShopseqInputError(
            f"{path}: expected {expected} {_SEP_NAMES[sep]}-separated fields, found 1 "
            f"on line {frame[LINE][0]} — wrong delimiter?"
        )
    bad = count < n if at_least else count != n
    error = (
        pl.when(count.is_null())
        .then(pl.lit(MALFORMED_ROW))
        .when(bad)
        .then(pl.lit(WRONG_FIELD_COUNT))
    )
    return frame.with_columns(error.alias(ERROR))


def pick_fields(frame: pl.DataFrame, positions: Mapping[str, int]) -> pl.DataFrame:
    """Bookkeeping columns plus each named column taken from its field position."""
    fields = [pl.col(FIELDS).list.get(i, null_on_oob=True).alias(n) for n, i in positions.items()]
    return frame.select(FILE, LINE, RAW, ERROR, *fields)


def resolve_columns(
    available: list[str], wanted: Mapping[str, str], optional: Mapping[str, str], path: Path
) -> dict[str, str]:
    """Canonical -> source column: every `wanted` column must exist, `optional` ones may."""
    for source in wanted.values():
        if source not in available:
            listed = ", ".join(available)
            raise ShopseqInputError(f"{path}: column '{source}' not found (columns: {listed})")
    return {c: s for c, s in optional.items() if s in available} | dict(wanted)


def _header_names(line: str, sep: str, recbole: bool) -> list[str]:
    """Column names of a header line; RecBole's `name:type` loses its type."""
    names = [name.strip() for name in _csv_fields(line, sep) or [line]]
    return [name.split(":")[0] for name in names] if recbole else names


def header_table(
    path: Path,
    sep: str,
    wanted: Mapping[str, str],
    optional: Mapping[str, str] | None = None,
    recbole: bool = False,
) -> pl.DataFrame:
    """Read a delimited file whose line 1 is a header; return bookkeeping + canonical columns.

    `sep` may be "sniff": tab when the header holds a tab, else comma.
    """
    lines = read_lines(path)
    if sep == "sniff":
        sep = "\t" if "\t" in lines[0] else ","
    header = _header_names(lines[0], sep, recbole)
    n_wanted = len(set(wanted.values()))
    if len(header) == 1 and n_wanted > 1:
        raise ShopseqInputError(
            f"{path}: expected at least {n_wanted} {_SEP_NAMES[sep]}-separated fields, "
            "found 1 on line 1 — wrong delimiter?"
        )
    found = resolve_columns(header, wanted, optional or {}, path)
    frame = split_fields(line_frame(path, lines[1:], first_line=2), sep, quoted=not recbole)
    if frame.height == 0:
        raise ShopseqInputError(f"{path}: no data rows")
    positions = {c: header.index(s) for c, s in found.items()}
    return pick_fields(check_fields(frame, path, len(header), sep), positions)


def ordinal_by_user() -> pl.Expr:
    """0, 1, 2, ... per user in row order: the timestamp of order-only sources."""
    return pl.int_range(pl.len(), dtype=pl.Int64).over(USER).alias(TIMESTAMP)


def json_text(value: object) -> str | None:
    """A JSON value as the string a CSV would have held (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list | bool) else str(value)
