"""What spiking models need beyond training: early exit, ANN-to-SNN conversion, energy, per-step export.

- :func:`dynamic_confidence` (Li, Jones and Furber, "Unleashing the Potential of Spiking Neural Networks
  with Dynamic Confidence", ICCV 2023, arXiv:2303.10276): after each step, the softmax of the accumulated
  output divided by a constant; a sample stops at the first step whose top probability passes the threshold.
  The paper divides by 30 for its ~27-32-step converted networks; here the constant defaults to the model's
  own ``T``, so that at the last step the rule sees exactly the logits the model was trained to produce.
  :func:`early_exit` runs it for real, one step at a time, dropping finished samples from the batch.
- :func:`convert` (threshold balancing, Rueckauer et al. 2017; Diehl et al. 2015): each ReLU becomes an IF
  neuron with soft reset whose threshold is a high percentile of that ReLU's outputs on calibration data and
  whose spikes carry the threshold as their height, so firing rates approximate the ANN's activations.
- One-timestep training (Chowdhury, Rathi and Roy, "One Timestep is All You Need", arXiv:2110.05929):
  :func:`convert` with ``learn=True`` gives IF neurons with trainable threshold and leak; :func:`reduce_timesteps`
  (or, in a recipe, the ``timesteps`` plugin) then fine-tunes on a decreasing schedule of ``T`` (5, 4, 3, 2, 1),
  each stage starting from the last.
- :func:`energy`: spike rates per layer and synaptic operations against the ANN's MACs, priced with the
  45 nm constants SNN papers use (Horowitz, "Computing's energy problem", ISSCC 2014: 32-bit float
  multiply-accumulate 4.6 pJ, accumulate 0.9 pJ).
- :func:`export_step`: ONNX of one timestep with the layers' states as extra inputs and outputs, the form an
  early-exit runtime needs (the unrolled fixed-``T`` graph comes from ``zoo export``).

Written here: none of these is in a library we can depend on (spikingjelly's converter targets its own
neurons; the Dynamic Confidence code is GPL-2.0 and the one-timestep code has no licence).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.snn import IF, Neuron, SpikingModel, gate_maxpools, neurons, set_timesteps, streaming, temporal

E_MAC_PJ = 4.6  # 32-bit float multiply-accumulate, 45 nm (Horowitz, ISSCC 2014: multiply 3.7 pJ + add 0.9 pJ)
E_AC_PJ = 0.9  # 32-bit float add, 45 nm (same source)
ENERGY_SOURCE = "Horowitz, ISSCC 2014, 45 nm: MAC 4.6 pJ, AC 0.9 pJ (32-bit float)"


def is_spiking(model: nn.Module) -> bool:
    return isinstance(model, SpikingModel) and bool(neurons(model))


def _require_spiking(model: nn.Module, what: str) -> None:
    if not isinstance(model, SpikingModel):
        raise ZooError(f"{what} needs a spiking model (sew_resnet18, spiking_vgg11, spikformer_4_384, or zoo.snn.convert's "
                       f"output), not {type(model).__name__}")


# -- Dynamic Confidence -------------------------------------------------------------------------------------

@torch.no_grad()
def step_logits(model: nn.Module, batches: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step logits ``[N, T, classes]`` and labels ``[N]`` over ``(images, labels)`` batches."""
    _require_spiking(model, "step_logits")
    model.eval()
    device = next(model.parameters()).device
    outs, labels = [], []
    for x, y in batches:
        outs.append(model.forward_steps(x.to(device)).transpose(0, 1).float().cpu())
        labels.append(y.cpu())
    return torch.cat(outs), torch.cat(labels)


