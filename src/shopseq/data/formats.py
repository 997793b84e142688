"""Named readers: each turns a source file into raw string rows that remember file, line and text.

A reader never validates values; it only splits rows into canonical columns. A row it cannot split
(wrong field count, malformed JSON) still comes back, with its reason in ``ERROR``, so that ingest
can account for every input row.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from shopseq.data.schema import (
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

# Bookkeeping columns every reader returns next to the canonical ones.
FILE = "__file"
LINE = "__line"
RAW = "__raw"
ERROR = "__error"
_FIELDS = "__fields"

# How the raw timestamp column is to be parsed.
TIME_SECONDS = "s"
TIME_MS = "ms"
TIME_DATETIME = "datetime"
TIME_AUTO = "auto"
TIME_ORDINAL = "ordinal"

WRONG_FIELD_COUNT = "wrong field count"
MALFORMED_ROW = "malformed row"
REVIEW = (
    "review"  # raw behaviour of the Amazon review datasets; DEFAULT_BEHAVIOR_MAP maps it to buy
)

SHORT_KEYS: dict[str, str] = {
    "user": USER,
    "item": ITEM,
    "behavior": BEHAVIOR,
    "timestamp": TIMESTAMP,
    "category": CATEGORY,
    "price": PRICE,
    "title": TITLE,
}
COLUMN_ALIASES = SHORT_KEYS | {c: c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
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


def _line_frame(path: Path, lines: list[str], first_line: int = 1) -> pl.DataFrame:
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


def _split(frame: pl.DataFrame, sep: str | None, quoted: bool = False) -> pl.DataFrame:
    """Add the list column _FIELDS: split on `sep`, on runs of whitespace when `sep` is None."""
    raw = pl.col(RAW)
    if sep is None:
        return frame.with_columns(raw.str.extract_all(r"\S+").alias(_FIELDS))
    if quoted and frame[RAW].str.contains('"', literal=True).any():
        fields = [_csv_fields(line, sep) for line in frame[RAW]]
        return frame.with_columns(pl.Series(_FIELDS, fields, dtype=pl.List(pl.Utf8)))
    return frame.with_columns(raw.str.split(sep).alias(_FIELDS))


def _check_fields(
    frame: pl.DataFrame, path: Path, n: int, sep: str | None, at_least: bool = False
) -> pl.DataFrame:
    """Mark rows with the wrong number of fields; raise when the first row has one field only."""
    count = pl.col(_FIELDS).list.len()
    first = frame[_FIELDS][0] if frame.height else None
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


def _pick(frame: pl.DataFrame, positions: Mapping[str, int]) -> pl.DataFrame:
    """Bookkeeping columns plus each named column taken from its field position."""
    fields = [pl.col(_FIELDS).list.get(i, null_on_oob=True).alias(n) for n, i in positions.items()]
    return frame.select(FILE, LINE, RAW, ERROR, *fields)


def _resolve(
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


def _header_table(
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
    found = _resolve(header, wanted, optional or {}, path)
    frame = _split(_line_frame(path, lines[1:], first_line=2), sep, quoted=not recbole)
    if frame.height == 0:
        raise ShopseqInputError(f"{path}: no data rows")
    positions = {c: header.index(s) for c, s in found.items()}
    return _pick(_check_fields(frame, path, len(header), sep), positions)


def _ordinal_by_user() -> pl.Expr:
    """0, 1, 2, ... per user in row order: the timestamp of order-only sources."""
    return pl.int_range(pl.len(), dtype=pl.Int64).over(USER).alias(TIMESTAMP)


def _read_lookup(path: Path, key: int, value: int, header: bool) -> dict[str, str]:
    """A `key -> value` dict from two columns of a tab-separated side file (no quoting)."""
    lines = read_lines(path)[1:] if header else read_lines(path)
    fields = [line.split("\t") for line in lines]
    return {f[key]: f[value].strip() for f in fields if len(f) > max(key, value) and f[value]}


# ---------------------------------------------------------------- named formats


def read_taobao(path: Path) -> RawRows:
    """Taobao UserBehavior: `user,item,category,behavior,unix_seconds`, no header."""
    frame = _check_fields(_split(_line_frame(path, read_lines(path)), ","), path, 5, ",")
    rows = _pick(frame, {USER: 0, ITEM: 1, CATEGORY: 2, BEHAVIOR: 3, TIMESTAMP: 4})
    return RawRows(rows, TIME_SECONDS, (str(path),))


def read_rees46(path: Path) -> RawRows:
    """REES46 multi-category store CSV; title = category_code + brand."""
    wanted = {
        TIMESTAMP: "event_time",
        BEHAVIOR: "event_type",
        ITEM: "product_id",
        CATEGORY: "category_id",
        PRICE: "price",
        USER: "user_id",
        "code": "category_code",
        "brand": "brand",
    }
    frame = _header_table(path, ",", wanted)
    parts = [pl.col(c).str.strip_chars().replace("", None) for c in ("code", "brand")]
    title = pl.concat_str(parts, separator=" ", ignore_nulls=True).replace("", None)
    return RawRows(
        frame.with_columns(title.alias(TITLE)).drop("code", "brand"), TIME_DATETIME, (str(path),)
    )


def read_yoochoose(path: Path) -> RawRows:
    """YooChoose clicks: session-rec TSV (`SessionId, ItemId, Time`) or raw RecSys'15 clicks."""
    lines = read_lines(path)
    if "\t" in lines[0]:
        wanted = {USER: "SessionId", ITEM: "ItemId", TIMESTAMP: "Time"}
        frame, kind = _header_table(path, "\t", wanted), TIME_SECONDS
    else:  # raw yoochoose-clicks.dat: session,iso_time,item,category
        split = _check_fields(_split(_line_frame(path, lines), ","), path, 4, ",")
        frame, kind = _pick(split, {USER: 0, TIMESTAMP: 1, ITEM: 2, CATEGORY: 3}), TIME_DATETIME
    return RawRows(frame.with_columns(pl.lit("click").alias(BEHAVIOR)), kind, (str(path),))


