"""Typed, frozen run configuration: model and training sections, loaded from YAML/JSON + overrides.

    cfg = load_config("configs/amazon-beauty.yaml", ["model.d_model=128", "train.lr=5e-4"])

Unknown keys are errors that name the key; override values are parsed by the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shopseq.errors import ShopseqInputError

# The choices of the string options: a Literal-typed field is checked when its section is built
# (file, --set override or dataclasses.replace alike), so a bad value fails before any work.
Positions = Literal["first", "last"]
Init = Literal["normal", "xavier"]
ItemText = Literal["none", "add", "only"]
Loss = Literal["full", "sampled"]
Negatives = Literal["uniform", "popularity"]
NegativesPer = Literal["batch", "position"]
Objective = Literal["auto", "causal", "masked", "both"]
Schedule = Literal["constant", "linear", "cosine"]
Task = Literal["next-item", "next-behavior", "purchase", "churn"]
PeftMethod = Literal["none", "lora", "adapter", "prefix", "ia3"]
BinaryTask = Literal["purchase", "churn"]  # the yes/no tasks (text-classify's too)
TextPeft = Literal["none", "lora"]  # what text-classify can tune the text encoder with


def choices(options: Any) -> tuple[str, ...]:
    """The values of a Literal alias above, in order (e.g. for argparse ``choices``)."""
    return typing.get_args(options)


def _check_choices(section: str, obj: Any) -> None:
    for name, hint in _hints(type(obj)).items():
        allowed = choices(hint) if typing.get_origin(hint) is Literal else ()
        if allowed and getattr(obj, name) not in allowed:
            raise ShopseqInputError(
                f"unknown {section}.{name} '{getattr(obj, name)}'; "
                f"choose one of: {', '.join(allowed)}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """The Behaviour Transformer: event embeddings -> `transformers` backbone -> heads."""

    arch: str = "gpt2"  # any `transformers` model type: gpt2, llama (causal); bert (masked)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 1
    d_ff: int = 0  # feed-forward width; 0 = 4 * d_model (SASRec uses d_model)
    dropout: float = 0.2
    max_len: int = 50  # events per window (max_seq_len)
    # learned positions counted from the window's first event, or back from its latest one
    # (last: SASRec's left-padded positions; the event a prediction follows is always 0)
    positions: Positions = "first"
    use_behavior: bool = True
    use_time_gap: bool = True  # ignored (off) when the dataset's timestamps are ordinal
    use_category: bool = True  # used only when the dataset has categories
    n_time_buckets: int = 32  # log2-bucketed gap to the previous event, in seconds
    init_std: float = 0.02
    # normal: event tables N(0, init_std), the backbone its arch's own init; xavier: every
    # matrix xavier-normal, as SASRec and RecTools initialise (padding rows stay zero)
    init: Init = "normal"
    # the backbone's attention kernel, any `attn_implementation` of transformers: eager (plain
    # matmul + softmax; its dropout is our fast RandDropout: ~4% faster CPU steps than sdpa),
    # sdpa (torch's fused kernel: the one for long sequences on GPU), flash_attention_2 (GPU)
    attention: str = "eager"
    # item representation (also the tied next-item head): none = ID embedding; add = ID +
    # projected pretrained text embedding; only = projected text alone (unseen items scorable)
    item_text: ItemText = "none"
    # also project each item's attributes (the log's `attributes` column: brand, categories),
    # as the mean of one learned vector per attribute, into the item representation
    item_attributes: bool = False

    def __post_init__(self) -> None:
        _check_choices("model", self)

    @property
    def side_features(self) -> bool:
        """The item table reads a side table (text and/or attributes), not only ID rows."""
        return self.item_text != "none" or self.item_attributes

    @property
    def causal(self) -> bool:
        """Causal (next-event) backbones vs bidirectional masked ones (BERT-style)."""
        return self.arch not in BIDIRECTIONAL_ARCHS


BIDIRECTIONAL_ARCHS = ("bert", "roberta", "distilbert", "albert", "electra", "modernbert")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, objective and early stopping."""

    loss: Loss = "full"  # sampled: softmax over drawn negatives with logQ correction
    n_negatives: int = 256  # sampled softmax: negatives drawn per batch (or per position)
    negatives: Negatives = "uniform"
    # batch: one draw shared by every position of the batch; position: a draw for each position
    negatives_per: NegativesPer = "batch"
    # auto = causal for causal archs, masked for bidirectional ones; both = masked + a causal pass
    objective: Objective = "auto"
    mask_prob: float = 0.2  # masked-item objective (bidirectional archs)
    item_weight: float = 1.0  # next-item (or masked-item) loss weight
    behavior_weight: float = 0.0  # next-behaviour loss weight; 0 = head untrained
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: Schedule = "constant"  # the decay after warm-up
    min_lr_ratio: float = 0.0  # floor of the decayed lr as a share of lr
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 10  # epochs without a better valid NDCG@10 before stopping
    # 0 = no limit; else no epoch starts once this many seconds (training + validation) are spent
    max_seconds: float = 0.0
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    seed: int = 0
    eval_batch_size: int = 1024
    filter_seen: bool = True
    num_threads: int = 2  # torch CPU threads
    refit_for_test: bool = False  # test model = refit on train+valid for the best epoch count
    all_windows: bool = True  # long sequences contribute every max_len window, not just the last
    # 0 = off; else validation, the kept best and the test read an exponential moving average of
    # the weights, updated after every step with this decay (torch's AveragedModel)
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        _check_choices("train", self)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ShopseqInputError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.max_seconds < 0:
            raise ShopseqInputError(f"train.max_seconds must be >= 0, got {self.max_seconds}")
        for name in ("max_epochs", "patience"):  # 0 would stop before any model exists
            if getattr(self, name) < 1:
                raise ShopseqInputError(f"train.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class FinetuneConfig:
    """Adapting a pretrained run to a task, fully or with a `peft` method (train/finetune.py)."""

    task: Task = "purchase"
    peft: PeftMethod = "none"  # none = full fine-tuning
    lora_r: int = 8  # also the rank of `adapter` (LoRA on the feed-forward block)
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: str = ""  # comma-separated; "" = per-arch default (gpt2 c_attn, ...)
    n_virtual_tokens: int = 8  # prefix tuning
    train_embeddings: bool = False  # peft methods: also tune our event embeddings
    train_heads: bool = True  # peft methods: also tune the behaviour head (task heads always)
    horizon_hours: float = 24.0  # purchase within this many hours after the cut-off ...
    horizon_events: int = 0  # ... or, when > 0, within the next N events
    churn_days: float = 1.0  # churn = no event within this many days after the cut-off
    holdout_share: float = 0.15  # users held out at the train cut-off for early stopping
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 20
    patience: int = 3
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        _check_choices("finetune", self)


@dataclass(frozen=True)
class TextConfig:
    """The text-serialisation baseline (train/text_classifier.py): the pretrained MiniLM text
    encoder fine-tuned on histories written as text. Task, horizons, holdout, epochs, patience,
    LoRA rank and seed come from ``finetune``; threads from ``train.num_threads``."""

    max_tokens: int = 128  # per history, [CLS] and [SEP] included; the encoder allows 256
    lr: float = 5e-5  # full fine-tuning
    lora_lr: float = 1e-3  # with peft lora (only the adapter and the classifier train)
    batch_size: int = 16
    probe: bool = True  # "before": a logistic probe on the untuned encoder's mean-pooled states


@dataclass(frozen=True)
class TextTuneConfig:
    """LoRA-tuning the MiniLM text encoder on consecutive-item title pairs
    (train/text_encoder.py, ``shopseq tune-text``)."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    # CPU-sized defaults: a step encodes 2 * batch_size titles forward and backward through
    # MiniLM (~6 s on one loaded core at 32 x 32 tokens); raise them on a GPU.
    lr: float = 1e-3
    batch_size: int = 32
    steps: int = 150
    eval_every: int = 25
    max_pairs: int = 50_000  # training pairs sampled from the inputs (the rest are unused)
    holdout_pairs: int = 128  # held-out pairs: early stopping and the before/after report
    max_tokens: int = 32  # tokens per title while tuning; longer titles are truncated
    scale: float = 20.0  # cosine-similarity temperature of the in-batch softmax
    seed: int = 0
    num_threads: int = 2


@dataclass(frozen=True)
class RunConfig:
    """Everything `train` needs besides the dataset."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    text: TextConfig = field(default_factory=TextConfig)
    text_tune: TextTuneConfig = field(default_factory=TextTuneConfig)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """A RunConfig from a YAML/JSON file (or defaults) with ``key=value`` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_mapping(Path(path))
    cfg = config_from_dict(data, source=str(path) if path is not None else "config")
    return apply_overrides(cfg, overrides)


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> RunConfig:
    """Build a RunConfig from a nested mapping; unknown sections or keys are errors."""
    return _build(RunConfig, data, prefix="", source=source)


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """A JSON-serialisable nested dict (round-trips through :func:`config_from_dict`)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2))


