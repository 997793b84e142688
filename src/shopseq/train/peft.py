"""Parameter-efficient tuning of the HF backbone with the `peft` library.

    apply_peft(model, "lora", cfg.finetune)  # backbone wrapped in place: base frozen
    print(trainable_summary(model))

Methods (``finetune.peft``):
- ``lora``: low-rank updates of the attention projections (gpt2 ``c_attn``, llama
  ``q_proj,v_proj``, bert ``query,value``; ``finetune.target_modules`` overrides).
- ``adapter``: peft has no Houlsby bottleneck adapter; the closest is a *parallel* bottleneck
  on the feed-forward block, i.e. LoRA on the MLP projections (gpt2 ``mlp.c_fc,mlp.c_proj``):
  a rank-r down/up branch added beside the FFN, as parallel adapters are, but linear (no
  activation inside the bottleneck).
- ``prefix``: peft prefix tuning (trained key/value prefixes in every layer). It works on a bare
  backbone fed ``inputs_embeds``: peft prepends the prefix as a KV cache and widens the mask.
- ``ia3``: learned rescaling of keys, values and the FFN (peft's per-arch defaults).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from shopseq.config import FinetuneConfig, PeftMethod, choices
from shopseq.errors import ShopseqInputError
from shopseq.models.behavior_model import BehaviorModel

PEFT_METHODS = choices(PeftMethod)  # the config's finetune.peft choices

LORA_TARGETS = {"gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"], "bert": ["query", "value"]}
# full module names as regexes, so gpt2's attention c_proj or bert's attention output are skipped
ADAPTER_TARGETS = {
    "gpt2": r".*\.mlp\.(c_fc|c_proj)",
    "llama": r".*\.mlp\.(up_proj|down_proj)",
    "bert": r".*\.layer\.\d+\.(intermediate|output)\.dense",
}
IA3_TARGETS = {
    "gpt2": (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    "llama": (["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "bert": (["key", "value", "output.dense"], ["output.dense"]),
}


def peft_config(
    method: str, arch: str, cfg: FinetuneConfig, task_type: str = "FEATURE_EXTRACTION"
) -> Any:
    """The `peft` config of ``method`` for a backbone of type ``arch``.

    ``task_type`` is peft's: FEATURE_EXTRACTION for our bare backbone, SEQ_CLS for a
    `transformers` sequence classifier (peft then also trains and saves its classifier).
    """
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, TaskType

    targets: Any = [t.strip() for t in cfg.target_modules.split(",") if t.strip()] or None
    task = TaskType(task_type)
    if method == "lora":
        targets = targets or LORA_TARGETS.get(arch)
    elif method == "adapter":
        targets = targets or ADAPTER_TARGETS.get(arch)
    if method in ("lora", "adapter"):
        if targets is None:
            raise ShopseqInputError(_no_default(method, arch))
        return LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,  # type: ignore[arg-type]  # a float works
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,
            fan_in_fan_out=arch == "gpt2",  # GPT-2 stores its projections as Conv1D
            task_type=task,
        )
    if method == "ia3":
        if targets is None and arch not in IA3_TARGETS:
            raise ShopseqInputError(_no_default(method, arch))
        attn, ffn = IA3_TARGETS.get(arch, (targets, []))
        return IA3Config(
            target_modules=targets or attn,
            feedforward_modules=[t for t in ffn if targets is None or t in targets],
            fan_in_fan_out=arch == "gpt2",
            task_type=task,
        )
    if method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=cfg.n_virtual_tokens, task_type=task)
    raise ShopseqInputError(f"unknown peft method '{method}'; choose one of: {_methods()}")


def apply_peft(model: BehaviorModel, method: str, cfg: FinetuneConfig) -> nn.Module:
    """Wrap ``model.backbone.model`` (in place) with ``method``; set what trains.

    ``none`` trains everything (full fine-tuning). Otherwise the backbone is frozen but for the
    peft parameters; event embeddings train with ``cfg.train_embeddings``, the behaviour head
    with ``cfg.train_heads``. Task heads live outside ``model`` and stay trainable.
    """
    if method not in PEFT_METHODS:
        raise ShopseqInputError(f"unknown peft method '{method}'; choose one of: {_methods()}")
    if method == "none":
        for name, p in model.named_parameters():
            # the backbone's unused token/position tables stay frozen and zero
            p.requires_grad_(not _is_unused_table(model, name))
        return model
    from peft import get_peft_model

    model.requires_grad_(False)
    hf: Any = model.backbone.model
    if method == "prefix":
        make_room_for_prefix(hf, cfg.n_virtual_tokens)
    model.backbone.model = get_peft_model(hf, peft_config(method, hf.config.model_type, cfg))
    set_trainable(model, cfg)
    return model


def set_trainable(model: BehaviorModel, cfg: FinetuneConfig) -> None:
    """Our own modules' trainable flags under a peft method (peft sets the backbone's)."""
    model.embed.requires_grad_(cfg.train_embeddings)
    model.heads.behavior.requires_grad_(cfg.train_heads)


def adapter_state(model: BehaviorModel) -> Any:
    """The `PeftModel` inside ``model`` (for ``save_pretrained``), or None without peft."""
    from peft import PeftModel

    hf: Any = model.backbone.model
    return hf if isinstance(hf, PeftModel) else None


def load_adapter(model: BehaviorModel, adapter_dir: str, name: str = "default") -> BehaviorModel:
    """Attach a saved adapter (``save_pretrained`` output) to a base model, frozen, in place."""
    from peft import PeftConfig, PeftModel

    config = PeftConfig.from_pretrained(adapter_dir)
    if config.peft_type == "PREFIX_TUNING":
        make_room_for_prefix(model.backbone.model, config.num_virtual_tokens)
    model.backbone.model = PeftModel.from_pretrained(
        model.backbone.model, adapter_dir, adapter_name=name
    )
    return model


def make_room_for_prefix(hf: Any, n_virtual_tokens: int) -> None:
    """Grow the backbone's (zero, frozen, unused) position tables by ``n_virtual_tokens`` rows.

    peft prefix tuning shifts ``position_ids`` past the prefix; our own EventEmbedding encodes
    positions, so the backbone's tables are all zeros and growing them changes no output.
    """
    n_positions = hf.config.max_position_embeddings
    for name, module in list(hf.named_modules()):
        if isinstance(module, nn.Embedding) and module.num_embeddings == n_positions:
            if module.weight.abs().sum() != 0:
                raise ShopseqInputError(f"prefix tuning: position table {name} is not unused")
            grown = nn.Embedding(n_positions + n_virtual_tokens, module.embedding_dim)
            nn.init.zeros_(grown.weight)
            grown.weight.requires_grad_(False)
            parent, _, child = name.rpartition(".")
            setattr(hf.get_submodule(parent), child, grown)
    hf.config.max_position_embeddings = n_positions + n_virtual_tokens


def trainable_summary(model: nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts (shared tensors once) and the trainable share."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": trainable / max(1, total),
    }


def _is_unused_table(model: nn.Module, name: str) -> bool:
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return name.startswith("backbone.") and isinstance(module, nn.Embedding)


def _no_default(method: str, arch: str) -> str:
    return (
        f"peft method '{method}' has no default target modules for arch '{arch}'; "
        "set finetune.target_modules"
    )


def _methods() -> str:
    return ", ".join(PEFT_METHODS)
