import json

from shopseq.cli import main


def test_evaluate_writes_metrics_in_the_contract_shape(demo_dataset, capsys):
    out = demo_dataset / "pop"
    code = main(["evaluate", str(demo_dataset / "ds"), "--baseline", "pop", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"valid", "test"}
    for k in (5, 10, 20):
        assert 0.0 <= metrics["test"][f"NDCG@{k}"] <= metrics["test"][f"HR@{k}"] <= 1.0
    assert "pop" in capsys.readouterr().out


def test_evaluate_all_baselines_side_by_side(demo_dataset, capsys):
    out = demo_dataset / "all"
    assert main(["evaluate", str(demo_dataset / "ds"), "--filter-seen", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    for name in ("pop", "recent-pop", "markov", "itemknn"):
        assert name in table
        assert (out / name / "metrics.json").exists()