def _otto_events(line: str) -> list[dict[str, object]] | None:
    """The events of one OTTO session line, each with its session; None when malformed."""
    try:
        session = json.loads(line)
    except json.JSONDecodeError:
        return None
    events = session.get("events") if isinstance(session, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return None
    return [{"session": session.get("session"), **e} for e in events]


def _text(value: object) -> str | None:
    """A JSON value as the string a CSV would have held (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list | bool) else str(value)


def read_otto(path: Path) -> RawRows:
    """OTTO sessions JSONL: one input row per event; a malformed line is one row."""
    keys = {USER: "session", ITEM: "aid", TIMESTAMP: "ts", BEHAVIOR: "type"}
    cols: dict[str, list[object]] = {c: [] for c in (LINE, RAW, ERROR, *keys)}
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        events = _otto_events(line)
        for event in events if events is not None else [{}]:
            cols[LINE].append(number)
            cols[RAW].append(line if events is None else json.dumps(event, separators=(",", ":")))
            cols[ERROR].append(MALFORMED_ROW if events is None else None)
            for canonical, key in keys.items():
                cols[canonical].append(_text(event.get(key)))
    schema = {LINE: pl.Int64, **{c: pl.Utf8 for c in cols if c != LINE}}
    rows = pl.DataFrame(cols, schema=schema).with_columns(pl.lit(str(path)).alias(FILE))
    return RawRows(rows, TIME_MS, (str(path),))


def read_sasrec(path: Path) -> RawRows:
    """SASRec `user item` pairs in time order: ordinal timestamps, behaviour `review`."""
    frame = _check_fields(_split(_line_frame(path, read_lines(path)), None), path, 2, None)
    rows = _pick(frame, {USER: 0, ITEM: 1})
    extra = [_ordinal_by_user(), pl.lit(REVIEW).alias(BEHAVIOR)]
    return RawRows(rows.with_columns(extra), TIME_ORDINAL, (str(path),))


def read_s3rec(path: Path) -> RawRows:
    """S3-Rec `user item1 item2 ...` per line; titles from a sibling `<stem>_items.tsv`."""
    lines = _check_fields(_split(_line_frame(path, read_lines(path)), None), path, 2, None, True)
    ok = lines.filter(pl.col(ERROR).is_null())
    events = ok.select(
        FILE,
        LINE,
        ERROR,
        pl.col(_FIELDS).list.first().alias(USER),
        pl.col(_FIELDS).list.slice(1).alias(ITEM),
    ).explode(ITEM)
    events = events.with_columns(pl.concat_str(USER, ITEM, separator=" ").alias(RAW))
    bad = _pick(lines.filter(pl.col(ERROR).is_not_null()), {USER: 0})
    rows = pl.concat([events, bad], how="diagonal").sort(LINE, maintain_order=True)
    rows = rows.with_columns(_ordinal_by_user(), pl.lit(REVIEW).alias(BEHAVIOR))
    sources: tuple[str, ...] = (str(path),)
    items = path.with_name(f"{path.stem}_items.tsv")
    if items.is_file() and "title" in read_lines(items)[0].split("\t"):
        titles = _read_lookup(items, 0, 2, header=True)
        rows = rows.with_columns(_titles(titles))
        sources += (str(items),)
    return RawRows(rows, TIME_ORDINAL, sources)


def _titles(titles: Mapping[str, str]) -> pl.Expr:
    """The TITLE column looked up from ITEM (null where the item has no title)."""
    return pl.col(ITEM).replace_strict(titles, default=None, return_dtype=pl.Utf8).alias(TITLE)


# ---------------------------------------------------------------- RecBole atomic files

_PARTS = ("train", "valid", "test")
_PART = "__part"
_HISTORY = "item_id_list"


def _recbole_files(path: Path) -> tuple[str, list[Path]]:
    """The stem and the `.inter` files to read: the train/valid/test trio when `path` names one."""
    for part in _PARTS:
        suffix = f".{part}.inter"
        if path.name.endswith(suffix):
            if not path.is_file():
                raise ShopseqInputError(f"file not found: {path}")
            stem = path.name.removesuffix(suffix)
            break
    else:
        if path.is_file():
            return path.name.removesuffix(".inter"), [path]
        stem = path.name
    files = [path.with_name(f"{stem}.{p}.inter") for p in _PARTS]
    present = [f for f in files if f.is_file()]
    if not present:
        raise ShopseqInputError(f"file not found: {path}")
    return stem, present


def _rebuild_sequences(rows: pl.DataFrame) -> pl.DataFrame:
    """Full sequences from (history, target) rows: the earliest row's history, then each target.

    Rows are ordered train < valid < test, then by history length; train rows of a user are
    stored newest first, so on equal (truncated) history length the later file line is older.
    """
    history = pl.col(_HISTORY).str.extract_all(r"\S+")
    ordered = rows.with_columns(history.alias(_HISTORY)).sort(
        [pl.col(USER), pl.col(_PART), pl.col(_HISTORY).list.len(), pl.col(LINE)],
        descending=[False, False, False, True],
        maintain_order=True,
    )
    first = ordered.filter(pl.col(USER).is_first_distinct())
    prefix = first.drop(ITEM).explode(_HISTORY).rename({_HISTORY: ITEM}).drop_nulls(ITEM)
    targets = ordered.drop(_HISTORY)
    both = pl.concat([prefix.with_columns(order=0), targets.with_columns(order=1)], how="diagonal")
    return both.sort(USER, "order", maintain_order=True).drop("order")


def read_recbole(path: Path) -> RawRows:
    """RecBole `.inter`: plain or the sequential train/valid/test trio; titles from `.text`."""
    stem, files = _recbole_files(path)
    wanted = {USER: "user_id", ITEM: "item_id"}
    optional = {_HISTORY: _HISTORY, TIMESTAMP: "timestamp"}
    parts = [
        _header_table(f, "\t", wanted, optional, recbole=True).with_columns(pl.lit(i).alias(_PART))
        for i, f in enumerate(files)
    ]
    rows = pl.concat(parts, how="diagonal")
    if _HISTORY in rows.columns:
        ok = rows.filter(pl.col(ERROR).is_null())
        bad = rows.filter(pl.col(ERROR).is_not_null()).drop(_HISTORY)
        rows = pl.concat([_rebuild_sequences(ok), bad], how="diagonal")
    kind = TIME_SECONDS if TIMESTAMP in rows.columns else TIME_ORDINAL
    if kind == TIME_ORDINAL:
        rows = rows.with_columns(_ordinal_by_user())
    rows = rows.drop(_PART).with_columns(pl.lit(REVIEW).alias(BEHAVIOR))
    sources = tuple(str(f) for f in files)
    text, index = path.with_name(f"{stem}.text"), path.with_name(f"{stem}.item2index")
    if text.is_file():
        titles = _read_lookup(text, 0, 1, header=True)
        if index.is_file():
            asins = _read_lookup(index, 1, 0, header=False)
            titles = {i: titles[a] for i, a in asins.items() if a in titles}
            sources += (str(index),)
        rows = rows.with_columns(_titles(titles))
        sources += (str(text),)
    return RawRows(rows, kind, sources)


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
    found = _resolve(table.columns, wanted, optional, path)
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
    found = _resolve(keys, wanted, optional, path)
    cols: dict[str, list[object]] = {
        LINE: [n for n, _ in numbered],
        RAW: [line for _, line in numbered],
        ERROR: [None if o is not None else MALFORMED_ROW for o in objects],
    }
    for canonical, key in found.items():
        cols[canonical] = [_text(o.get(key)) if o is not None else None for o in objects]
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
        rows = _header_table(path, kind, wanted, optional)
    if BEHAVIOR not in rows.columns:
        rows = rows.with_columns(pl.lit("view").alias(BEHAVIOR))
    if TIMESTAMP in rows.columns:
        return RawRows(rows, TIME_AUTO, (str(path),))
    return RawRows(rows.with_columns(_ordinal_by_user()), TIME_ORDINAL, (str(path),))


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
