"""Training plugins: the API (options, order, refusals), third-party discovery, and distillation end to end."""
from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from distinfo import write_dist_info
from zoo.plugins.base import Plugin, available, build
from zoo.plugins.distill import Distill

import zoo
from zoo.cli import main as cli
from zoo.errors import ConfigError
from zoo.registry import state_of
from zoo.train import compose, run

FAST = ["trainer.enable_progress_bar=false", "trainer.limit_train_batches=3", "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1", "trainer.limit_val_batches=2"]


def test_options_are_checked_by_name_value_and_type():
    assert build({"distill": {"teacher": "mobilenetv3_small_100", "temperature": 2}}, "classification")[0].config.temperature == 2.0
    with pytest.raises(ConfigError, match=r"no option 'temprature' \(did you mean 'temperature'\?\)"):
        Distill.from_options({"teacher": "x", "temprature": 2})
    with pytest.raises(ConfigError, match=r"needs plugins\.distill\.teacher="):
        Distill.from_options({})
    with pytest.raises(ConfigError, match=r"plugins\.distill\.weight must be float, not 'heavy'"):
        Distill.from_options({"teacher": "x", "weight": "heavy"})
    with pytest.raises(ConfigError, match="'student.module:teacher.module'"):
        Distill.from_options({"teacher": "x", "features": ["blocks.1"]})


