"""Format names -> readers, and the generic reader of any table with a column map.

`read(path, format)` dispatches to a named reader (public_formats.py) or, for `csv`, to
`read_mapped`: any CSV / TSV / Parquet / JSONL file whose columns a column map names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from shopseq.data.public_formats import (
    read_otto,
    read_recbole,
    read_rees46,
    read_s3rec,
    read_sasrec,
    read_taobao,
    read_yoochoose,
)
from shopseq.data.raw_rows import (
    ERROR,
    FILE,
    LINE,
    MALFORMED_ROW,
    RAW,
    TIME_AUTO,
    TIME_ORDINAL,
    RawRows,
    header_table,
    json_text,
    ordinal_by_user,
    read_lines,
    resolve_columns,
)
from shopseq.data.schema import (
    ATTRIBUTES,
    BEHAVIOR,
    CATEGORY,
    ITEM,
    OPTIONAL_COLUMNS,
    PRICE,
    REQUIRED_COLUMNS,
    TIMESTAMP,
    TITLE,
    USER,
)
from shopseq.errors import ShopseqInputError

SHORT_KEYS: dict[str, str] = {
    "user": USER,
    "item": ITEM,
    "behavior": BEHAVIOR,
    "timestamp": TIMESTAMP,
    "category": CATEGORY,
    "price": PRICE,
    "title": TITLE,
    "attributes": ATTRIBUTES,
}
COLUMN_ALIASES = SHORT_KEYS | {c: c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}

# ---------------------------------------------------------------- generic tables + column map

_EXTENSIONS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "sniff", ".parquet": "parquet"}
_EXTENSIONS |= {".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def resolve_column_map(column_map: Mapping[str, str] | None) -> dict[str, str]:
    """Canonical column -> source column; keys may be short (`user`) or canonical (`user_id`)."""
    resolved: dict[str, str] = {}
    for key, source in (column_map or {}).items():
        canonical = COLUMN_ALIASES.get(key.strip().lower())
        if canonical is None:
            choices = ", ".join(SHORT_KEYS)
            raise ShopseqInputError(f"unknown column_map key '{key}'; choose from: {choices}")
        resolved[canonical] = source
    return resolved


def _table_kind(path: Path) -> str:
    """`,`, `\t`, `sniff`, `parquet` or `jsonl`, from the extension (a final `.gz` is skipped)."""
    suffixes = [s.lower() for s in path.suffixes]
    ext = suffixes[-2] if len(suffixes) > 1 and suffixes[-1] == ".gz" else path.suffix.lower()
    if ext not in _EXTENSIONS:
        raise ShopseqInputError(
            f"{path}: unsupported extension '{ext}' for format csv "
            "(use .csv, .tsv, .txt, .parquet or .jsonl; text may be .gz)"
        )
    return _EXTENSIONS[ext]


def _parquet_rows(
    path: Path, wanted: Mapping[str, str], optional: Mapping[str, str]
) -> pl.DataFrame:
    """Mapped columns of a Parquet file as strings; LINE is the 1-based row number."""
    if not path.is_file():
        raise ShopseqInputError(f"file not found: {path}")
    try:
        table = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise ShopseqInputError(f"{path}: cannot read Parquet ({str(e).splitlines()[0]})") from None
    if table.height == 0:
        raise ShopseqInputError(f"{path}: no data rows")
    found = resolve_columns(table.columns, wanted, optional, path)
    as_text = {c: _as_text(pl.col(s), table.schema[s]) for c, s in found.items()}
    return table.select(
        pl.lit(str(path)).alias(FILE),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(LINE),
        pl.concat_str([e.fill_null("") for e in as_text.values()], separator=",").alias(RAW),
        pl.lit(None, pl.Utf8).alias(ERROR),
        *[e.alias(c) for c, e in as_text.items()],
    )


def _as_text(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A Parquet column as strings; dates and datetimes become Unix milliseconds."""
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return column.cast(pl.Datetime("ms")).dt.epoch("ms").cast(pl.Utf8)
    return column.cast(pl.Utf8, strict=False)


def _jsonl_rows(path: Path, wanted: Mapping[str, str], optional: Mapping[str, str]) -> pl.DataFrame:
    """Mapped keys of a JSON-lines file (one object per line) as strings."""
    numbered = [(n, line) for n, line in enumerate(read_lines(path), start=1) if line.strip()]
    objects = [_json_object(line) for _, line in numbered]
    keys = list(dict.fromkeys(k for o in objects if o is not None for k in o))
    found = resolve_columns(keys, wanted, optional, path)
    cols: dict[str, list[object]] = {
        LINE: [n for n, _ in numbered],
        RAW: [line for _, line in numbered],
        ERROR: [None if o is not None else MALFORMED_ROW for o in objects],
    }
    for canonical, key in found.items():
        cols[canonical] = [json_text(o.get(key)) if o is not None else None for o in objects]
    schema = {LINE: pl.Int64, **{c: pl.Utf8 for c in cols if c != LINE}}
    return pl.DataFrame(cols, schema=schema).with_columns(pl.lit(str(path)).alias(FILE))


def _json_object(line: str) -> dict[str, object] | None:
    """The JSON object on a line, or None when the line is not one."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def read_mapped(path: Path, column_map: Mapping[str, str] | None = None) -> RawRows:
    """Any CSV / TSV / Parquet / JSONL with a column map (default: the canonical names).

    Unmapped behaviour means every row is a `view`; unmapped timestamp means file order (ordinal).
    """
    explicit = resolve_column_map(column_map)
    wanted = {USER: USER, ITEM: ITEM} | explicit
    optional = {c: c for c in (BEHAVIOR, TIMESTAMP, *OPTIONAL_COLUMNS) if c not in explicit}
    kind = _table_kind(path)
    if kind == "parquet":
        rows = _parquet_rows(path, wanted, optional)
    elif kind == "jsonl":
        rows = _jsonl_rows(path, wanted, optional)
    else:
        rows = header_table(path, kind, wanted, optional)
    if BEHAVIOR not in rows.columns:
        rows = rows.with_columns(pl.lit("view").alias(BEHAVIOR))
    if TIMESTAMP in rows.columns:
        return RawRows(rows, TIME_AUTO, (str(path),))
    return RawRows(rows.with_columns(ordinal_by_user()), TIME_ORDINAL, (str(path),))


READERS: dict[str, Callable[[Path], RawRows]] = {
    "taobao": read_taobao,
    "rees46": read_rees46,
    "yoochoose": read_yoochoose,
    "otto": read_otto,
    "sasrec": read_sasrec,
    "s3rec": read_s3rec,
    "recbole": read_recbole,
    "csv": read_mapped,
}


def read(path: Path, format: str, column_map: Mapping[str, str] | None = None) -> RawRows:
    """Read `path` with the named format's reader; only `csv` takes a column map."""
    if format not in READERS:
        raise ShopseqInputError(f"unknown format '{format}'; choose one of: {', '.join(READERS)}")
    if format == "csv":
        return read_mapped(path, column_map)
    if column_map:
        raise ShopseqInputError(f"column_map applies only to format 'csv', not '{format}'")
    return READERS[format](path)
