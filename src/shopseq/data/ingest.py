"""Raw event log -> canonical EventLog: validate every row, keep or reject it with a reason.

`ingest(path, format=...)` reads with a named reader (formats.py), parses ids, behaviours,
timestamps and prices, rejects bad rows (never drops them silently) and sorts the kept events by
(user, time) with a stable sort. `write_ingest` / `read_events` store it as Parquet + JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from shopseq.data import formats, raw_rows
from shopseq.data.raw_rows import ERROR, FILE, LINE, RAW
from shopseq.data.schema import (
    ATTRIBUTES,
    BEHAVIOR,
    CATEGORY,
    DEFAULT_BEHAVIOR_MAP,
    DTYPES,
    EVENTS_FILE,
    INGEST_META_FILE,
    ITEM,
    OPTIONAL_COLUMNS,
    PRICE,
    REJECTS_FILE,
    REQUIRED_COLUMNS,
    TIME_UNIT_MS,
    TIME_UNIT_ORDINAL,
    TIMESTAMP,
    TITLE,
    USER,
)
from shopseq.errors import ShopseqInputError

# Reject reasons (the reader adds raw_rows.WRONG_FIELD_COUNT and raw_rows.MALFORMED_ROW).
MISSING_USER = "missing user_id"
MISSING_ITEM = "missing item_id"
MISSING_BEHAVIOR = "missing behavior"
BAD_TIMESTAMP = "bad timestamp"
BAD_PRICE = "bad price"
DUPLICATE = "duplicate"

REJECT_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.Utf8(),
    "line": pl.Int64(),
    "column": pl.Utf8(),
    "reason": pl.Utf8(),
    "raw": pl.Utf8(),
}
# Unix milliseconds of 0001-01-01 and 9999-12-31T23:59:59.999: the range a datetime can show.
_MS_MIN, _MS_MAX = -62_135_596_800_000, 253_402_300_799_999
_REASON, _COLUMN, _ORDER = "__reason", "__column", "__order"


@dataclass(frozen=True)
class IngestResult:
    """The canonical events, the rejected rows and the accounting that ties them together."""

    events: pl.DataFrame  # EventLog, stably sorted by (user_id, timestamp)
    rejects: pl.DataFrame  # file, line, column, reason, raw
    read: int
    kept: int
    rejected: int  # kept + rejected == read
    time_unit: str
    format: str
    sources: tuple[str, ...]


# ---------------------------------------------------------------- parsing


def _blank_to_null(column: str) -> pl.Expr:
    """The column as stripped text, with empty strings as null."""
    return pl.col(column).cast(pl.Utf8).str.strip_chars().replace("", None)


def _number(text: pl.Expr) -> pl.Expr:
    """Finite Float64 parsed from text; null when unparseable, NaN or infinite."""
    value = text.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _datetime_ms(text: pl.Expr) -> pl.Expr:
    """Unix ms from ISO-8601 / `YYYY-MM-DD HH:MM:SS[.f][ UTC|Z|+hh:mm]` / `YYYY-MM-DD` text."""
    norm = (
        text.cast(pl.Utf8)
        .str.strip_chars()
        .str.replace(r"(?i)\s*(UTC|Z)$", "")
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[T ]", "${1} ")
    )
    aware = norm.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_unit="ms")
    naive = norm.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="ms")
    day = norm.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("ms"))
    return pl.coalesce(aware.dt.epoch("ms"), naive.dt.epoch("ms"), day.dt.epoch("ms"))


def parse_timestamp(text: pl.Expr, kind: str) -> pl.Expr:
    """Int64 timestamps (Unix ms, or ordinals for TIME_ORDINAL); null when unparseable.

    TIME_AUTO takes numbers as Unix seconds, or milliseconds above 1e11, else datetime text.
    """
    if kind == raw_rows.TIME_ORDINAL:
        return text.cast(pl.Int64, strict=False)
    number = _number(text)
    if kind == raw_rows.TIME_SECONDS:
        ms = number * 1000
    elif kind == raw_rows.TIME_MS:
        ms = number
    elif kind == raw_rows.TIME_DATETIME:
        ms = _datetime_ms(text).cast(pl.Float64)
    else:
        by_size = pl.when(number.abs() > 1e11).then(number).otherwise(number * 1000)
        ms = pl.coalesce(by_size, _datetime_ms(text).cast(pl.Float64))
    ms = ms.round()
    return pl.when(ms.is_between(_MS_MIN, _MS_MAX)).then(ms).cast(pl.Int64)


def behavior_mapping(behavior_map: Mapping[str, str] | None) -> dict[str, str]:
    """DEFAULT_BEHAVIOR_MAP updated by the user's map; keys lowercased and stripped."""
    mapping = dict(DEFAULT_BEHAVIOR_MAP)
    for raw, name in (behavior_map or {}).items():
        if not name.strip():
            raise ShopseqInputError(f"behavior_map: empty behaviour name for '{raw}'")
        mapping[raw.strip().lower()] = name.strip()
    return mapping


