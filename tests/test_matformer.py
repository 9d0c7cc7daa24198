"""MatFormer building blocks: a MatViT is a plain ViT, granularities nest, extraction keeps the outputs."""
from __future__ import annotations

import pytest
import torch

from zoo.models.matformer import GRANULARITIES, MatViT, NestedMlp, extract


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size,arch", [("ti", "vit_tiny_patch16_224"), ("s", "vit_small_patch16_224"), ("b", "vit_base_patch16_224")])
def test_full_model_is_timms_plain_vit(size, arch):
    import timm

    model, vit = MatViT(size), timm.create_model(arch)
    assert count(model) == count(vit)  # e.g. 86,567,656 for B/16
    assert {k.removeprefix("vit.") for k in model.state_dict()} == set(vit.state_dict())


def test_xl_computes_exactly_what_the_plain_vit_does():
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=5, img_size=64).eval()
    model = MatViT("ti", num_classes=5, img_size=64).eval()
    model.load_state_dict({f"vit.{k}": v for k, v in vit.state_dict().items()})
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), vit(x))


def tiny(seed: int = 0) -> MatViT:
    torch.manual_seed(seed)
    return MatViT("ti", num_classes=5, img_size=64).eval()


def test_granularities_are_prefixes_and_switch_in_place():
    model = tiny()
    x = torch.rand(2, 3, 64, 64)
    outputs = {}
    for name, divisor in GRANULARITIES.items():
        assert model.set_granularity(name).granularity == [768 // divisor] * 12
        with torch.no_grad():
            outputs[name] = model(x)
    assert len({tuple(o.flatten().tolist()) for o in outputs.values()}) == 4  # four different sub-networks
    # a prefix: zeroing the hidden units past d_ff/8 does not change the "s" output
    for mlp in model.mlps:
        with torch.no_grad():
            mlp.fc1.weight[96:] = 0
            mlp.fc2.weight[:, 96:] = 0
    with torch.no_grad():
        torch.testing.assert_close(model.set_granularity("s")(x), outputs["s"])


def test_mix_and_match_and_errors():
    model = tiny()
    mixed = ["s"] * 4 + ["m"] * 4 + ["l", "l", "xl", 700]
    assert model.set_granularity(mixed).granularity == [96] * 4 + [192] * 4 + [384, 384, 768, 700]
    with pytest.raises(ValueError, match="one granularity per layer"):
        model.set_granularity(["s", "m"])
    with pytest.raises(ValueError, match="unknown granularity 'xxl'"):
        model.set_granularity("xxl")
    with pytest.raises(ValueError, match="outside 1..768"):
        model.set_granularity([800] * 12)


@pytest.mark.parametrize("granularity", ["s", "l", ["s"] * 6 + ["m"] * 3 + ["xl"] * 3])
def test_extracted_model_is_smaller_with_identical_outputs(granularity):
    model = tiny().set_granularity("xl")
    x = torch.rand(2, 3, 64, 64)
    small = extract(model, granularity).eval()
    assert model.granularity == [768] * 12  # the source is untouched
    with torch.no_grad():
        torch.testing.assert_close(small(x), model.set_granularity(granularity)(x))
    widths = model.widths(granularity)
    assert [m.max_width for m in small.mlps] == widths
    assert count(model) - count(small) == sum(2 * 192 * (768 - w) + (768 - w) for w in widths)
    with pytest.raises(ValueError, match="outside"):
        small.set_granularity("xl" if widths[0] < 768 else [769] * 12)


def test_nested_mlp_refuses_a_hidden_norm():
    with pytest.raises(ValueError, match="no norm"):
        NestedMlp(8, 32, norm_layer=torch.nn.LayerNorm)


def test_extracted_model_saves_loads_and_exports(tmp_path):
    import json

    import zoo
    from zoo.export import export

    torch.manual_seed(0)
    model = zoo.load("matvit_ti", num_classes=5, img_size=64).eval()
    mixed = ["s"] * 6 + ["l"] * 6
    small = extract(model, mixed).eval()
    zoo.save(small, tmp_path / "small")
    saved = json.loads((tmp_path / "small" / "config.json").read_text())["model_kwargs"]
    assert saved == {"size": "ti", "img_size": 64, "mlp_dims": [96] * 6 + [384] * 6}
    again = zoo.load(str(tmp_path / "small")).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model.set_granularity(mixed)(x))
    result = export(again, "onnx", imgsz=64, out=tmp_path / "small.onnx")
    assert result.verification["random"]["ok"] and count(again) < count(model)


