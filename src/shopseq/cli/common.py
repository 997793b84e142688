"""What several command families share: the run record, the reported metrics, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopseq.data.dataset import Dataset

REPORT_METRICS = ("HR@10", "NDCG@10", "MRR@10", "HR@20", "NDCG@20")
RUN_FILE = "run.json"  # records which prepared dataset a run was trained on


def run_dataset(run_dir: str) -> Dataset:
    """The prepared dataset a run was trained on (recorded in its run.json)."""
    from shopseq.data.dataset import load_dataset

    info = json.loads((Path(run_dir) / RUN_FILE).read_text())
    return load_dataset(info["dataset"])


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
