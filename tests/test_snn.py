"""Spiking networks: neurons against spikingjelly, state kept in the forward pass, architectures, early exit,
ANN-to-SNN conversion, the timestep schedule, energy and the per-step export."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import zoo
from zoo import snn
from zoo.models.snn import (IF, LIF, ParametricLIF, SpikeMaxPool, Spikformer, SpikingModel, gate_maxpools, neurons,
                            set_timesteps, spike, streaming, temporal)


def tiny_spikformer(**kwargs) -> Spikformer:
    return Spikformer(embed_dim=32, depth=1, num_heads=2, num_classes=5, **kwargs)


# -- neurons -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("decay_input", [True, False])
def test_lif_equals_spikingjelly(reset, decay_input):
    neuron_sj = pytest.importorskip("spikingjelly.activation_based.neuron")
    torch.manual_seed(0)
    x = torch.randn(8, 4, 16) * 1.5
    theirs = neuron_sj.LIFNode(tau=2.0, decay_input=decay_input, v_reset=0.0 if reset == "hard" else None, step_mode="m")
    ours = LIF(tau=2.0, decay_input=decay_input, reset=reset)
    expected = theirs(x)
    assert expected.sum() > 0 and (expected == 0).any()  # some spikes, not all
    assert torch.equal(ours(x), expected)
    assert torch.equal(ours(x), expected)  # no state carried over: the second call gives the same spikes


def test_if_and_plif_equal_spikingjelly():
    neuron_sj = pytest.importorskip("spikingjelly.activation_based.neuron")
    torch.manual_seed(1)
    x = torch.randn(6, 3, 10)
    assert torch.equal(IF()(x), neuron_sj.IFNode(step_mode="m")(x))
    assert torch.equal(ParametricLIF(tau=3.0)(x), neuron_sj.ParametricLIFNode(init_tau=3.0, step_mode="m")(x))


@pytest.mark.parametrize("surrogate,alpha", [("atan", 2.0), ("sigmoid", 4.0)])
def test_surrogate_gradients_match_their_formulas(surrogate, alpha):
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    spike(x, surrogate).sum().backward()
    if surrogate == "atan":
        expected = alpha / 2 / (1 + (math.pi / 2 * alpha * x.detach()) ** 2)
    else:
        s = torch.sigmoid(alpha * x.detach())
        expected = alpha * s * (1 - s)
    assert torch.allclose(x.grad, expected)
    assert torch.equal(spike(x.detach()), (x.detach() >= 0).float())


def test_folded_time_equals_leading_time_and_training_reaches_weights():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5)
    assert torch.equal(LIF(timesteps=4)(x.flatten(0, 1)), LIF()(x).flatten(0, 1))
    model = tiny_spikformer(timesteps=3)
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 5) and model.patch_embed[0].weight.grad.abs().sum() > 0  # BPTT through the surrogates


def test_learnable_threshold_and_leak_get_gradients():
    n = IF(learn_threshold=True, learn_leak=True, reset="soft", scaled=True)
    n(torch.rand(3, 2, 8) * 2).sum().backward()
    assert n.v_threshold.grad is not None and n.leak.grad is not None


def test_spike_maxpool_passes_the_most_active_input():
    a = torch.tensor([1.0, 0, 1, 0, 1, 0, 1, 0])  # rate 1/2
    b = torch.tensor([0.0, 1, 0, 0, 0, 1, 0, 0])  # rate 1/4, firing when a does not
    x = torch.stack([a, b], -1).reshape(8, 1, 1, 1, 2)  # [T, B, C, H, W]: one window of two inputs
    assert nn.functional.max_pool2d(x.flatten(0, 1), (1, 2)).mean() == 0.75  # plain max: fires when either fires
    gated = SpikeMaxPool((1, 2))(x)
    assert torch.equal(gated.flatten(), a)  # the rate of the most active input, 1/2


def test_bad_neuron_options_are_named():
    with pytest.raises(ValueError, match="reset"):
        LIF(reset="zero")
    with pytest.raises(ValueError, match="surrogate"):
        IF(surrogate="erf")
    with pytest.raises(ValueError, match="neuron must be one of"):
        zoo.load("sew_resnet18", neuron="izhikevich")


# -- architectures ---------------------------------------------------------------------------------------------

def test_vgg_and_resnet_keys_and_counts_equal_torchvision():
    import torchvision

    for depth, tv in ((11, torchvision.models.vgg11_bn), (16, torchvision.models.vgg16_bn)):
        ours, theirs = zoo.load(f"spiking_vgg{depth}"), tv()
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
        assert {k for k in ours.state_dict() if not k.endswith("v_threshold")} == set(theirs.state_dict())
    resnet = torchvision.models.resnet18().state_dict()
    ours = zoo.load("sew_resnet18").state_dict()
    assert {k for k in ours if not k.endswith("v_threshold") and "num_batches" not in k} == {k for k in resnet if "num_batches" not in k}


def test_spikformer_4_384_count_pinned():
    # the official CIFAR model's 9,330,874 includes two LayerNorms its forward never uses (6,144 parameters)
    assert sum(p.numel() for p in zoo.load("spikformer_4_384").parameters()) == 9_324_730


def test_sew_block_fires_before_the_add_and_on_the_downsample_path():
    model = zoo.load("sew_resnet18", num_classes=3)
    block = model.layer2[0]
    assert isinstance(block.act2, IF) and isinstance(block.act_down, IF) and model.layer1[0].act_down is None
    ann = zoo.load("spiking_resnet18", num_classes=3, neuron="relu")
    assert ann.timesteps == 1 and not neurons(ann) and sum(isinstance(m, nn.ReLU) for m in ann.modules()) == 17


def test_timesteps_is_a_model_argument_and_output_is_the_mean_over_time():
    model = zoo.load("sew_resnet18", num_classes=4, timesteps=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        steps = model.forward_steps(x)
        assert steps.shape == (3, 2, 4) and torch.allclose(model(x), steps.mean(0))
        set_timesteps(model, 5)
        assert model.forward_steps(x).shape[0] == 5 and all(n.timesteps == 5 for n in neurons(model))
    assert zoo.load("sew_resnet18", timesteps=6).zoo_spec.default_kwargs["timesteps"] == 6


# -- streaming and Dynamic Confidence -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return trained_tiny()


def trained_tiny(timesteps=4) -> nn.Module:
    """A tiny Spikformer fitted to a learnable toy task, its BatchNorm statistics set from the data (a few
    steps leave running statistics that silence the spikes in eval mode)."""
    torch.manual_seed(0)
    model = tiny_spikformer(timesteps=timesteps)
    x, y = torch.rand(40, 3, 32, 32), torch.arange(40) % 5
    x[torch.arange(40), y % 3] += (y[:, None, None] / 5.0)  # learnable: the class shifts one channel
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one pass gives the statistics of x
    with torch.no_grad():
        model(x)
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(-1) == y).float().mean() > 0.5
    return model, x, y


def test_streaming_equals_the_full_run_and_leaves_no_state(tiny):
    model, x, _ = tiny
    with torch.no_grad():
        full = model.forward_steps(x)
        with streaming(model) as stream:
            stepped = torch.stack([stream.step(x) for _ in range(4)])
        assert torch.allclose(stepped, full, atol=1e-6)
        assert all(n._carry is None for n in neurons(model)) and model.timesteps == 4
        assert torch.equal(model(x), model(x))


def test_dynamic_confidence_rule_on_known_logits():
    # two samples, three steps: the first is confident from step 1, the second only once step 3 agrees
    steps = torch.tensor([[[6.0, 0.0], [6.0, 0.0], [6.0, 0.0]],
                          [[0.0, 0.5], [0.5, 0.0], [0.0, 6.0]]])
    predictions, exits = snn.dynamic_confidence(steps, threshold=0.8)  # temperature: T = 3
    assert exits.tolist() == [1, 3] and predictions.tolist() == [0, 1]
    never, full = snn.dynamic_confidence(steps, 1.0)
    assert full.tolist() == [3, 3] and torch.equal(never, steps.mean(1).argmax(-1))


def test_early_exit_runs_only_the_steps_the_rule_needs(tiny):
    model, x, y = tiny
    steps, _ = snn.step_logits(model, [(x, y)])
    confidence = (steps.cumsum(1) / 4).softmax(-1).amax(-1)
    mixed = 0
    for threshold in confidence.flatten().quantile(torch.tensor([0.2, 0.5, 0.8])).tolist():
        predictions, exits = snn.dynamic_confidence(steps, threshold)
        real_predictions, real_exits = snn.early_exit(model, x, threshold)
        assert torch.equal(real_predictions, predictions) and torch.equal(real_exits, exits)
        mixed += len(exits.unique()) > 1
    assert mixed  # some threshold stops samples at different steps


def test_evaluate_dynamic_confidence_writes_curve(tmp_path, tiny):
    model, x, y = tiny
    result = snn.evaluate_dynamic_confidence(model, [(x, y)], out_dir=tmp_path)
    assert result.selection == "2-fold cross-validation" and len(result.fold_thresholds) == 2
    assert 1 <= result.average_steps <= 4 and len(result.per_step_accuracy) == 4 and result.sweep
    assert json.loads((tmp_path / "dynamic_confidence.json").read_text())["threshold"] == result.threshold
    assert (tmp_path / "dynamic_confidence.png").stat().st_size > 1000
    # judged with each other's thresholds: fold 0 with the one chosen on fold 1 and the other way round
    steps, labels = snn.step_logits(model, [(x, y)])
    halves = [torch.arange(40) % 2 == k for k in (0, 1)]
    expected = [snn.choose_threshold(steps[~h], labels[~h]) for h in halves]
    assert result.fold_thresholds == expected
    calibrated = snn.evaluate_dynamic_confidence(model, [(x, y)], calibration_batches=[(x[:20], y[:20])])
    assert calibrated.selection == "calibration" and calibrated.threshold == snn.choose_threshold(*snn.step_logits(model, [(x[:20], y[:20])]))


# -- conversion --------------------------------------------------------------------------------------------------

def test_conversion_rates_approach_the_ann_as_t_grows():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.rand(64, 3, 2, 2)
    converted = snn.convert(ann, [(x, None)], timesteps=8, percentile=100.0)
    assert isinstance(converted, SpikingModel) and len(neurons(converted)) == 2
    with torch.no_grad():
        errors = []
        for T in (8, 64, 512):
            set_timesteps(converted, T)
            errors.append((converted(x) - ann(x)).abs().max().item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.05 * ann(x).abs().max().item()
    assert all(isinstance(m, nn.ReLU) for m in ann if isinstance(m, (nn.ReLU, IF)))  # the ANN is left as it was


def test_converted_registered_model_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    ann = zoo.load("spiking_resnet18", num_classes=4, neuron="relu").eval()
    batches = [(torch.rand(8, 3, 32, 32), None)]
    converted = snn.convert(ann, batches, timesteps=6, learn=True).eval()
    thresholds = [float(n.v_threshold.detach()) for n in neurons(converted)]
    assert len(thresholds) == 17 and len(set(thresholds)) > 1 and all(isinstance(n.v_threshold, nn.Parameter) for n in neurons(converted))
    zoo.save(converted, tmp_path / "m")
    loaded = zoo.load(str(tmp_path / "m")).eval()
    assert loaded.timesteps == 6 and [float(n.v_threshold.detach()) for n in neurons(loaded)] == thresholds
    assert sum(isinstance(m, SpikeMaxPool) for m in loaded.modules()) == 1  # the stem's max-pool, gated
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), converted(x))
        with streaming(loaded) as stream:  # spike counts and membranes both carried between steps
            stepped = sum(stream.step(x) for _ in range(6)) / 6
        assert torch.allclose(stepped, loaded(x), atol=1e-5)
    ranked = snn.accuracy_over_timesteps(loaded, [(x, torch.tensor([0, 1]))], [1, 3, 6])
    assert set(ranked) == {1, 3, 6} and loaded.timesteps == 6


def test_reduce_timesteps_fine_tunes_thresholds_and_leaks_down_to_one_step():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.rand(32, 3, 2, 2), torch.arange(32) % 3
    model = snn.convert(ann, [(x, y)], timesteps=3, learn=True)
    before = [float(n.v_threshold.detach()) for n in neurons(model)] + [float(n.leak.detach()) for n in neurons(model)]
    snn.reduce_timesteps(model, [(x, y)], schedule=(3, 2, 1), epochs_per_stage=2, lr=1e-2, progress=False)
    after = [float(n.v_threshold.detach()) for n in neurons(model)] + [float(n.leak.detach()) for n in neurons(model)]
    assert model.timesteps == 1 and not model.training and after != before
    with pytest.raises(zoo.errors.ZooError, match="schedule"):
        snn.reduce_timesteps(model, [(x, y)], schedule=(2, 0))


def test_conversion_refuses_a_network_without_relu_modules():
    with pytest.raises(zoo.errors.ZooError, match="nn.ReLU"):
        snn.convert(zoo.load("sew_resnet18", num_classes=2), [(torch.rand(2, 3, 32, 32), None)])


def test_ann2snn_and_timesteps_plugins_run_a_recipe(tmp_path):
    from zoo.train import compose, run

    cfg = compose("spiking_resnet18_one_timestep_digits", [
        f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=4", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "plugins.timesteps.schedule=[2,1]", "plugins.ann2snn.evaluate=[1,2]",
        "plugins.ann2snn.calibration_batches=1"])
    summary = run(cfg, tmp_path / "run")
    assert summary["val_top1"] == json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())["top1"]
    model = zoo.load(str(tmp_path / "run"))
    assert model.timesteps == 1 and len(neurons(model)) == 17 and isinstance(neurons(model)[0].leak, nn.Parameter)
    report = json.loads((tmp_path / "run" / "ann2snn.json").read_text())
    assert report["converted_at_epoch"] == 2 and set(report["snn_top1"]) == {"1", "2"} and 0 <= report["ann_top1"] <= 1


def test_ann2snn_after_training_saves_the_converted_best(tmp_path):
    from zoo.train import compose, run

    cfg = compose("spiking_resnet18_ann2snn_digits", [
        f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "plugins.ann2snn.timesteps=4", "plugins.ann2snn.evaluate=[1,4]",
        "plugins.ann2snn.calibration_batches=1"])
    run(cfg, tmp_path / "run")
    model = zoo.load(str(tmp_path / "run"))
    assert model.timesteps == 4 and len(neurons(model)) == 17
    report = json.loads((tmp_path / "run" / "ann2snn.json").read_text())
    assert report["ann_top1"] is not None and (tmp_path / "run" / "ann2snn.png").stat().st_size > 1000


def test_direct_training_recipe_reports_dynamic_confidence(tmp_path):
    from zoo.train import compose, run

    cfg = compose("sew_resnet18_digits", [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=1",
                                          "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"])
    summary = run(cfg, tmp_path / "run")
    dc = summary["dynamic_confidence"]
    assert dc["timesteps"] == 4 and 1 <= dc["average_steps"] <= 4 and 0 <= dc["val_top1"] <= 1
    assert (tmp_path / "run" / "eval" / "dynamic_confidence.png").is_file()
    assert zoo.load(str(tmp_path / "run")).timesteps == 4


def test_a_killed_timesteps_run_resumes_in_the_stage_it_reached(tmp_path, caplog):
    """T=2 for epochs 0-1, T=1 for epochs 2-3; SIGKILLed in epoch 3 and resumed: the run goes on at T=1 without
    starting the stage again (which would forget the stage's best epoch), and ends as the uninterrupted run does."""
    from killed import train_until_killed

    from zoo.train import compose, run

    overrides = [f"out_dir={tmp_path}", "trainer.enable_progress_bar=false", "trainer.max_epochs=4", "data.batch_size=16",
                 "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "plugins=[timesteps]",
                 "plugins.timesteps.schedule=[2,1]"]
    last = train_until_killed("sew_resnet18_digits", overrides, tmp_path / "killed", epoch=3)
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 2 and state["callbacks"]["Timesteps"]["stage"] == 1
    import logging

    def stages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("timesteps: epoch")]

    with caplog.at_level(logging.INFO):
        run(compose("sew_resnet18_digits", [*overrides, f"resume={last}"]), tmp_path / "resumed")
        assert stages() == []  # no stage began again
        assert zoo.load(str(tmp_path / "resumed")).timesteps == 1
        run(compose("sew_resnet18_digits", overrides), tmp_path / "whole")
        assert stages() == ["timesteps: epoch 0: T=2", "timesteps: epoch 2: T=1"]  # what the resumed run did not repeat
    whole, again = (torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=True) for d in ("whole", "resumed"))
    assert whole["callbacks"]["Timesteps"] == again["callbacks"]["Timesteps"]
    for key, value in whole["state_dict"].items():
        torch.testing.assert_close(again["state_dict"][key], value, msg=key)
    best = [json.loads((tmp_path / d / "model" / "config.json").read_text()) for d in ("whole", "resumed")]
    assert best[0] == best[1]