def dynamic_confidence(steps: torch.Tensor, threshold: float, temperature: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and exit steps (1-based) of the Dynamic Confidence rule on per-step logits ``[N, T, C]``.

    ``softmax(sum of the outputs so far / temperature)``; a sample exits at the first step whose largest
    probability exceeds ``threshold``, or at the last step. ``temperature`` defaults to ``T``.
    """
    n, T, _ = steps.shape
    accumulated = steps.cumsum(1) / (T if temperature is None else temperature)
    confident = accumulated.softmax(-1).amax(-1) > threshold  # [N, T]
    confident[:, -1] = True
    exit_index = confident.float().argmax(1)  # the first True
    predictions = accumulated[torch.arange(n), exit_index].argmax(-1)
    return predictions, exit_index + 1


@torch.no_grad()
def early_exit(model: nn.Module, x: torch.Tensor, threshold: float, max_steps: int | None = None,
               temperature: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic Confidence run step by step: finished samples leave the batch, so they cost nothing more.

    Returns predictions and exit steps, equal to :func:`dynamic_confidence` on the same model's step logits.
    """
    _require_spiking(model, "early_exit")
    T = max_steps or model.timesteps
    scale = model.timesteps if temperature is None else temperature
    predictions = torch.zeros(len(x), dtype=torch.long, device=x.device)
    steps = torch.full((len(x),), T, dtype=torch.long, device=x.device)
    active = torch.arange(len(x), device=x.device)
    accumulated = None
    model.eval()
    with streaming(model) as stream:
        for t in range(1, T + 1):
            out = stream.step(x[active])
            accumulated = out if accumulated is None else accumulated + out
            confident = (accumulated / scale).softmax(-1).amax(-1) > threshold
            if t == T:
                confident[:] = True
            done = active[confident]
            predictions[done] = accumulated[confident].argmax(-1)
            steps[done] = t
            keep = ~confident
            active, accumulated = active[keep], accumulated[keep]
            if not len(active):
                break
            stream.keep(keep.nonzero().squeeze(1))
    return predictions, steps


@dataclasses.dataclass
class DynamicConfidenceResult:
    threshold: float  # to deploy: given, chosen on the calibration data, or chosen on all the evaluation data
    selection: str  # how the accuracy below was measured: "given", "calibration" or "2-fold cross-validation"
    temperature: float
    timesteps: int
    accuracy: float  # with early exit, on the evaluation data
    full_accuracy: float  # all T steps
    average_steps: float
    per_step_accuracy: list[float]  # fixed-T accuracy after 1..T steps
    sweep: list[dict[str, float]]  # threshold -> accuracy and average steps (evaluation data)
    fold_thresholds: list[float] = dataclasses.field(default_factory=list)  # cross-validation: each fold's

    @property
    def saving(self) -> float:
        return 1 - self.average_steps / self.timesteps


def choose_threshold(steps: torch.Tensor, labels: torch.Tensor, max_drop: float = 0.0,
                     temperature: float | None = None, candidates: Sequence[float] | None = None) -> float:
    """The threshold with the fewest average steps whose accuracy on ``steps``/``labels`` stays within
    ``max_drop`` of the full-T accuracy there (default: no loss, the paper's claim); the paper picks it from
    such an accuracy-latency front on held-out data."""
    full = (steps.mean(1).argmax(-1) == labels).float().mean().item()
    best, best_steps = 1.0, float(steps.shape[1])
    for threshold in candidates or [round(0.1 + 0.01 * i, 2) for i in range(90)] + [0.995, 0.999, 0.9999]:
        predictions, exits = dynamic_confidence(steps, threshold, temperature)
        accuracy = (predictions == labels).float().mean().item()
        if accuracy >= full - max_drop and exits.float().mean().item() < best_steps:
            best, best_steps = threshold, exits.float().mean().item()
    return best


def evaluate_dynamic_confidence(model: nn.Module, val_batches: Iterable, calibration_batches: Iterable | None = None,
                                threshold: float | None = None, temperature: float | None = None, folds: int = 2,
                                out_dir: str | Path | None = None) -> DynamicConfidenceResult:
    """Accuracy and average timesteps with Dynamic Confidence against the full-T run, on ``val_batches``.

    The threshold is ``threshold`` if given, else chosen by :func:`choose_threshold` on ``calibration_batches``
    (held-out data), else by ``folds``-fold cross-validation on the evaluation data itself: each sample is
    judged with a threshold chosen on the other folds, so none is chosen on the samples it is scored on (the
    threshold reported for deployment is then the one chosen on all of them). Training images make a poor
    calibration set: the model is more confident on them than on new data. With ``out_dir``, writes
    ``dynamic_confidence.json`` and the accuracy-vs-timesteps curve ``dynamic_confidence.png``.
    """
    steps, labels = step_logits(model, val_batches)
    T = steps.shape[1]
    fold_thresholds: list[float] = []
    if threshold is not None:
        selection = "given"
        predictions, exits = dynamic_confidence(steps, threshold, temperature)
    elif calibration_batches is not None:
        selection = "calibration"
        threshold = choose_threshold(*step_logits(model, calibration_batches), temperature=temperature)
        predictions, exits = dynamic_confidence(steps, threshold, temperature)
    else:
        selection = f"{folds}-fold cross-validation"
        fold = torch.arange(len(labels)) % folds
        predictions, exits = torch.empty_like(labels), torch.empty_like(labels)
        for k in range(folds):
            held = fold == k
            fold_thresholds.append(choose_threshold(steps[~held], labels[~held], temperature=temperature))
            predictions[held], exits[held] = dynamic_confidence(steps[held], fold_thresholds[-1], temperature)
        threshold = choose_threshold(steps, labels, temperature=temperature)
    accumulated = steps.cumsum(1)
    per_step = [(accumulated[:, t].argmax(-1) == labels).float().mean().item() for t in range(T)]
    sweep = []
    for th in [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999]:
        p, e = dynamic_confidence(steps, th, temperature)
        sweep.append({"threshold": th, "accuracy": (p == labels).float().mean().item(), "average_steps": e.float().mean().item()})
    result = DynamicConfidenceResult(
        threshold=threshold, selection=selection, temperature=float(T if temperature is None else temperature),
        timesteps=T, accuracy=(predictions == labels).float().mean().item(), full_accuracy=per_step[-1],
        average_steps=exits.float().mean().item(), per_step_accuracy=per_step, sweep=sweep, fold_thresholds=fold_thresholds,
    )
    if out_dir is not None:
        from zoo._io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "dynamic_confidence.json", json.dumps(dataclasses.asdict(result), indent=2))
        _plot_dynamic_confidence(result, out / "dynamic_confidence.png")
    return result


