import json
from dataclasses import replace

import pytest

from shopseq.config import (
    Loss,
    ModelConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    choices,
    config_from_dict,
    config_to_dict,
    load_config,
)
from shopseq.errors import ShopseqInputError


def test_defaults_are_laptop_sized():
    cfg = load_config()
    assert cfg.model.d_model == 64 and cfg.model.max_len == 50 and cfg.model.causal


def test_overrides_are_parsed_by_field_type():
    cfg = apply_overrides(
        RunConfig(),
        ["model.d_model=128", "train.lr=5e-4", "model.use_behavior=false", "model.arch=bert"],
    )
    assert cfg.model.d_model == 128 and isinstance(cfg.model.d_model, int)
    assert cfg.train.lr == 5e-4
    assert cfg.model.use_behavior is False
    assert not cfg.model.causal


def test_unknown_override_key_is_named():
    with pytest.raises(ShopseqInputError, match=r"unknown config key 'model.d_modle'"):
        apply_overrides(RunConfig(), ["model.d_modle=3"])


def test_unknown_section_is_named():
    with pytest.raises(ShopseqInputError, match=r"unknown config key 'optim'"):
        config_from_dict({"optim": {"lr": 1}})


def test_unknown_file_key_is_named_with_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  d_model: 32\n  n_layer: 3\n")
    with pytest.raises(ShopseqInputError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: unknown config key 'model.n_layer'")


def test_bad_value_names_key_and_type():
    with pytest.raises(
        ShopseqInputError, match=r"config key 'train.batch_size' must be int, got 'big'"
    ):
        apply_overrides(RunConfig(), ["train.batch_size=big"])


def test_override_without_equals_is_an_error():
    with pytest.raises(ShopseqInputError, match="not of the form key=value"):
        apply_overrides(RunConfig(), ["model.d_model"])


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("model.positions", "mid", "first, last"),
        ("model.init", "he", "normal, xavier"),
        ("model.item_text", "both", "none, add, only"),
        ("train.loss", "bpr", "full, sampled"),
        ("train.negatives", "hard", "uniform, popularity"),
        ("train.negatives_per", "user", "batch, position"),
        ("train.objective", "clm", "auto, causal, masked, both"),
        ("train.schedule", "step", "constant, linear, cosine"),
        ("finetune.task", "ltv", "next-item, next-behavior, purchase, churn"),
        ("finetune.peft", "dora", "none, lora, adapter, prefix, ia3"),
    ],
)
def test_a_bad_choice_is_named_when_the_config_is_built(key, value, allowed):
    with pytest.raises(ShopseqInputError) as err:
        apply_overrides(RunConfig(), [f"{key}={value}"])
    assert str(err.value) == f"unknown {key} '{value}'; choose one of: {allowed}"


@pytest.mark.parametrize("value", ["1.0", "-0.5"])
def test_ema_decay_outside_0_1_is_named_when_the_config_is_built(value):
    with pytest.raises(ShopseqInputError) as err:
        apply_overrides(RunConfig(), [f"train.ema_decay={value}"])
    assert str(err.value) == f"train.ema_decay must be in [0, 1), got {value}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_seconds=-1", "train.max_seconds must be >= 0, got -1.0"),
        ("train.max_epochs=0", "train.max_epochs must be >= 1, got 0"),
        ("train.patience=0", "train.patience must be >= 1, got 0"),
    ],
)
def test_stopping_limits_out_of_range_are_named_when_the_config_is_built(override, message):
    with pytest.raises(ShopseqInputError) as err:
        apply_overrides(RunConfig(), [override])
    assert str(err.value) == message


def test_a_bad_choice_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  loss: sampled\n  negatives: 3\n")
    with pytest.raises(ShopseqInputError) as err:
        load_config(path)
    assert (
        str(err.value) == f"{path}: unknown train.negatives '3'; choose one of: uniform, popularity"
    )


def test_every_choice_is_accepted_and_replace_checks_too():
    for loss in choices(Loss):
        assert replace(TrainConfig(), loss=loss).loss == loss
    with pytest.raises(ShopseqInputError, match="unknown train.schedule 'step'"):
        replace(TrainConfig(), schedule="step")  # type: ignore[arg-type]


def test_yaml_int_widens_to_float_and_wrong_type_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1\n")
    assert load_config(path).train.lr == 1.0
    path.write_text("train:\n  batch_size: 1.5\n")
    with pytest.raises(ShopseqInputError, match="'train.batch_size' must be int"):
        load_config(path)


def test_json_round_trip(tmp_path):
    cfg = RunConfig(model=ModelConfig(d_model=32, arch="llama"))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config_to_dict(cfg)))
    assert load_config(path) == cfg


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"amazon-beauty.yaml", "amazon-sports.yaml", "amazon-toys.yaml", "demo.yaml"} <= set(
        names
    )
    for name in names:
        load_config(root / name)