def test_a_plugin_is_a_lightning_callback_built_from_keywords_in_plain_lightning_code(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset
    from zoo.plugins.prune import Prune, PruneConfig

    from zoo.tasks.classification import ClassificationTask

    with pytest.raises(ConfigError, match=r"no option 'ratoi' \(did you mean 'ratio'\?\)"):
        Prune(ratoi=0.5)
    with pytest.raises(ConfigError, match="not both"):
        Prune(PruneConfig(), ratio=0.5)
    with pytest.raises(ConfigError, match=r"in Python: Distill\(teacher=\.\.\.\)"):
        Distill()
    model = zoo.load("mobilenetv3_small_100", num_classes=3)
    model.zoo_spec = dataclasses.replace(model.zoo_spec, input_size=(3, 32, 32))
    before = sum(p.numel() for p in model.parameters())
    task = ClassificationTask(model, num_classes=3, optim={"name": "sgd", "lr": 0.01})
    data = DataLoader(TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))), batch_size=4)
    trainer = L.Trainer(max_epochs=1, callbacks=[Prune(ratio=0.5, steps=1, until=1.0)], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(task, data)
    assert sum(p.numel() for p in task.model.parameters()) < 0.8 * before  # half the MACs gone: fewer weights


def test_pruning_rounds_spread_from_start_to_before_until():
    from zoo.plugins.prune import rounds

    assert rounds(8, 0.0, 0.5, 4) == [0, 1, 2, 3]
    assert rounds(8, 0.25, 0.5, 2) == [2, 3]  # two dense epochs first: the ranking sees trained weights
    assert rounds(12, 0.25, 0.75, 3) == [3, 5, 7]
    assert rounds(1, 0.0, 0.5, 4) == [0]  # at least one round


def test_unknown_plugins_and_impossible_combinations_are_refused():
    with pytest.raises(ConfigError, match=r"unknown plugin 'distil' \(did you mean 'distill'\?\)"):
        build({"distil": {}}, "classification")
    with pytest.raises(ConfigError, match="supports classification, segmentation and depth models, not detection"):
        build({"prune": {}}, "detection")
    with pytest.raises(ConfigError, match="supports classification models, not depth"):
        build({"timesteps": {}}, "depth")
    with pytest.raises(ConfigError, match="0 <= plugins.prune.start < plugins.prune.until"):
        build({"prune": {"start": 0.5, "until": 0.5}}, "depth")
    with pytest.raises(ConfigError, match="head outputs only"):
        build({"distill": {"teacher": "x", "features": ["a:b"]}}, "detection")


def test_plugins_compose_in_their_declared_order(monkeypatch):
    @dataclasses.dataclass
    class Nothing:
        pass

    class Late(Plugin):
        name, order, Config = "late", 90, Nothing

    class Early(Plugin):
        name, order, Config = "early", 5, Nothing

    monkeypatch.setattr("zoo.plugins.base.available", lambda: {"late": Late, "early": Early, "distill": Distill})
    order = [p.name for p in build({"late": {}, "distill": {"teacher": "x"}, "early": {}}, "classification")]
    assert order == ["early", "distill", "late"]


def test_third_party_plugin_is_discovered_through_its_entry_point(tmp_path):
    (tmp_path / "tinyplug.py").write_text(textwrap.dedent(
        """
        import dataclasses
        from zoo.plugins.base import Plugin

        @dataclasses.dataclass
        class Options:
            scale: float = 1.0

        class Counter(Plugin):
            name, order, Config = "counter", 40, Options
            changes = "nothing"
            batches = 0

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                Counter.batches += self.config.scale
        """
    ))
    write_dist_info(tmp_path, "tinyplug", "zoo.plugins", {"counter": "tinyplug:Counter"})
    script = textwrap.dedent(
        f"""
        from zoo.plugins.base import available
        from zoo.train import compose, run
        import tinyplug
        assert "counter" in available()
        cfg = compose("quickstart", [{str(f"out_dir={tmp_path}")!r}, "plugins=[counter]", "plugins.counter.scale=2.0", *{FAST!r}])
        run(cfg, {str(tmp_path / 'run')!r})
        print(tinyplug.Counter.batches)
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "6.0"  # 3 batches, each counted with the option's scale
    assert "distill" in available()


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("teacher")
    run(compose("quickstart", [f"out_dir={tmp}", *FAST]), tmp / "teacher")
    return tmp / "teacher"


def test_logit_and_feature_distillation_from_a_run(teacher_run, tmp_path):
    cfg = compose("quickstart", [f"out_dir={tmp_path}", *FAST, "plugins=[distill]",
                                 f"plugins.distill.teacher={teacher_run}",
                                 "plugins.distill.features=[blocks.2:blocks.3]", "model.name=mnasnet_small"])
    summary = run(cfg, tmp_path / "student")
    rows = list(csv.DictReader(open(tmp_path / "student" / "logs" / "metrics.csv")))
    kd = [float(r["train/distill_kd"]) for r in rows if r.get("train/distill_kd")]
    feature = [float(r["train/distill_feature_kd"]) for r in rows if r.get("train/distill_feature_kd")]
    assert kd and feature and all(v >= 0 for v in kd + feature)
    student = zoo.load(summary["run_dir"])  # the student alone: no teacher, no adapters saved
    assert student.zoo_spec.name == "mnasnet_small"
    assert not any("distill" in k for k in student.state_dict())


def test_a_timm_transformer_teaches_a_cnn_through_linear_adapters(tmp_path):
    """README: the teacher may be ``timm:<name>`` and feature KD lets a transformer's tokens teach a CNN's maps."""
    cfg = compose("quickstart", [f"out_dir={tmp_path}", *FAST, "trainer.limit_val_batches=1", "plugins=[distill]",
                                 "plugins.distill.teacher=timm:test_vit", "plugins.distill.pretrained=false",
                                 "plugins.distill.weight=0", "plugins.distill.features=[blocks.3:blocks.4]",
                                 "model.name=mnasnet_small"])
    run(cfg, tmp_path / "student")
    rows = list(csv.DictReader((tmp_path / "student" / "logs" / "metrics.csv").read_text().splitlines()))
    feature = [float(r["train/distill_feature_kd"]) for r in rows if r.get("train/distill_feature_kd")]
    assert feature and all(v > 0 for v in feature)
    # weight=0: no logit KD was asked for
    assert not any(r.get("train/distill_kd") for r in rows)
    state = torch.load(tmp_path / "student" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    adapter = state["plugin_modules.distill_adapters.0.weight"]  # trained with the student, checkpointed for resuming
    assert adapter.shape == (64, 32)  # linear: mnasnet_small's blocks.3 maps (32 channels) onto test_vit's 64-wide tokens


def test_distillation_loss_pulls_the_student_towards_the_teacher(teacher_run):
    plugin = Distill.from_options({"teacher": str(teacher_run), "temperature": 1.0})
    plugin.teacher = zoo.load(str(teacher_run)).eval()
    plugin._student_spec = plugin.teacher.zoo_spec
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        target = plugin.teacher(x)
    same, _ = plugin.loss(x, target.clone(), None)
    other, items = plugin.loss(x, torch.randn_like(target) * 5, None)
    assert same.item() == pytest.approx(0.0, abs=1e-5) and other.item() > 0.1 and "kd" in items


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "recipe=quickstart", "plugins=[distil]"], "unknown plugin 'distil' (did you mean 'distill'?)"),
        (["train", "recipe=quickstart", "plugins=[distill]"], "needs plugins.distill.teacher="),
        (["train", "recipe=yolov10n_shapes", "plugins=[prune]"], "not detection"),
        (["train", "recipe=quickstart", "plugins=[distill]", "plugins.distill.tmperature=2"], "did you mean 'plugins.distill.temperature'?"),
    ],
)
def test_bad_plugin_input_is_one_line(capsys, argv, needle):
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1] and err[-1].startswith("zoo train: error:")


def test_pruning_gives_a_smaller_model_that_saves_loads_and_exports(tmp_path):
    import json

    from zoo.bench import count_macs

    cfg = compose("quickstart", [f"out_dir={tmp_path}", *FAST, "trainer.max_epochs=2", "plugins=[prune]",
                                 "plugins.prune.ratio=0.5", "plugins.prune.steps=1"])
    summary = run(cfg, tmp_path / "pruned")
    x = torch.randn(1, 3, 64, 64)
    full = zoo.load("mobilenetv3_small_100", num_classes=10)
    pruned = zoo.load(summary["run_dir"]).eval()
    assert count_macs(pruned, x) <= 0.55 * count_macs(full, x)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in full.parameters())
    assert "structure" in json.loads((tmp_path / "pruned" / "model" / "config.json").read_text())
    from_ckpt = zoo.load(str(tmp_path / "pruned" / "checkpoints" / "best.ckpt")).eval()
    with torch.no_grad():
        torch.testing.assert_close(from_ckpt(x), pruned(x))  # the EMA restarted at the pruned shapes
    result = zoo.export(pruned, "onnx", out=tmp_path / "pruned.onnx")
    assert result.verification["real"]["ok"]
    three = zoo.load(summary["run_dir"], num_classes=3).eval()  # fine-tuning elsewhere: a new head on the pruned widths
    state, saved = three.state_dict(), pruned.state_dict()
    assert state["classifier.weight"].shape == (3, saved["classifier.weight"].shape[1]) and three(x).shape == (1, 3)
    assert all(torch.equal(state[k], v) for k, v in saved.items() if not k.startswith("classifier."))


def test_pruning_options_are_checked():
    with pytest.raises(ConfigError, match="between 0 and 1"):
        build({"prune": {"ratio": 1.5}}, "classification")
    with pytest.raises(ConfigError, match="magnitude, taylor, bn_scale"):
        build({"prune": {"importance": "l1"}}, "classification")
    assert [p.name for p in build({"distill": {"teacher": "x"}, "prune": {}}, "classification")] == ["prune", "distill"]
    with pytest.raises(ConfigError, match="feature distillation cannot be combined with prune"):
        build({"distill": {"teacher": "x", "features": ["a:b"]}, "prune": {}}, "classification")


@pytest.mark.parametrize("mode,share", [("unstructured", 0.6), ("2:4", 0.5)])
def test_sparsity_modes_zero_weights_in_the_saved_model(tmp_path, mode, share):
    from zoo.plugins.prune import _eligible

    cfg = compose("quickstart", [f"out_dir={tmp_path}", *FAST, "trainer.max_epochs=2", "task.ema_decay=0.99",
                                 "plugins=[prune]", f"plugins.prune.mode={mode}", f"plugins.prune.ratio={share}"])
    summary = run(cfg, tmp_path / "sparse")
    saved = zoo.load(summary["run_dir"])
    weights = _eligible(saved)
    if mode == "unstructured":
        zeros = sum(int((w == 0).sum()) for w in weights.values())
        assert zeros / sum(w.numel() for w in weights.values()) == pytest.approx(share, abs=0.01)
    else:
        patterned = [w for w in weights.values() if w.shape[1] % 4 == 0]
        assert patterned
        for w in patterned:  # in every group of 4 inputs at least 2 zeros
            groups = w.detach().movedim(1, -1).reshape(-1, 4)
            assert ((groups == 0).sum(1) >= 2).all()
    assert sum(p.numel() for p in saved.parameters()) == sum(p.numel() for p in zoo.load("mobilenetv3_small_100", num_classes=10).parameters())


def test_teacher_logit_cache_runs_the_teacher_once_per_image(teacher_run, tmp_path):
    plugin = Distill.from_options({"teacher": str(teacher_run), "cache": str(tmp_path / "cache")})
    calls = []
    plugin.teacher = zoo.load(str(teacher_run)).eval()
    plugin.teacher.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    plugin._student_spec = plugin.teacher.zoo_spec
    x = torch.randn(4, 3, 64, 64)
    first = plugin.teacher_logits(x)
    again = plugin.teacher_logits(torch.cat([x[:2], torch.randn(1, 3, 64, 64)]))
    assert calls == [4, 1]  # only the new image reached the teacher
    torch.testing.assert_close(again[:2], first[:2])

    class FakeTrainer:
        is_global_zero = True

    plugin.on_fit_end(FakeTrainer(), None)
    reloaded = Distill.from_options({"teacher": str(teacher_run), "cache": str(tmp_path / "cache")})
    reloaded.teacher = torch.nn.Identity()
    reloaded.on_fit_start(None, type("M", (), {"device": "cpu"})())
    assert len(reloaded._cache) == 5
    with pytest.raises(ConfigError, match="cache holds logits only"):
        Distill.from_options({"teacher": "x", "cache": "c", "features": ["a:b"]})


# -- quantization-aware training ----------------------------------------------------------------------------


def _ops(path: Path, optimized: bool = False) -> set[str]:
    """The op types of an ONNX file, or of the graph onnxruntime runs after its fusions."""
    import onnx
    import onnxruntime as ort

    if not optimized:
        return {n.op_type for n in onnx.load(str(path)).graph.node}
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(path.with_suffix(".ort.onnx"))
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return {n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node}


def test_pt2e_pattern_graphs_are_captured_once_and_handed_out_as_copies():
    import torchao.quantization.pt2e.utils as utils

    from zoo.quantize import _import_pt2e

    _import_pt2e()

    from torchao.quantization.pt2e.export_utils import WrapperModule

    def scaled_relu(x, scale: float = 2.0):
        return torch.nn.functional.relu(x) * scale

    pattern = WrapperModule(scaled_relu)  # how torchao hands its patterns over

    import zoo.quantize as q

    keys = {q._pattern_key(pattern, (torch.randn(1, 3),), False, {}), q._pattern_key(pattern, (torch.randn(5, 3),), False, {})}
    assert len(keys) == 2  # example shapes are part of what a capture depends on, values are not
    assert q._pattern_key(pattern, (torch.randn(1, 3),), False, {}) in keys
    get = utils._get_aten_graph_module_for_pattern
    first, second = get(pattern, (torch.randn(1, 3),)), get(pattern, (torch.zeros(1, 3),))
    assert first is not second and str(first.graph) == str(second.graph)  # a copy: torchao edits what it gets
    first.graph.erase_node(next(n for n in first.graph.nodes if n.op == "output"))
    assert str(get(pattern, (torch.randn(1, 3),)).graph) == str(second.graph)  # the kept capture is untouched


def test_qat_options_and_combinations_are_checked():
    assert [p.name for p in build({"qat": {}, "distill": {"teacher": "x"}, "prune": {}}, "classification")] == [
        "prune", "distill", "qat"]
    with pytest.raises(ConfigError, match="quantizer must be one of xnnpack, x86"):
        build({"qat": {"quantizer": "fbgemm"}}, "classification")
    with pytest.raises(ConfigError, match="uint8 only"):
        build({"qat": {"quantizer": "x86", "activations": "int8"}}, "classification")
    with pytest.raises(ConfigError, match="falls before pruning ends"):
        build({"qat": {"start": 0.2}, "prune": {"until": 0.5}}, "classification")
    with pytest.raises(ConfigError, match="feature distillation cannot be combined with qat"):
        build({"qat": {}, "distill": {"teacher": "x", "features": ["a:b"]}}, "classification")
    with pytest.raises(ConfigError, match="not detection"):
        build({"qat": {}}, "detection")


# prune rounds at epochs 0 and 1, QAT from epoch 2 (after pruning), observers and BatchNorm frozen from epoch 3
COMBINED = [*FAST, "trainer.max_epochs=4", "data.batch_size=16", "plugins=[prune,distill,qat]", "plugins.prune.steps=2",
            "plugins.prune.until=0.5"]


@pytest.fixture(scope="module")
def combined_run(teacher_run, tmp_path_factory) -> tuple[list[str], Path]:
    """One uninterrupted prune + distill + QAT run: the overrides it was trained with, and its run dir."""
    tmp = tmp_path_factory.mktemp("combined")
    overrides = [*COMBINED, f"plugins.distill.teacher={teacher_run}"]
    run(compose("quickstart", [f"out_dir={tmp}", *overrides]), tmp / "all")
    return overrides, tmp / "all"


def test_prune_distill_and_qat_in_one_recipe_save_an_int8_model_that_loads_exports_and_verifies(combined_run, tmp_path):
    import json

    from safetensors.torch import load_file

    from zoo.errors import BadArgumentError, ZooError
    from zoo.evaluate import data_module, evaluate

    _, run_dir = combined_run
    rows = list(csv.DictReader(open(run_dir / "logs" / "metrics.csv")))
    assert [r for r in rows if r.get("train/distill_kd")]
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["structure"] and config["quantization"]["quantizer"] == "xnnpack"  # pruned, then captured for QAT
    saved = load_file(run_dir / "model" / "model.safetensors")  # the best epoch's weights, observers on or off
    assert [k for k in saved if k.endswith("observer_enabled")]
    full = zoo.load("mobilenetv3_small_100", num_classes=10).state_dict()
    assert sum(saved[k].numel() for k in full if k.endswith(".weight")) < 0.8 * sum(v.numel() for k, v in full.items() if k.endswith(".weight"))
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 3  # the last epoch, whichever epoch was best
    enabled = [v.item() for k, v in last["state_dict"].items() if k.endswith("observer_enabled")]
    assert enabled and not any(enabled)  # observers were frozen on schedule (epoch 3 of 4), and that state was saved

    model = zoo.load(str(run_dir))
    assert state_of(model).int8 and model.zoo_spec.name == "mobilenetv3_small_100"
    data, _ = data_module(model.zoo_spec, ["data=digits", "data.batch_size=16"])
    summary = json.loads((run_dir / "summary.json").read_text())
    # the run's reported accuracy is the int8 model's that zoo.load gives, not the fake-quantized graph's
    assert summary["val_top1"] == pytest.approx(evaluate(model, data.val_dataloader(), data.classes, progress=False)["top1"])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), zoo.load(str(run_dir / "model"))(x))  # loading is deterministic
    assert state_of(zoo.load(str(run_dir / "checkpoints" / "last.ckpt"))).int8

    result = zoo.export(model, "onnx", imgsz=96, out=tmp_path / "int8.onnx")  # trained at 64, exported at 96
    assert all(v["ok"] for v in result.verification.values())
    assert float(result.metadata["int8_output_step"]) > 0  # recorded for later checks (TensorRT)
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(result.path)
    assert "QLinearConv" in _ops(result.path, optimized=True)  # onnxruntime runs the convs as int8 kernels
    carried = zoo.export(model, "openvino", imgsz=64, out=tmp_path / "int8_openvino")  # OpenVINO runs the Q/DQ graph itself
    assert carried.metadata["precision"] == "int8" and all(v["ok"] for v in carried.verification.values())
    with pytest.raises(BadArgumentError, match="zoo quantize --format executorch"):
        zoo.export(model, "executorch", out=tmp_path / "m.pte")
    with pytest.raises(ZooError, match="QAT form"):
        zoo.save(model, tmp_path / "again")
    with pytest.raises(BadArgumentError, match="int8"):
        zoo.export(model, "coreml", out=tmp_path / "m.mlpackage")
    with pytest.raises(BadArgumentError, match="keeps the classifier"):
        zoo.load(str(run_dir), num_classes=3)


def test_a_killed_prune_distill_qat_run_resumes_every_schedule_and_ends_as_the_uninterrupted_one(combined_run, tmp_path, caplog):
    """SIGKILLed between the two pruning rounds, resumed, SIGKILLed again between QAT's start and its observer freeze,
    resumed again: the same rounds, the same QAT schedule, the same structure and weights as the uninterrupted run."""
    import json

    from killed import train_until_killed

    overrides, whole = combined_run
    overrides = [f"out_dir={tmp_path}", *overrides]
    last = train_until_killed("quickstart", overrides, tmp_path / "a", epoch=1)
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 0 and state["callbacks"]["Prune"]["done"] == 1 and state["callbacks"]["Prune"]["structure"]
    last = train_until_killed("quickstart", [*overrides, f"resume={last}"], tmp_path / "b", epoch=3)
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 2 and state["callbacks"]["Prune"]["done"] == 2
    assert state["callbacks"]["QAT"] == {"plugin": "qat", "started_at": 2, "observers_frozen": False}
    import logging

    with caplog.at_level(logging.INFO):
        run(compose("quickstart", [*overrides, f"resume={last}"]), tmp_path / "c")
    out = caplog.text
    assert "(2 rounds, magnitude)" in out and "from epoch 2; BatchNorm frozen from epoch 3, observers frozen from epoch 3" in out
    final = torch.load(tmp_path / "c" / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["callbacks"]["QAT"]["observers_frozen"]
    assert not any(v.item() for k, v in final["state_dict"].items() if k.endswith("observer_enabled"))
    saved = [json.loads((d / "model" / "config.json").read_text()) for d in (whole, tmp_path / "c")]
    assert saved[1]["structure"] == saved[0]["structure"] and saved[1]["quantization"] == saved[0]["quantization"]
    reference = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert reference.keys() == final["state_dict"].keys()
    for key, value in reference.items():
        torch.testing.assert_close(final["state_dict"][key], value, msg=key)


def test_resume_needs_the_plugins_the_checkpoint_was_trained_with(combined_run):
    from zoo.train import _resume_path

    overrides, whole = combined_run
    cfg = compose("quickstart", [*FAST, f"resume={whole}"])
    with pytest.raises(ConfigError, match=r"that run trained with plugins=\[distill,prune,qat\], this one has plugins=\[\]"):
        _resume_path(cfg)
    assert _resume_path(compose("quickstart", [*overrides, f"resume={whole}"])) == str(whole / "checkpoints" / "last.ckpt")


def test_int8_verification_counts_output_quantization_steps():
    from zoo.export import INT8_STEPS, compare

    ref = torch.linspace(-3, 3, 10)
    assert compare(ref, ref + (INT8_STEPS - 1) * 0.1, int8_step=0.1)["ok"]
    assert not compare(ref, ref + (INT8_STEPS + 1) * 0.1, int8_step=0.1)["ok"]
    assert not compare(ref, ref + 0.01)["ok"]  # fp32 graphs keep their tight tolerance


def test_restart_best_forgets_the_best_checkpoint_and_keeps_last(tmp_path):
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import ModelCheckpoint

    from zoo.plugins.base import restart_best

    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val/top1", mode="max")
    last = ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None)
    best.load_state_dict({**best.state_dict(), "best_model_score": torch.tensor(0.9), "best_model_path": str(tmp_path / "best.ckpt"),
                          "best_k_models": {str(tmp_path / "best.ckpt"): torch.tensor(0.9)}})
    last.load_state_dict({**last.state_dict(), "best_model_path": str(tmp_path / "last.ckpt")})
    restart_best(SimpleNamespace(checkpoint_callbacks=[best, last]))
    assert best.best_model_score is None and best.best_model_path == "" and best.best_k_models == {}
    assert last.best_model_path == str(tmp_path / "last.ckpt")  # the newest epoch's file stays what resume=last reads