def apply_overrides(cfg: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """Apply ``section.key=value`` strings; values parsed by the field's type."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ShopseqInputError(f"override '{item}' is not of the form key=value")
        cfg = _set(cfg, key.strip().split("."), raw.strip(), key.strip())
    return cfg


def _set(obj: Any, path: list[str], raw: str, full_key: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(obj)}
    if path[0] not in names:
        raise ShopseqInputError(_unknown(full_key, type(obj), names))
    fld = names[path[0]]
    hint = _hints(type(obj))[fld.name]
    if dataclasses.is_dataclass(hint):
        if len(path) == 1:
            raise ShopseqInputError(f"config key '{full_key}' is a section; set one of its keys")
        return dataclasses.replace(
            obj, **{fld.name: _set(getattr(obj, fld.name), path[1:], raw, full_key)}
        )
    if len(path) > 1:
        raise ShopseqInputError(_unknown(full_key, type(obj), names))
    return dataclasses.replace(obj, **{fld.name: _parse(raw, hint, full_key)})


def _build(cls: Any, data: Mapping[str, Any], prefix: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise ShopseqInputError(f"{source}: '{prefix.rstrip('.') or 'config'}' must be a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ShopseqInputError(f"{source}: " + _unknown(full, cls, names))
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, f"{full}.", source)
        else:
            kwargs[key] = _coerce(value, hint, full, source)
    try:
        return cls(**kwargs)
    except ShopseqInputError as err:  # a bad choice or range, named with the file
        raise ShopseqInputError(f"{source}: {err}") from None


def _unknown(key: str, cls: Any, names: Any) -> str:
    return f"unknown config key '{key}' (known in {cls.__name__}: {', '.join(sorted(names))})"


def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """A value read from YAML/JSON checked against (and widened to) the field's type."""
    if isinstance(value, str) and hint is not str:
        return _parse(value, hint, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, bool, str) and type(value) is not hint:
        raise ShopseqInputError(
            f"{source}: config key '{key}' must be {hint.__name__}, got {value!r}"
        )
    return value


def _parse(raw: str, hint: Any, key: str) -> Any:
    """Parse an override string by the field's type."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw.lower() in ("none", "null", ""):
            return None
        return _parse(raw, args[0], key)
    try:
        if hint is bool:
            low = raw.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is str or typing.get_origin(hint) is Literal:
            return raw  # a Literal's choices are checked when its section is built
    except ValueError:
        raise ShopseqInputError(
            f"config key '{key}' must be {hint.__name__}, got '{raw}'"
        ) from None
    raise ShopseqInputError(f"config key '{key}' has an unsupported type {hint}")


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ShopseqInputError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001 - any parse error is the user's file
        msg = str(err).replace("\n", " ")
        raise ShopseqInputError(f"{path}: cannot parse config: {msg}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ShopseqInputError(f"{path}: a config must be a mapping with model/train sections")
    return data