def test_plugin_samples_granularities_and_restores_xl():
    from types import SimpleNamespace

    from zoo.errors import ConfigError
    from zoo.plugins.matformer import MatFormer, MatFormerConfig

    model = tiny()
    task = SimpleNamespace(model=model, add_loss_term=lambda *a: None)
    trainer = SimpleNamespace(global_rank=0)
    plugin = MatFormer(MatFormerConfig(weights=[1, 1, 0, 2]))
    plugin.setup(trainer, task, "fit")
    seen = []
    for step in range(200):
        plugin.on_train_batch_start(trainer, task, None, step)
        seen.append(model.granularity[0])
        plugin.on_train_batch_end(trainer, task, None, None, step)
        assert model.granularity == [768] * 12
    counts = {w: seen.count(w) for w in (96, 192, 384, 768)}
    assert counts[384] == 0 and counts[768] > counts[96] > 20 and counts[192] > 20  # probabilities 1:1:0:2
    with pytest.raises(ConfigError, match="non-negative numbers, one per granularity"):
        MatFormer(MatFormerConfig(weights=[1, 2]))
    with pytest.raises(ConfigError, match="keep xl"):
        MatFormer(MatFormerConfig(mode="sum", granularities=["s", "m"]))
    with pytest.raises(ConfigError, match="matvit"):
        MatFormer().setup(trainer, SimpleNamespace(model=SimpleNamespace(zoo_spec=SimpleNamespace(name="resnet"))), "fit")


def test_plugin_sum_mode_adds_every_other_granularity():
    from types import SimpleNamespace

    from zoo.plugins.matformer import MatFormer, MatFormerConfig

    model = tiny().train()
    terms = {}
    task = SimpleNamespace(model=model, train_loss=torch.nn.CrossEntropyLoss(),
                           add_loss_term=lambda name, fn: terms.__setitem__(name, fn))
    MatFormer(MatFormerConfig(mode="sum", weights=[0.5, 1, 1, 2])).setup(SimpleNamespace(global_rank=0), task, "fit")
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    loss, items = terms["matformer"](x, None, y)
    assert set(items) == {"s", "m", "l"} and model.granularity == [768] * 12
    torch.testing.assert_close(loss, 0.25 * items["s"] + 0.5 * items["m"] + 0.5 * items["l"])
    loss.backward()
    assert model.mlps[0].fc1.weight.grad[:384].abs().sum() > 0 and model.mlps[0].fc1.weight.grad[384:].abs().sum() == 0