def _plot_dynamic_confidence(r: DynamicConfidenceResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo._io import atomic_write

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, r.timesteps + 1), [100 * a for a in r.per_step_accuracy], "o-", label="fixed T (stop every sample at T)")
    ax.plot([s["average_steps"] for s in r.sweep], [100 * s["accuracy"] for s in r.sweep], "s--", alpha=0.6,
            label="Dynamic Confidence, threshold sweep")
    chosen = f"thresholds {', '.join(f'{t:g}' for t in r.fold_thresholds)} ({r.selection})" if r.fold_thresholds else \
        f"threshold {r.threshold:g} ({r.selection})"
    ax.plot([r.average_steps], [100 * r.accuracy], "r*", markersize=14, label=chosen)
    ax.set_xlabel("average timesteps")
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"accuracy vs timesteps: {r.average_steps:.2f} of {r.timesteps} steps ({100 * r.saving:.0f}% fewer)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


# -- ANN-to-SNN conversion ----------------------------------------------------------------------------------

class Converted(SpikingModel, nn.Module):
    """A converted network that was not one of the registered spiking classes: direct encoding over ``T``."""

    def __init__(self, body: nn.Module, timesteps: int) -> None:
        super().__init__()
        self.body, self.timesteps = body, timesteps

    def forward_body(self, x):
        return self.body(x)


