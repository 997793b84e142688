"""Fixtures the CLI tests share: a small synthetic dataset and a tiny trained run."""

import pytest

from shopseq.cli import main


@pytest.fixture(scope="package")
def demo_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    assert main(["synth", "--out", str(root / "log"), "--users", "150", "--items", "200"]) == 0
    assert main(["prepare", str(root / "log"), "--out", str(root / "ds")]) == 0
    return root


@pytest.fixture(scope="package")
def trained_run(demo_dataset):
    run = demo_dataset / "run"
    tiny = ["train.max_epochs=1", "model.d_model=16", "model.n_layers=1", "model.max_len=10"]
    args = ["train", str(demo_dataset / "ds"), "--config", "configs/demo.yaml", "--out", str(run)]
    assert main(args + [x for s in tiny for x in ("--set", s)]) == 0
    return run
