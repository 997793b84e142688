"""The `shopseq` command: one thin sub-command per step of the pipeline.

Each family of commands (data, evaluate, train, recommend) registers its sub-commands and
holds their handlers; heavy libraries are imported inside the handlers so `shopseq --help`
stays instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from shopseq.cli import data, evaluate, recommend, train
from shopseq.errors import ShopseqInputError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopseq",
        description="Predict what an online shopper does next from their behaviour sequence.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # `shopseq --help` lists the commands in the order they are registered here
    data.register(sub)  # synth, ingest, prepare
    evaluate.register(sub)  # evaluate
    train.register(sub)  # train, pretrain, tune-text, finetune, text-classify
    recommend.register(sub)  # recommend
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.func(args)
    except ShopseqInputError as err:
        print(f"shopseq: error: {err}", file=sys.stderr)
        return 2
    return 0