def test_an_ann2snn_run_refuses_to_resume_before_any_weights_load():
    import types

    from zoo.errors import ConfigError
    from zoo.plugins.ann2snn import ANN2SNN
    from zoo.tasks.base import TaskBase

    task = TaskBase()
    task.model = zoo.load("sew_resnet18", num_classes=4, neuron="relu")
    plugin = ANN2SNN()
    plugin.setup(types.SimpleNamespace(max_epochs=2), task, "fit")
    with pytest.raises(ConfigError, match=r"resuming a run with plugins=\[ann2snn\] is not supported"):
        task.on_load_checkpoint({"callbacks": {plugin.state_key: plugin.state_dict()}})
    task.on_load_checkpoint({"callbacks": {}})  # a fresh run's load (none) is not refused


def test_plugins_refuse_what_they_cannot_train(tmp_path):
    from zoo.errors import ConfigError
    from zoo.train import compose, run

    cfg = compose("sew_resnet18_digits", [f"out_dir={tmp_path}", "plugins=[ann2snn]", "trainer.enable_progress_bar=false",
                                          "trainer.max_epochs=1", "trainer.limit_train_batches=1"])
    with pytest.raises(ConfigError, match="neuron=relu"):
        run(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match="start < 1"):
        run(compose("spiking_resnet18_one_timestep_digits", [f"out_dir={tmp_path}", "plugins.ann2snn.start=1.0"]), tmp_path / "r2")