def _parsed(rows: pl.DataFrame, time_kind: str, mapping: Mapping[str, str]) -> pl.DataFrame:
    """Canonical typed columns (null where text did not parse); `__has_price` marks given prices."""
    behavior = pl.col(BEHAVIOR).cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    columns = [
        _blank_to_null(USER).alias(USER),
        _blank_to_null(ITEM).alias(ITEM),
        behavior.replace("", None).replace(mapping).alias(BEHAVIOR),
        parse_timestamp(pl.col(TIMESTAMP), time_kind).alias(TIMESTAMP),
    ]
    flags = []
    if PRICE in rows.columns:
        price = _blank_to_null(PRICE)
        columns.append(_number(price).alias(PRICE))
        flags.append(price.is_not_null().alias("__has_price"))
    columns += [
        _blank_to_null(c).alias(c) for c in (CATEGORY, TITLE, ATTRIBUTES) if c in rows.columns
    ]
    return rows.with_columns(*flags).with_columns(columns)


def _reject_rules(columns: list[str]) -> list[tuple[pl.Expr, str, str | None]]:
    """(condition, reason, column) checks in priority order; the first that holds wins."""
    rules: list[tuple[pl.Expr, str, str | None]] = [
        (pl.col(USER).is_null(), MISSING_USER, USER),
        (pl.col(ITEM).is_null(), MISSING_ITEM, ITEM),
        (pl.col(BEHAVIOR).is_null(), MISSING_BEHAVIOR, BEHAVIOR),
        (pl.col(TIMESTAMP).is_null(), BAD_TIMESTAMP, TIMESTAMP),
    ]
    if PRICE in columns:
        rules.append((pl.col("__has_price") & pl.col(PRICE).is_null(), BAD_PRICE, PRICE))
    return rules


def _judge(rows: pl.DataFrame) -> pl.DataFrame:
    """Add __reason / __column: the reader's error first, then the value checks, else null."""
    reason = pl.col(ERROR).cast(pl.Utf8)
    column = pl.lit(None, pl.Utf8)
    for condition, why, col in reversed(_reject_rules(rows.columns)):
        reason = pl.when(pl.col(ERROR).is_null() & condition).then(pl.lit(why)).otherwise(reason)
        column = pl.when(pl.col(ERROR).is_null() & condition).then(pl.lit(col)).otherwise(column)
    judged = rows.with_columns(reason.alias(_REASON), column.cast(pl.Utf8).alias(_COLUMN))
    # Of identical events only the first (in input order) survives.
    key = pl.struct(USER, ITEM, BEHAVIOR, TIMESTAMP)
    repeat = pl.col(_REASON).is_null() & ~key.is_first_distinct().over(pl.col(_REASON).is_null())
    return judged.with_columns(
        pl.when(repeat).then(pl.lit(DUPLICATE)).otherwise(pl.col(_REASON)).alias(_REASON),
        pl.when(repeat).then(pl.lit(None, pl.Utf8)).otherwise(pl.col(_COLUMN)).alias(_COLUMN),
    )


# ---------------------------------------------------------------- ingest


