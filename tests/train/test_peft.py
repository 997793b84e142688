from dataclasses import replace

import numpy as np
import pytest
import torch

from shopseq.config import FinetuneConfig, ModelConfig, RunConfig, save_config
from shopseq.data.batching import history_batch
from shopseq.data.dataset import prepare
from shopseq.data.sequences import SplitSpec
from shopseq.data.synth import SynthConfig, synth
from shopseq.errors import ShopseqInputError
from shopseq.train.finetune import TaskModel, load_finetuned, save_finetuned
from shopseq.train.fit import build_model, effective_config
from shopseq.train.peft import apply_peft, peft_config, trainable_summary

torch.set_num_threads(1)
METHODS = ["lora", "adapter", "prefix", "ia3"]


@pytest.fixture(scope="module")
def ds():
    events = synth(SynthConfig(n_users=60, n_items=40, n_categories=4, n_days=10, seed=5))
    return prepare(events, SplitSpec())


def small_cfg(ds, arch="gpt2", d_model=16, n_layers=1):
    model = ModelConfig(arch=arch, d_model=d_model, n_layers=n_layers, n_heads=2, max_len=12)
    return effective_config(RunConfig(model=model), ds)


def a_batch(ds, max_len):
    users = np.arange(8)
    return history_batch(ds.sequences, users, ds.sequences.offsets[users + 1], max_len)


def base_run(tmp_path, ds, cfg):
    torch.manual_seed(0)
    base = build_model(cfg, ds.vocab)
    from safetensors.torch import save_model

    save_model(base, str(tmp_path / "model.safetensors"))
    save_config(cfg, tmp_path / "config.json")
    ds.vocab.save(tmp_path / "vocab.json")
    return base


def nudge_trainable(model):
    """Move every trainable tensor off its init (LoRA's B starts at zero: a no-op adapter)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("method", METHODS)
def test_adapter_save_then_load_gives_identical_outputs(tmp_path, ds, method):
    cfg = small_cfg(ds)
    base = base_run(tmp_path, ds, cfg)
    model = TaskModel(base, "purchase")
    apply_peft(base, method, FinetuneConfig())
    nudge_trainable(model)
    run = tmp_path / "run"
    run.mkdir()
    save_finetuned(model, run)
    (run / "finetune.json").write_text(
        f'{{"base_run": "{tmp_path}", "task": "purchase", "peft": "{method}"}}'
    )
    save_config(cfg, run / "config.json")
    loaded, _ = load_finetuned(run)
    batch = a_batch(ds, base.max_len)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model.eval()(batch), rtol=0, atol=0)
    adapter_files = {p.name for p in (run / "adapter").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "task.safetensors"} <= adapter_files
    assert not (run / "model.safetensors").exists()  # the base is not copied


@pytest.mark.parametrize("method", METHODS)
def test_frozen_parameters_do_not_change_in_a_peft_step(ds, method):
    cfg = small_cfg(ds)
    torch.manual_seed(0)
    model = TaskModel(build_model(cfg, ds.vocab), "purchase")
    apply_peft(model.base, method, FinetuneConfig())
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("base.embed.") for n in frozen)  # embeddings frozen by default
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = model(a_batch(ds, model.base.max_len)).square().mean()
    loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    changed = [
        n
        for n, p in model.named_parameters()
        if n in trainable and not torch.equal(p, trainable[n])
    ]
    assert any("task_head" in n for n in changed)
    assert any(n.startswith("base.backbone.") for n in changed)  # the adapter itself learned


def test_lora_trains_under_5_percent_of_a_reasonably_sized_model(ds):
    cfg = small_cfg(ds, d_model=256, n_layers=4)
    model = TaskModel(build_model(cfg, ds.vocab), "purchase")
    apply_peft(model.base, "lora", FinetuneConfig(lora_r=8))
    summary = trainable_summary(model)
    assert summary["total_params"] > 3_000_000
    assert summary["trainable_share"] < 0.05
    # LoRA on c_attn: r * (d + 3d) per layer; task head: norm + linear; behaviour head: 5 classes
    lora, task_head, behavior_head = 4 * 8 * (256 + 3 * 256), 2 * 256 + 257, 257 * 5
    assert summary["trainable_params"] == lora + task_head + behavior_head


def test_full_finetuning_trains_all_but_the_unused_backbone_tables(ds):
    model = TaskModel(build_model(small_cfg(ds), ds.vocab), "purchase")
    apply_peft(model.base, "none", FinetuneConfig())
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.endswith(("wte.weight", "wpe.weight")) for n in frozen)


@pytest.mark.parametrize(
    ("arch", "targets"),
    [("gpt2", {"c_attn"}), ("llama", {"q_proj", "v_proj"}), ("bert", {"query", "value"})],
)
def test_lora_targets_default_per_arch(arch, targets):
    assert set(peft_config("lora", arch, FinetuneConfig()).target_modules) == targets


def test_lora_targets_from_config_win():
    cfg = FinetuneConfig(target_modules="c_attn, c_proj", lora_r=4, lora_alpha=8.0)
    config = peft_config("lora", "gpt2", cfg)
    assert set(config.target_modules) == {"c_attn", "c_proj"}
    assert (config.r, config.lora_alpha) == (4, 8.0)


def test_adapter_targets_only_the_feed_forward_block(ds):
    model = build_model(small_cfg(ds), ds.vocab)
    apply_peft(model, "adapter", FinetuneConfig())
    adapted = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if ".lora_A" in n}
    assert adapted and all(".mlp." in n for n in adapted)


def test_unknown_peft_method_is_named():
    with pytest.raises(ShopseqInputError, match="unknown peft method 'houlsby'"):
        peft_config("houlsby", "gpt2", FinetuneConfig())


def test_no_default_targets_for_an_unknown_arch_asks_for_them():
    with pytest.raises(ShopseqInputError, match="set finetune.target_modules"):
        peft_config("lora", "mistral", FinetuneConfig())


def test_train_embeddings_flag_unfreezes_the_event_embeddings(ds):
    model = build_model(small_cfg(ds), ds.vocab)
    apply_peft(model, "lora", replace(FinetuneConfig(), train_embeddings=True, train_heads=False))
    assert model.embed.items.weight.requires_grad
    assert not model.heads.behavior.weight.requires_grad