@torch.no_grad()
def activation_percentiles(ann: nn.Module, batches: Iterable, percentile: float = 99.9,
                           max_batches: int = 10, samples_per_batch: int = 200_000) -> dict[str, float]:
    """The ``percentile`` of each ``nn.ReLU``'s positive outputs on calibration ``(images, labels)`` batches."""
    relus = {name: m for name, m in ann.named_modules() if isinstance(m, nn.ReLU)}
    if not relus:
        raise ZooError("convert needs a network whose activations are nn.ReLU modules (a registered SNN with "
                       "neuron=relu is its ANN twin); functional relu calls cannot be found")
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in relus}
    generator = torch.Generator().manual_seed(0)

    def hook(name):
        def record(module, inputs, output):
            values = output.detach().flatten().float().cpu()
            values = values[values > 0]
            if len(values) > samples_per_batch:
                values = values[torch.randperm(len(values), generator=generator)[:samples_per_batch]]
            seen[name].append(values)
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in relus.items()]
    was_training = ann.training
    ann.eval()
    device = next(ann.parameters()).device
    try:
        for i, (x, *_) in enumerate(batches):
            if i >= max_batches:
                break
            ann(x.to(device))
    finally:
        for h in handles:
            h.remove()
        ann.train(was_training)
    out = {}
    for name, values in seen.items():
        v = torch.cat(values) if values else torch.zeros(0)
        out[name] = float(torch.quantile(v, percentile / 100)) if len(v) else 1.0
    return out


def convert(ann: nn.Module, batches: Iterable, timesteps: int = 32, percentile: float = 99.9, v_init: float = 0.5,
            learn: bool = False, max_batches: int = 10) -> nn.Module:
    """An SNN from a trained ReLU network: each ``nn.ReLU`` becomes a soft-reset IF neuron whose threshold is the
    ``percentile`` of that ReLU's outputs on the calibration ``batches`` and whose spikes are that high; each
    ``nn.MaxPool2d`` becomes a :class:`~zoo.models.snn.SpikeMaxPool` (gated by spike counts).

    Args:
        ann: the trained ANN (left unchanged). A registered spiking architecture built with ``neuron="relu"``
            converts into the same architecture with IF neurons (``zoo.save``/``zoo.load`` round-trip it);
            any other ReLU network is wrapped in :class:`Converted`.
        timesteps: ``T`` of the returned SNN (accuracy approaches the ANN's as it grows).
        v_init: initial membrane as a share of the threshold (0.5: rounding instead of flooring at low ``T``).
        learn: trainable thresholds and leaks (the one-timestep method fine-tunes them).
    """
    thresholds = activation_percentiles(ann, batches, percentile, max_batches)
    snn = copy.deepcopy(ann)
    settings = {"reset": "soft", "v_init": v_init, "scaled": True, "learn_threshold": learn, "learn_leak": learn}
    for name, threshold in thresholds.items():
        parent_name, _, child = name.rpartition(".")
        parent = snn.get_submodule(parent_name) if parent_name else snn
        neuron = IF(v_threshold=threshold, timesteps=timesteps, **settings)
        setattr(parent, child, neuron.to(next(ann.parameters()).device))
    gate_maxpools(snn, timesteps)
    if not isinstance(snn, SpikingModel):
        snn = Converted(snn, timesteps)
    set_timesteps(snn, timesteps)
    spec = getattr(ann, "zoo_spec", None)
    if spec is not None and not isinstance(snn, Converted):
        kwargs = dict(spec.default_kwargs) | {"neuron": "if", "neuron_kwargs": settings, "timesteps": timesteps,
                                              "spike_maxpool": True}
        snn.zoo_spec = dataclasses.replace(spec, default_kwargs=kwargs)
    return snn


def with_timesteps(model: nn.Module, timesteps: int) -> nn.Module:
    """Set ``T`` on the model and on the spec ``zoo.save`` records (so the saved model loads with this ``T``)."""
    set_timesteps(model, timesteps)
    spec = getattr(model, "zoo_spec", None)
    if spec is not None and "timesteps" in spec.default_kwargs:
        model.zoo_spec = dataclasses.replace(spec, default_kwargs=dict(spec.default_kwargs) | {"timesteps": int(timesteps)})
    return model