def test_recipe_trains_all_granularities_and_saves_xl(tmp_path):
    import zoo
    from zoo.train import compose, run

    cfg = compose("matvit_ti_digits", [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=1",
                                       "trainer.limit_train_batches=4", "trainer.limit_val_batches=2", "plugins.matformer.mode=sum"])
    summary = run(cfg, tmp_path / "run")
    evaluated = __import__("json").loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert summary["val_top1"] == evaluated["top1"] and evaluated["samples"] == 360  # the saved XL model, whole val split
    assert "train/matformer_s" in (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    model = zoo.load(str(tmp_path / "run"))
    assert model.granularity == [768] * 12 and model.zoo_spec.input_size == (3, 64, 64)


def test_search_measures_the_heuristic_settings_and_keeps_the_budget(tmp_path):
    import zoo
    from zoo.matformer import candidates, plot_search, search

    settings = candidates(12)
    assert len(settings) == 4 + 3 * 11 and all(s == sorted(s, key=list(GRANULARITIES).index) for s in settings)
    torch.manual_seed(0)
    model = zoo.load("matvit_ti", num_classes=3, img_size=32).eval()
    data = [(torch.rand(8, 3, 32, 32), torch.randint(0, 3, (8,)))]
    found = search(model, budget=3.0e6, metric="params", data=data)
    assert model.granularity == [768] * 12  # left at full width
    assert len(found["results"]) == 37 and found["best"]["params"] <= 3.0e6 and found["quality"] == "top1"
    assert all(r["top1"] * 8 == round(r["top1"] * 8) for r in found["results"]) and found["pareto"]  # of the 8 images
    costs = [r["params"] for r in found["pareto"]]
    assert costs == sorted(costs)
    timed = search(model, metric="latency_ms", runs=2)
    assert timed["best"]["setting"] == ["xl"] * 12 and all(r["latency_ms"] > 0 for r in timed["results"])
    assert plot_search(found, tmp_path / "search.png").stat().st_size > 0
    with pytest.raises(zoo.errors.BadArgumentError, match="no setting fits"):
        search(model, budget=10, metric="params")


def test_cli_exports_the_largest_setting_within_a_latency_budget(tmp_path, capsys, monkeypatch):
    import zoo
    import zoo.matformer
    from zoo.cli import main as cli

    monkeypatch.setattr(zoo.matformer, "candidates", lambda depth: [[g] * depth for g in ("s", "xl")])  # a short search

    model = zoo.load("matvit_ti", num_classes=3, img_size=32)
    zoo.save(model, tmp_path / "m")
    assert cli(["export", str(tmp_path / "m"), "--budget-ms", "1000", "--out", str(tmp_path / "m.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "chose ['xl', 'xl'" in printed and (tmp_path / "m.search.png").is_file() and (tmp_path / "m.onnx").is_file()
    assert cli(["export", "mobilenetv3_small_100", "--budget-ms", "5"]) != 0
    assert "mobilenetv3_small_100 is neither" in capsys.readouterr().err


def test_dense_vit_weights_load_with_units_ordered_by_importance(tmp_path):
    import timm
    from safetensors.torch import save_file

    import zoo
    from zoo.models.matformer import importance_order

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=4, img_size=32).eval()
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    model = zoo.load("matvit_ti", num_classes=4, img_size=32, weights=tmp_path / "vit.safetensors").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), vit(x), rtol=1e-4, atol=1e-5)  # a permutation of hidden units
    for mlp in model.mlps:
        assert importance_order(mlp.fc1.weight, mlp.fc2.weight).tolist() == list(range(768))  # already sorted


# -- MatLM ------------------------------------------------------------------------------------------


def gpt2(size: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    from zoo.models.matformer import LM_SIZES

    dim, depth, heads, context = LM_SIZES[size]
    config = GPT2Config(vocab_size=256, n_positions=context, n_embd=dim, n_layer=depth, n_head=heads, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


@pytest.mark.parametrize("size", ["nano", "mini", "small"])
def test_full_matlm_has_gpt2s_parameter_count(size):
    import zoo

    assert count(zoo.load(f"matlm_{size}")) == count(gpt2(size))  # tied embeddings in both


def test_matlm_computes_exactly_what_gpt2_does_from_its_weights():
    import zoo
    from zoo.models.matformer import from_gpt2

    torch.manual_seed(0)
    reference = gpt2("nano").eval()
    model = zoo.load("matlm_nano").eval()
    model.load_state_dict(from_gpt2(reference.state_dict()))
    tokens = torch.randint(0, 256, (2, 77))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens).logits, atol=1e-5, rtol=1e-5)
        # the MLP units were reordered by importance, so the smaller granularities start from the strongest
        fc1, fc2 = model.mlps[0].fc1.weight, model.mlps[0].fc2.weight
        strength = fc1.norm(dim=1) * fc2.norm(dim=0)
        assert torch.all(strength[:-1] >= strength[1:])


def test_matlm_is_causal_nests_and_extracts():
    import zoo

    torch.manual_seed(0)
    model = zoo.load("matlm_nano", context_length=64).eval()
    tokens = torch.randint(0, 256, (2, 64))
    changed = tokens.clone()
    changed[:, 40] = (changed[:, 40] + 1) % 256
    with torch.no_grad():
        full = model(tokens)
        assert full.shape == (2, 64, 256)
        torch.testing.assert_close(model(changed)[:, :40], full[:, :40])  # no token sees a later one
        assert not torch.allclose(model(changed)[:, 40:], full[:, 40:])
        mixed = ["s", "m", "l", "xl"]
        nested = model.set_granularity(mixed)(tokens)
        small = extract(model, mixed).eval()
        torch.testing.assert_close(small(tokens), nested)
        assert small.granularity == [64, 128, 256, 512] and count(small) < count(model)
        model.set_granularity("xl")
    with pytest.raises(ValueError, match="65 tokens > context length 64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    prompt = torch.tensor([[100, 101, 102]])
    out = model.generate(prompt, 5, temperature=0)
    assert out.shape == (1, 8) and torch.equal(out[:, :3], prompt)
    assert torch.equal(out, model.generate(prompt, 5, temperature=0))  # greedy is deterministic


def test_extracted_matlm_saves_loads_and_exports_token_input(tmp_path):
    import zoo
    from zoo.export import export

    torch.manual_seed(0)
    model = zoo.load("matlm_nano", context_length=32).eval()
    small = extract(model, "m")
    zoo.save(small, tmp_path / "small")
    again = zoo.load(str(tmp_path / "small")).eval()
    assert again.zoo_spec.input_size == (32,) and again.granularity == [128] * 4
    result = export(again, "onnx", dynamic=True, out=tmp_path / "lm.onnx")
    assert result.inputs[0]["name"] == "input_ids" and result.inputs[0]["dtype"] == "int64"
    assert all(result.verification[k]["ok"] for k in ("random", "real", "random_batch2"))
    with pytest.raises(zoo.errors.BadArgumentError, match="32 token ids, not an image"):
        export(again, "onnx", imgsz=64, out=tmp_path / "x.onnx")
    with pytest.raises(zoo.errors.BadArgumentError, match="export it to onnx"):
        export(again, "coreml", out=tmp_path / "x.mlpackage")


def test_text_data_puts_each_file_whole_in_one_split(tmp_path):
    from omegaconf import OmegaConf

    import zoo
    from zoo.data.text import TextDataModule
    from zoo.errors import DataError

    for i in range(40):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"file {i:02d} " * 40)
    cfg = OmegaConf.create({"source": "files", "root": str(tmp_path), "pattern": "*.txt", "max_bytes": 10**6,
                            "val_fraction": 0.2, "context": 16, "val_windows": None, "batch_size": 4})
    data = TextDataModule(cfg, zoo.info("matlm_nano"))
    data.setup()
    train, val = data.train_bytes.decode(), data.val_bytes.decode()
    in_train = {i for i in range(40) if f"file {i:02d}" in train}
    in_val = {i for i in range(40) if f"file {i:02d}" in val}
    assert in_train and in_val and not in_train & in_val and in_train | in_val == set(range(40))
    x, y = next(iter(data.val_dataloader()))
    assert x.shape == (4, 16) and x.dtype == torch.long and torch.equal(x[:, 1:], y[:, :-1])  # targets: the next bytes
    with pytest.raises(DataError, match="data.root is not set"):
        TextDataModule(OmegaConf.merge(cfg, {"root": None}), zoo.info("matlm_nano")).setup()
    with pytest.raises(DataError, match="longer than matlm_nano's context of 256"):
        TextDataModule(OmegaConf.merge(cfg, {"context": 1000}), zoo.info("matlm_nano")).setup()


def test_lm_recipe_trains_every_granularity_on_the_stdlib(tmp_path):
    import json

    import zoo
    from zoo.train import compose, run

    cfg = compose("matlm_nano_stdlib", [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=2",
                                        "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
                                        "data.max_bytes=200000", "plugins.matformer.mode=sum"])
    summary = run(cfg, tmp_path / "run")
    assert summary["task"] == "language-modeling" and set(summary["val_loss_per_granularity"]) == {"s", "m", "l", "xl"}
    assert summary["val_loss"] < 5.6  # below a uniform guess over 256 bytes (ln 256 = 5.55) after 6 steps
    assert (tmp_path / "run" / "eval" / "granularities.png").stat().st_size > 0
    assert "train/matformer_s" in (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint") and v.get("monitor"))
    import csv

    logged = [float(r["val/loss"]) for r in csv.DictReader(open(tmp_path / "run" / "logs" / "metrics.csv")) if r.get("val/loss")]
    assert len(logged) == 2 and state["monitor"] == "val/loss"
    assert float(state["best_model_score"]) == pytest.approx(min(logged))  # the lowest loss is the best
    model = zoo.load(str(tmp_path / "run"))
    assert model.granularity == [512] * 4 and model.zoo_spec.input_size == (128,)
    assert json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())["granularities"]["xl"] == pytest.approx(summary["val_loss"])


def test_search_on_a_language_model_ranks_by_loss():
    import zoo
    from zoo.matformer import search

    torch.manual_seed(0)
    model = zoo.load("matlm_nano", context_length=16).eval()
    tokens = torch.randint(0, 256, (4, 17))
    found = search(model, budget=700_000, metric="params", data=[(tokens[:, :-1], tokens[:, 1:])])
    assert found["quality"] == "loss" and len(found["results"]) == 4 + 3 * 3
    fitting = [r for r in found["results"] if r["params"] <= 700_000]
    assert found["best"]["loss"] == min(r["loss"] for r in fitting) and "top1" not in found["best"]


def test_distillation_from_a_trained_xl_into_the_sampled_granularities(tmp_path):
    """The two plugins compose: each step distils the frozen full (XL) teacher into the granularity drawn."""
    import zoo
    from zoo.train import compose, run

    teacher = zoo.load("matvit_ti", num_classes=10, img_size=64)
    zoo.save(teacher, tmp_path / "teacher")
    cfg = compose("matvit_ti_digits", [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=1",
                                       "trainer.limit_train_batches=4", "trainer.limit_val_batches=1",
                                       "plugins=[matformer,distill]", f"plugins.distill.teacher={tmp_path / 'teacher'}"])
    run(cfg, tmp_path / "run")
    logged = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    rows = list(__import__("csv").DictReader(logged.splitlines()))
    kd = [float(r["train/distill_kd"]) for r in rows if r.get("train/distill_kd")]
    assert kd and all(value > 0 for value in kd)  # a KL between the teacher and each drawn granularity
    assert zoo.load(str(tmp_path / "run")).granularity == [768] * 12


def test_zoo_eval_measures_a_language_model_on_text(tmp_path, capsys):
    import zoo
    from zoo.cli import main as cli

    zoo.save(zoo.load("matlm_nano", context_length=32), tmp_path / "lm")
    assert cli(["eval", str(tmp_path / "lm"), "data.max_bytes=100000", "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "nats/token" in printed and "per granularity: s " in printed and (tmp_path / "eval" / "granularities.png").is_file()
    assert cli(["eval", str(tmp_path / "lm"), "data=digits"]) != 0
    assert "matlm_nano is a language-modeling model; evaluate it on text" in capsys.readouterr().err
