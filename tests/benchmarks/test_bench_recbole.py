"""The RecBole benchmark's log parsing, which its resumed runs' wall time rests on."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_recbole.py"
spec = importlib.util.spec_from_file_location("bench_recbole", SCRIPT)
assert spec is not None and spec.loader is not None
bench_recbole = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_recbole)


def epoch(n: int, train_s: float, valid_s: float, score: float, saved: bool) -> str:
    """One epoch as RecBole 1.2.1 logs it."""
    lines = [
        f"Thu 03 Dec 2026 08:58:20 INFO  epoch {n} training [time: {train_s}s, train loss: 4.5]",
        f"Thu 03 Dec 2026 08:58:31 INFO  epoch {n} evaluating [time: {valid_s}s, "
        f"valid_score: {score}]",
        "Thu 03 Dec 2026 08:58:31 INFO  valid result: ",
        "hit@5 : 0.08    hit@10 : 0.10    ndcg@10 : 0.06",
    ]
    if saved:
        lines.append("Thu 03 Dec 2026 08:58:31 INFO  Saving current: /tmp/w/saved/SASRec.pth")
    return "\n".join(lines) + "\n"


def test_parse_log_marks_the_epochs_saved_as_best() -> None:
    text = epoch(0, 10.0, 1.0, 0.01, True) + epoch(1, 12.0, 1.5, 0.005, False)
    assert bench_recbole.parse_log(text) == [
        {"epoch": 0, "train_seconds": 10.0, "train_loss": 4.5, "valid_seconds": 1.0,
         "valid_score": 0.01, "improved": True},
        {"epoch": 1, "train_seconds": 12.0, "train_loss": 4.5, "valid_seconds": 1.5,
         "valid_score": 0.005, "improved": False},
    ]  # fmt: skip


def test_resume_keeps_epochs_up_to_the_last_saved_one_with_cumulative_wall(
    tmp_path: Path,
) -> None:
    first = tmp_path / "a.log"
    first.write_text(
        epoch(0, 10.0, 1.0, 0.01, True)
        + epoch(1, 20.0, 2.0, 0.02, True)
        + epoch(2, 30.0, 3.0, 0.015, False)  # replayed by the resumed run: dropped
    )
    epochs = bench_recbole.epochs_before_resume([first])
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert [e["wall_seconds"] for e in epochs] == [11.0, 33.0]


def test_a_later_segment_replaces_the_epochs_it_replayed(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(epoch(0, 10.0, 1.0, 0.01, True) + epoch(1, 20.0, 2.0, 0.0, False))
    second.write_text(epoch(1, 5.0, 1.0, 0.03, True))
    epochs = bench_recbole.epochs_before_resume([first, second])
    assert [(e["epoch"], e["wall_seconds"]) for e in epochs] == [(0, 11.0), (1, 17.0)]


def test_resume_without_a_saved_epoch_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(epoch(0, 10.0, 1.0, 0.0, False))
    with pytest.raises(SystemExit, match="nothing to resume: no epoch was saved in"):
        bench_recbole.epochs_before_resume([log])