def reduce_timesteps(model: nn.Module, batches: Iterable, schedule: Sequence[int] = (5, 4, 3, 2, 1),
                     epochs_per_stage: int = 1, lr: float = 1e-4, progress: bool = True) -> nn.Module:
    """Fine-tune an SNN through a decreasing schedule of ``T`` (one-timestep training), in place.

    Each stage trains ``epochs_per_stage`` passes over ``(images, labels)`` ``batches`` at its ``T`` with
    cross-entropy on the time-averaged logits, starting from the previous stage's weights (Adam with
    AMSGrad, as the paper). Use :func:`convert` with ``learn=True`` first so thresholds and leaks train too.
    In a ``zoo train`` recipe the ``timesteps`` plugin does the same with the task's optimizer and schedule.
    """
    _require_spiking(model, "reduce_timesteps")
    if not schedule or any(int(t) < 1 for t in schedule):
        raise ZooError(f"schedule needs timesteps >= 1, e.g. (5, 4, 3, 2, 1); got {schedule}")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, amsgrad=True)
    stages = [(int(t), epoch) for t in schedule for epoch in range(epochs_per_stage)]
    if progress:
        from rich.progress import track

        stages = track(stages, description="reducing timesteps")
    model.train()
    for timesteps, _ in stages:
        with_timesteps(model, timesteps)
        for x, y in batches:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy_over_timesteps(model: nn.Module, batches: Iterable, timesteps: Sequence[int]) -> dict[int, float]:
    """Top-1 of ``model`` run at each ``T`` (one pass at the largest ``T``: step ``t`` only sees steps up to ``t``)."""
    saved = model.timesteps
    set_timesteps(model, max(timesteps))
    try:
        steps, labels = step_logits(model, batches)
    finally:
        set_timesteps(model, saved)
    accumulated = steps.cumsum(1)
    return {int(t): (accumulated[:, t - 1].argmax(-1) == labels).float().mean().item() for t in timesteps}


# -- energy -------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class LayerEnergy:
    name: str
    kind: str  # "MAC" (real-valued input: the first layer under direct encoding) or "AC" (spike input)
    macs: float  # dense multiply-accumulates per image per timestep
    input_rate: float  # share of input entries that are spikes (AC layers), 1 for MAC layers
    ops: float  # operations per image over all timesteps: MACs x T, or synaptic operations (MACs x rate x T)


@dataclasses.dataclass
class EnergyReport:
    timesteps: int
    layers: list[LayerEnergy]
    spike_rates: dict[str, float]  # neuron -> spikes per neuron per timestep
    ann_macs: float  # the same network as an ANN: dense MACs per image
    snn_macs: float  # MACs per image the SNN still does (real-valued inputs), over all timesteps
    synaptic_ops: float  # accumulates per image over all timesteps
    source: str = ENERGY_SOURCE

    @property
    def ann_energy_mj(self) -> float:
        return self.ann_macs * E_MAC_PJ * 1e-9

    @property
    def snn_energy_mj(self) -> float:
        return (self.snn_macs * E_MAC_PJ + self.synaptic_ops * E_AC_PJ) * 1e-9

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(ann_energy_mj=self.ann_energy_mj, snn_energy_mj=self.snn_energy_mj)
        return d


def _dense_macs(module: nn.Module, output: torch.Tensor, n: int) -> float:
    if isinstance(module, nn.Conv2d):
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return output.numel() / n * per_output
    return output.numel() / n * module.in_features  # nn.Linear


def _spike_share(x: torch.Tensor) -> float | None:
    """Share of operations an input costs as spikes: nonzero share for one spike height, the mean count for
    integer counts (SEW's ADD gives 0, 1, 2), ``None`` for real values (a MAC layer)."""
    nonzero = x[x != 0]
    if not len(nonzero):
        return 0.0
    if bool((nonzero == nonzero[0]).all()):
        return nonzero.numel() / x.numel()
    if bool((x >= 0).all()) and bool((x == x.round()).all()):
        return float(x.mean())
    return None