def ingest(
    path: str | Path,
    format: str,
    column_map: Mapping[str, str] | None = None,
    behavior_map: Mapping[str, str] | None = None,
) -> IngestResult:
    """Read `path` in the named `format` into a validated, (user, time)-sorted EventLog."""
    raw = formats.read(Path(path), format, column_map)
    mapping = behavior_mapping(behavior_map)
    judged = _judge(_parsed(raw.rows.with_row_index(_ORDER), raw.time_kind, mapping))
    optional = [c for c in OPTIONAL_COLUMNS if c in raw.rows.columns]
    events = (
        judged.filter(pl.col(_REASON).is_null())
        .select([pl.col(c).cast(DTYPES[c]) for c in (*REQUIRED_COLUMNS, *optional)])
        .sort(USER, TIMESTAMP, maintain_order=True)
    )
    rejects = (
        judged.filter(pl.col(_REASON).is_not_null())
        .sort(_ORDER)
        .select(
            pl.col(FILE).alias("file"),
            pl.col(LINE).alias("line"),
            pl.col(_COLUMN).alias("column"),
            pl.col(_REASON).alias("reason"),
            pl.col(RAW).alias("raw"),
        )
        .cast(REJECT_SCHEMA)  # type: ignore[arg-type]
    )
    ordinal = raw.time_kind == raw_rows.TIME_ORDINAL
    return IngestResult(
        events=events,
        rejects=rejects,
        read=judged.height,
        kept=events.height,
        rejected=rejects.height,
        time_unit=TIME_UNIT_ORDINAL if ordinal else TIME_UNIT_MS,
        format=format,
        sources=raw.sources,
    )


# ---------------------------------------------------------------- summary and storage


def _time_text(value: int | None, time_unit: str) -> str | int | None:
    """A timestamp for humans: ISO-8601 UTC for ms, the ordinal itself otherwise."""
    if value is None or time_unit != TIME_UNIT_MS:
        return value
    return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat()


def summarize(events: pl.DataFrame, time_unit: str) -> dict[str, object]:
    """Counts, behaviour mix, time span and sequence-length quantiles of an EventLog."""
    lengths = events.group_by(USER).len()["len"].cast(pl.Float64)
    counts = events[BEHAVIOR].value_counts(sort=True)
    quantiles = {f"p{q}": lengths.quantile(q / 100, "linear") for q in (25, 50, 75, 90)}
    return {
        "n_users": events[USER].n_unique(),
        "n_items": events[ITEM].n_unique(),
        "n_events": events.height,
        "behavior_counts": dict(zip(counts[BEHAVIOR], counts["count"], strict=True)),
        "time_min": _time_text(events[TIMESTAMP].min(), time_unit),  # type: ignore[arg-type]
        "time_max": _time_text(events[TIMESTAMP].max(), time_unit),  # type: ignore[arg-type]
        "seq_len": {
            "min": lengths.min(),
            **quantiles,
            "max": lengths.max(),
            "mean": lengths.mean(),
        },
    }


def ingest_meta(result: IngestResult) -> dict[str, object]:
    """The content of ingest.json: accounting, provenance, reject reasons and the summary."""
    reasons = result.rejects["reason"].value_counts(sort=True)
    return {
        "format": result.format,
        "sources": list(result.sources),
        "time_unit": result.time_unit,
        "read": result.read,
        "kept": result.kept,
        "rejected": result.rejected,
        "columns": [c for c in OPTIONAL_COLUMNS if c in result.events.columns],
        "reject_reasons": dict(zip(reasons["reason"], reasons["count"], strict=True)),
        **summarize(result.events, result.time_unit),
    }


def write_ingest(result: IngestResult, out_dir: str | Path) -> dict[str, object]:
    """Write events.parquet, rejects.parquet and ingest.json into `out_dir`; return the JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.events.write_parquet(out / EVENTS_FILE)
    result.rejects.write_parquet(out / REJECTS_FILE)
    meta = ingest_meta(result)
    (out / INGEST_META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def read_events(in_dir: str | Path) -> tuple[pl.DataFrame, dict[str, object]]:
    """The EventLog and ingest.json written by `write_ingest`."""
    folder = Path(in_dir)
    if not folder.is_dir():
        raise ShopseqInputError(f"{folder}: not a directory (expected an ingest output)")
    missing = [n for n in (EVENTS_FILE, INGEST_META_FILE) if not (folder / n).is_file()]
    if missing:
        names = ", ".join(missing)
        raise ShopseqInputError(f"{folder}: not an ingest output (missing {names})")
    try:
        meta = json.loads((folder / INGEST_META_FILE).read_text())
    except json.JSONDecodeError as e:
        raise ShopseqInputError(f"{folder / INGEST_META_FILE}: invalid JSON ({e.msg})") from None
    events = pl.read_parquet(folder / EVENTS_FILE)
    for column in REQUIRED_COLUMNS:
        if column not in events.columns:
            listed = ", ".join(events.columns)
            raise ShopseqInputError(
                f"{folder / EVENTS_FILE}: column '{column}' not found (columns: {listed})"
            )
    return events, meta
