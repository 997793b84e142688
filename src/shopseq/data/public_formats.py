"""Readers of public dataset layouts: Taobao, REES46, YooChoose, OTTO, SASRec, S3-Rec, RecBole.

Each turns its dataset's file(s) into RawRows; the generic CSV / TSV / Parquet / JSONL reader and
the registry of format names live in formats.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from shopseq.data.raw_rows import (
    ERROR,
    FIELDS,
    FILE,
    LINE,
    MALFORMED_ROW,
    RAW,
    TIME_DATETIME,
    TIME_MS,
    TIME_ORDINAL,
    TIME_SECONDS,
    RawRows,
    check_fields,
    header_table,
    json_text,
    line_frame,
    ordinal_by_user,
    pick_fields,
    read_lines,
    split_fields,
)
from shopseq.data.schema import (
    ATTRIBUTE_SEP,
    ATTRIBUTES,
    BEHAVIOR,
    CATEGORY,
    ITEM,
    PRICE,
    TIMESTAMP,
    TITLE,
    USER,
)
from shopseq.errors import ShopseqInputError

REVIEW = (
    "review"  # raw behaviour of the Amazon review datasets; DEFAULT_BEHAVIOR_MAP maps it to buy
)


def _read_lookup(path: Path, key: int, value: int, header: bool) -> dict[str, str]:
    """A `key -> value` dict from two columns of a tab-separated side file (no quoting)."""
    lines = read_lines(path)[1:] if header else read_lines(path)
    fields = [line.split("\t") for line in lines]
    return {f[key]: f[value].strip() for f in fields if len(f) > max(key, value) and f[value]}


# ---------------------------------------------------------------- named formats


def read_taobao(path: Path) -> RawRows:
    """Taobao UserBehavior: `user,item,category,behavior,unix_seconds`, no header."""
    frame = check_fields(split_fields(line_frame(path, read_lines(path)), ","), path, 5, ",")
    rows = pick_fields(frame, {USER: 0, ITEM: 1, CATEGORY: 2, BEHAVIOR: 3, TIMESTAMP: 4})
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
    frame = header_table(path, ",", wanted)
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
        frame, kind = header_table(path, "\t", wanted), TIME_SECONDS
    else:  # raw yoochoose-clicks.dat: session,iso_time,item,category
        clicks = check_fields(split_fields(line_frame(path, lines), ","), path, 4, ",")
        frame, kind = (
            pick_fields(clicks, {USER: 0, TIMESTAMP: 1, ITEM: 2, CATEGORY: 3}),
            TIME_DATETIME,
        )
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
                cols[canonical].append(json_text(event.get(key)))
    schema = {LINE: pl.Int64, **{c: pl.Utf8 for c in cols if c != LINE}}
    rows = pl.DataFrame(cols, schema=schema).with_columns(pl.lit(str(path)).alias(FILE))
    return RawRows(rows, TIME_MS, (str(path),))


def read_sasrec(path: Path) -> RawRows:
    """SASRec `user item` pairs in time order: ordinal timestamps, behaviour `review`."""
    frame = check_fields(split_fields(line_frame(path, read_lines(path)), None), path, 2, None)
    rows = pick_fields(frame, {USER: 0, ITEM: 1})
    extra = [ordinal_by_user(), pl.lit(REVIEW).alias(BEHAVIOR)]
    return RawRows(rows.with_columns(extra), TIME_ORDINAL, (str(path),))


def read_s3rec(path: Path) -> RawRows:
    """S3-Rec `user item1 item2 ...` per line; titles from a sibling `<stem>_items.tsv`, item
    attributes (brand, categories) from a sibling `<stem>_item2attributes.json`."""
    lines = check_fields(
        split_fields(line_frame(path, read_lines(path)), None), path, 2, None, True
    )
    ok = lines.filter(pl.col(ERROR).is_null())
    events = ok.select(
        FILE,
        LINE,
        ERROR,
        pl.col(FIELDS).list.first().alias(USER),
        pl.col(FIELDS).list.slice(1).alias(ITEM),
    ).explode(ITEM)
    events = events.with_columns(pl.concat_str(USER, ITEM, separator=" ").alias(RAW))
    bad = pick_fields(lines.filter(pl.col(ERROR).is_not_null()), {USER: 0})
    rows = pl.concat([events, bad], how="diagonal").sort(LINE, maintain_order=True)
    rows = rows.with_columns(ordinal_by_user(), pl.lit(REVIEW).alias(BEHAVIOR))
    sources: tuple[str, ...] = (str(path),)
    items = path.with_name(f"{path.stem}_items.tsv")
    if items.is_file() and "title" in read_lines(items)[0].split("\t"):
        titles = _read_lookup(items, 0, 2, header=True)
        rows = rows.with_columns(_by_item(titles, TITLE))
        sources += (str(items),)
    attributes = path.with_name(f"{path.stem}_item2attributes.json")
    if attributes.is_file():
        rows = rows.with_columns(_by_item(_read_attributes(attributes), ATTRIBUTES))
        sources += (str(attributes),)
    return RawRows(rows, TIME_ORDINAL, sources)


def _read_attributes(path: Path) -> dict[str, str]:
    """S3-Rec `{"item": [attribute ids]}` as `item -> "a|b|c"` (items without any left out)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            str(item): ATTRIBUTE_SEP.join(str(a) for a in attrs)
            for item, attrs in raw.items()
            if attrs
        }
    except (ValueError, AttributeError, TypeError) as err:
        raise ShopseqInputError(
            f"{path}: not an S3-Rec item2attributes file ({{item: [attribute ids]}}): {err}"
        ) from err


def _by_item(values: Mapping[str, str], column: str) -> pl.Expr:
    """``column`` looked up from ITEM in ``values`` (null where the item has no value)."""
    return pl.col(ITEM).replace_strict(values, default=None, return_dtype=pl.Utf8).alias(column)


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
        header_table(f, "\t", wanted, optional, recbole=True).with_columns(pl.lit(i).alias(_PART))
        for i, f in enumerate(files)
    ]
    rows = pl.concat(parts, how="diagonal")
    if _HISTORY in rows.columns:
        ok = rows.filter(pl.col(ERROR).is_null())
        bad = rows.filter(pl.col(ERROR).is_not_null()).drop(_HISTORY)
        rows = pl.concat([_rebuild_sequences(ok), bad], how="diagonal")
    kind = TIME_SECONDS if TIMESTAMP in rows.columns else TIME_ORDINAL
    if kind == TIME_ORDINAL:
        rows = rows.with_columns(ordinal_by_user())
    rows = rows.drop(_PART).with_columns(pl.lit(REVIEW).alias(BEHAVIOR))
    sources = tuple(str(f) for f in files)
    text, index = path.with_name(f"{stem}.text"), path.with_name(f"{stem}.item2index")
    if text.is_file():
        titles = _read_lookup(text, 0, 1, header=True)
        if index.is_file():
            asins = _read_lookup(index, 1, 0, header=False)
            titles = {i: titles[a] for i, a in asins.items() if a in titles}
            sources += (str(index),)
        rows = rows.with_columns(_by_item(titles, TITLE))
        sources += (str(text),)
    return RawRows(rows, kind, sources)
