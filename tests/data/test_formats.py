"""The format registry names every reader; the `csv` reader's cases live in test_ingest.py."""

from __future__ import annotations

from shopseq.data import formats


def test_readers_registry_names_every_format() -> None:
    assert list(formats.READERS) == [
        "taobao",
        "rees46",
        "yoochoose",
        "otto",
        "sasrec",
        "s3rec",
        "recbole",
        "csv",
    ]
