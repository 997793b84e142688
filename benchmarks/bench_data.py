"""The real datasets the benchmarks read, in one table (paths relative to SHOPSEQ_DATA_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOPSEQ_DATA_DIR", ROOT.parent / "shared" / "data"))

# name: (relative path, ingest format, filter seen items when ranking). Amazon sets follow the
# S3-Rec protocol (seen items filtered); event logs keep them (repeat views are real next events).
DATASETS: dict[str, tuple[str, str, bool]] = {
    "beauty": ("amazon-beauty/Beauty.txt", "s3rec", True),
    "sports": ("amazon-sports/Sports_and_Outdoors.txt", "s3rec", True),
    "toys": ("amazon-toys/Toys_and_Games.txt", "s3rec", True),
    "videogames": ("amazon-videogames/Video.txt", "sasrec", True),
    "scientific": ("amazon-scientific/Scientific.train.inter", "recbole", True),
    "taobao": ("taobao-userbehavior-sample/UserBehavior_sample.csv.gz", "taobao", False),
    "yoochoose": ("yoochoose-clicks-100k/yoochoose-clicks-100k_train_full.txt", "yoochoose", False),
    "rees46": ("rees46-ecommerce-head-sample/2019-Oct_head10k.csv.gz", "rees46", False),
    "otto": ("otto-sessions-sample/train_20sessions.jsonl", "otto", False),
}