@torch.no_grad()
def energy(model: nn.Module, x: torch.Tensor) -> EnergyReport:
    """Spike rates per layer, synaptic operations and MACs of ``model`` on images ``x`` (per image).

    Counts convolutions and linear layers (BatchNorm folds into them for deployment; pooling and additions
    are not counted, nor are the spike-spike matrix products inside Spikformer's attention).
    """
    _require_spiking(model, "energy")
    model.eval()
    T, n = model.timesteps, len(x)
    layers: list[LayerEnergy] = []
    rates: dict[str, float] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            def layer_hook(module, inputs, output, name=name):
                macs = _dense_macs(module, output, n * T)
                share = _spike_share(inputs[0])
                if share is None:
                    layers.append(LayerEnergy(name, "MAC", macs, 1.0, macs * T))
                else:
                    layers.append(LayerEnergy(name, "AC", macs, share, macs * share * T))
            handles.append(m.register_forward_hook(layer_hook))
        elif isinstance(m, Neuron):
            def neuron_hook(module, inputs, output, name=name):
                rates[name] = float((output != 0).float().mean())
            handles.append(m.register_forward_hook(neuron_hook))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return EnergyReport(
        timesteps=T, layers=layers, spike_rates=rates,
        ann_macs=sum(layer.macs for layer in layers),
        snn_macs=sum(layer.ops for layer in layers if layer.kind == "MAC"),
        synaptic_ops=sum(layer.ops for layer in layers if layer.kind == "AC"),
    )


# -- per-step export ----------------------------------------------------------------------------------------

class StepModule(nn.Module):
    """One timestep as a pure function: ``(image, *states) -> (logits, *states)`` (membranes, spike counts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, *states):
        with streaming(self.model) as stream:
            stream.states = list(states)
            out = stream.step(x)
            return (out, *stream.states)


@torch.no_grad()
def initial_states(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The states before the first step (membranes, spike counts), shaped for this input size and batch."""
    with streaming(model) as stream:
        stream.step(x)
        after_one = stream.states
    return [m.initial_state(v) for m, v in zip(temporal(model), after_one)]


def export_step(model: nn.Module, path: str | Path, imgsz: int | None = None, batch: int = 1,
                tolerance: float = 1e-4) -> dict[str, Any]:
    """ONNX of one timestep (states in, states out) for early-exit runtimes, verified in onnxruntime.

    Inputs ``image`` and ``s0``, ``s1``... (each temporal layer's state: membranes, spike counts); outputs
    ``logits`` (this step's) and ``s0_out``...: feed them back as the next step's states. Each state starts
    filled with one value, listed in the model's metadata as ``initial_states`` (JSON), so a runtime needs
    nothing from PyTorch. Runs ``T`` steps in onnxruntime against :func:`streaming` in PyTorch; beyond
    ``tolerance`` nothing is written. Returns the verification numbers.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    from zoo.export import example_input

    _require_spiking(model, "export_step")
    model = model.eval()
    spec = getattr(model, "zoo_spec", None)
    size = imgsz or (spec.input_size[-1] if spec else 32)
    x = torch.randn(batch, 3, size, size) if spec is None else example_input(spec, (spec.input_size[0], size, size), batch=batch)
    states = initial_states(model, x)
    names = [f"s{i}" for i in range(len(states))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.onnx.export(StepModule(model).eval(), (x, *states), str(tmp), input_names=["image", *names],
                          output_names=["logits", *(f"{n}_out" for n in names)], dynamo=True, external_data=False)
        proto = onnx.load(str(tmp))
        for key, value in {"zoo_name": spec.name if spec else "", "timesteps": str(model.timesteps),
                           "initial_states": json.dumps([float(v.flatten()[0]) for v in states])}.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        feeds = [np.full(v.shape, float(v.flatten()[0]), dtype=np.float32) for v in states]  # from the metadata alone
        worst = 0.0
        with torch.no_grad(), streaming(model) as stream:
            for _ in range(model.timesteps):
                expected = stream.step(x).numpy()
                outputs = session.run(None, {"image": x.numpy(), **dict(zip(names, feeds))})
                worst = max(worst, float(np.abs(outputs[0] - expected).max()))
                feeds = outputs[1:]
        if worst > tolerance:
            raise ZooError(f"per-step ONNX differs from PyTorch by {worst:.3g} (> {tolerance}); nothing written")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(path), "steps": model.timesteps, "states": len(states), "max_abs_diff": worst, "tolerance": tolerance}