# -- energy and export -------------------------------------------------------------------------------------------

def test_energy_counts_spike_rates_and_synaptic_operations():
    model = zoo.load("sew_resnet18", num_classes=4, timesteps=2).eval()
    report = snn.energy(model, torch.rand(2, 3, 32, 32))
    first = report.layers[0]
    assert first.name == "conv1" and first.kind == "MAC" and first.ops == first.macs * 2  # direct encoding
    assert all(layer.kind == "AC" for layer in report.layers[1:])  # everything after the first neurons sees spikes
    assert all(0 <= layer.input_rate <= 2 for layer in report.layers[1:])  # SEW's ADD sums up to two spikes
    assert report.ann_macs == pytest.approx(sum(layer.macs for layer in report.layers))
    assert report.synaptic_ops == pytest.approx(sum(layer.macs * layer.input_rate * 2 for layer in report.layers[1:]))
    assert set(report.spike_rates) == {name for name, m in model.named_modules() if isinstance(m, IF)}
    assert report.snn_energy_mj == pytest.approx((report.snn_macs * 4.6 + report.synaptic_ops * 0.9) * 1e-9)


@pytest.mark.parametrize("gated", [False, True])
def test_per_step_export_runs_the_states_through_onnxruntime(tmp_path, tiny, gated):
    import copy

    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model, x, _ = tiny
    model = gate_maxpools(copy.deepcopy(model), 4) if gated else model
    with torch.no_grad():
        steps = model.forward_steps(x[:4])
    assert (steps[-1].argmax(-1) != steps[-1, 0].argmax(-1)).any()  # the outputs depend on the input
    result = snn.export_step(model, tmp_path / "step.onnx", imgsz=32)
    assert result["steps"] == 4 and result["states"] == len(temporal(model)) and result["max_abs_diff"] <= 1e-4
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "step.onnx")).metadata_props}
    assert len(json.loads(props["initial_states"])) == result["states"] and props["timesteps"] == "4"
    assert not (tmp_path / "step.onnx.tmp").exists()


def test_cli_per_step_export_and_bench_energy_view(tmp_path, capsys):
    from zoo.cli import main as cli

    out = tmp_path / "sew.step.onnx"
    assert cli(["export", "sew_resnet18", "--per-step", "--imgsz", "32", "--out", str(out)]) == 0
    assert out.is_file() and "chained steps verified" in capsys.readouterr().out
    assert cli(["export", "mobilenetv3_small_100", "--per-step"]) == 2
    assert "not spiking" in capsys.readouterr().err
    assert cli(["bench", "sew_resnet18", "--imgsz", "32", "--backends", "torch", "--runs", "50", "--warmup", "2",
                "--out", str(tmp_path / "bench")]) == 0
    printed = capsys.readouterr().out
    assert "GSOPs" in printed and "spike-rates.png" in printed
    document = json.loads(next((tmp_path / "bench").glob("*.json")).read_text())
    view = document["results"][0]["snn"]
    assert view["timesteps"] == 4 and 0 < view["mean_spike_rate"] < 1 and view["synaptic_ops"] > 0
    assert view["snn_energy_mj"] == pytest.approx((view["snn_macs"] * 4.6 + view["synaptic_ops"] * 0.9) * 1e-9)
