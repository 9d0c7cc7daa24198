"""Post-training int8 without a training run: ``zoo quantize SOURCE --data NAME [data.KEY=VALUE ...] --format F``.

Calibration images are the data config's training images in the evaluation transform (neither augmented at
random nor the validation split). Each runtime quantizes with its own tool, through :func:`zoo.export.export`:
onnxruntime's ``quantize_static``, NNCF for OpenVINO, ExecuTorch's ``XNNPACKQuantizer`` and litert-torch's
``PT2EQuantizer`` (PT2E). The int8 file and the float one are then both judged where they will run: accuracy on
the validation split (top-1, or COCO mAP@.5 for detectors) and batch-1 latency in interleaved rounds.

Int8 that is slower than float helps nobody, so for onnxruntime and OpenVINO the op types whose int8 form
costs more than it saves are left in float, chosen by measuring on the runtime (greedy: leave one op type in
float, keep the change if the graph got faster by more than :data:`GAIN`), in the spirit of hardware-aware
mixed precision (HAWQ-V3, APQ: ask the hardware, not a proxy). ExecuTorch and LiteRT quantize whole graphs;
for every format the report says plainly when int8 does not pay on this machine.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from zoo._io import atomic_write_json
from zoo.errors import BadArgumentError
from zoo.registry import state_of
from zoo.task_table import TASKS

FORMATS = ("onnx", "openvino", "executorch", "litert")
GAIN = 0.03  # an op type goes back to float only if that makes the graph at least 3% faster
CANDIDATES = {  # op types that may be cheaper in float, tried in this order (those present in the graph)
    "onnx": ("Mul", "Add", "HardSigmoid", "HardSwish", "Sigmoid", "GlobalAveragePool", "AveragePool", "MatMul", "Concat"),
    "openvino": ("Multiply", "Add", "HSigmoid", "HSwish", "ReduceMean", "AvgPool", "MatMul", "GroupConvolution", "Concat"),
}


def quantize(
    source: Any,
    fmt: str = "openvino",
    data: Sequence[str] = (),
    *,
    calib: int = 300,
    out: str | os.PathLike | None = None,
    threads: int | None = None,
    runs: int = 100,
    mixed: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Quantize ``source`` (a :func:`zoo.load` source or model) to int8 for ``fmt``, calibrated on ``calib`` training
    images of the data config ``data`` (Hydra overrides such as ``["data=digits"]``); write the int8 export and
    ``<export>.quantize.json``; return that report."""
    import torch

    import zoo
    from zoo.evaluate import data_module
    from zoo.export import ExportError, default_path, export

    if fmt not in FORMATS:
        raise BadArgumentError(f"zoo quantize writes {', '.join(FORMATS)}, not {fmt!r}")
    if calib < 1:
        raise BadArgumentError(f"--calib must be at least 1 image, not {calib}")
    model = zoo.load(source).eval() if isinstance(source, (str, os.PathLike)) else source.eval()
    spec = model.zoo_spec
    if state_of(model).quantization:
        raise BadArgumentError(f"{spec.name} is already int8 (a QAT run): export it with `zoo export --format {fmt}`")
    if spec.takes_tokens:
        raise BadArgumentError(f"{spec.name} is a language model; zoo quantize takes image models")
    data_mod, cfg = data_module(spec, data)
    size = data_mod.input_size[-1]
    calibration = _images(data_mod.calibration_dataloader(), calib)
    say = print if progress else (lambda *a, **k: None)
    say(f"{spec.name}: {len(calibration)} calibration images from {cfg.data.source}, {size}x{size}, int8 for {fmt}")
    path = Path(out) if out else _int8_path(default_path(spec.name, fmt, source if isinstance(source, (str, os.PathLike)) else None))
    threads = threads or torch.get_num_threads()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp32 = export(model, fmt, imgsz=size, out=tmp / f"fp32{_suffix(fmt)}")
        quantizer, fallback = ("nncf" if fmt == "openvino" else None), None
        trials = {(): _export_int8(model, fmt, size, calibration, (), tmp / f"int8{_suffix(fmt)}", quantizer)}
        fallback = next((n for n in trials[()].notes if n.startswith("NNCF's int8 graph failed")), None)
        if fallback:  # zoo.export.openvino replaced it with onnxruntime's Q/DQ graph
            quantizer = "onnxruntime"
            say(f"  {fallback}")
        runners = {"fp32": _runner(fmt, fp32.path, threads), (): _runner(fmt, trials[()].path, threads)}
        x = calibration[0].numpy()
        latency = _time(runners, x, runs)
        chosen, searched = (), []
        if mixed and fmt in CANDIDATES:
            for op_type in _present(model, fmt, quantizer, fp32.path, size, tmp):
                trial = (*chosen, op_type)
                try:
                    trials[trial] = _export_int8(model, fmt, size, calibration, trial, tmp / f"int8-{len(trials)}{_suffix(fmt)}", quantizer)
                except ExportError as e:  # that op type cannot stay float here; say so and go on
                    searched.append({"float_types": list(trial), "error": str(e)[:200]})
                    continue
                runners[trial] = _runner(fmt, trials[trial].path, threads)
                timed = _time({chosen: runners[chosen], trial: runners[trial]}, x, runs)
                searched.append({"float_types": list(trial), "p50_ms": timed[trial], "vs": timed[chosen]})
                say(f"  {', '.join(trial)} in float: {timed[trial]:.3f} ms against {timed[chosen]:.3f} ms")
                if timed[trial] < (1 - GAIN) * timed[chosen]:
                    chosen = trial
            if chosen:
                latency.update(_time({"fp32": runners["fp32"], (): runners[()], chosen: runners[chosen]}, x, runs))
        say("measuring accuracy on the validation split ...")
        loader = data_mod.val_dataloader()
        accuracy = {"pytorch fp32": _accuracy(spec, model, loader, data_mod.classes),
                    "fp32": _accuracy(spec, _module(runners["fp32"]), loader, data_mod.classes),
                    "int8": _accuracy(spec, _module(runners[chosen]), loader, data_mod.classes)}
        result = trials[chosen]
        from zoo.export import stage_and_move, write_report

        stage_and_move(path, lambda staged: shutil.move(result.path, staged))
        written = dataclasses.replace(result, path=path)
        write_report(written)

    metric = TASKS[spec.task].accuracy[1]
    int8_ms, fp32_ms = latency[chosen], latency["fp32"]
    report = {
        "model": spec.name, "source": str(source) if isinstance(source, (str, os.PathLike)) else spec.name, "format": fmt,
        "file": str(path), "data": cfg.data.source, "calibration_images": len(calibration), "input_size": [3, size, size],
        "metric": metric, "accuracy": accuracy, "accuracy_delta_pt": 100 * (accuracy["int8"] - accuracy["fp32"]),
        "latency_ms": {"fp32": fp32_ms, "int8": int8_ms, **({"int8 (all ops)": latency[()]} if chosen else {})},
        "speedup": fp32_ms / int8_ms, "float_types": list(chosen), "search": searched, "threads": threads,
        "int8_pays": int8_ms < fp32_ms, "quantizer": quantizer or _QUANTIZERS[fmt], "nncf_failed": fallback,
        "notes": written.notes, "date": date.today().isoformat(),
    }
    atomic_write_json(Path(f"{path}.quantize.json"), report)
    say(summary(report))
    return report


def summary(report: dict[str, Any]) -> str:
    a, lat, m = report["accuracy"], report["latency_ms"], report["metric"]
    lines = [f"{report['model']} -> {report['format']} int8 ({report['calibration_images']} calibration images, "
             f"{report['threads']} threads, batch 1 at {report['input_size'][-1]}px)",
             f"  {m}: PyTorch fp32 {100 * a['pytorch fp32']:.2f}%, {report['format']} fp32 {100 * a['fp32']:.2f}%, "
             f"int8 {100 * a['int8']:.2f}% ({report['accuracy_delta_pt']:+.2f} pt)",
             f"  latency: fp32 {lat['fp32']:.3f} ms, int8 {lat['int8']:.3f} ms ({report['speedup']:.2f}x)"]
    if report["float_types"]:
        lines.append(f"  mixed precision: {', '.join(report['float_types'])} kept in float (int8 everywhere: "
                     f"{lat['int8 (all ops)']:.3f} ms)")
    if not report["int8_pays"]:
        lines.append(f"  int8 does not pay on this machine for this model: ship the fp32 {report['format']} export")
    lines.append(f"wrote {report['file']} and {report['file']}.quantize.json")
    return "\n".join(lines)


def _int8_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.int8{path.suffix}") if path.suffix else path.with_name(f"{path.name}_int8")


def _suffix(fmt: str) -> str:
    from zoo.export import FORMATS as EXPORT_FORMATS

    return EXPORT_FORMATS[fmt]


def _images(loader, count: int) -> list[Any]:
    """The first ``count`` images of a loader, one tensor per image (batch 1: how the exports are calibrated)."""
    images = []
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        images.extend(x[i:i + 1] for i in range(len(x)))
        if len(images) >= count:
            break
    return images[:count]


def _runner(fmt: str, path: Path, threads: int):
    from zoo.bench import open_runtime

    return open_runtime(fmt, path, threads)


def _time(runners: dict[Any, Any], x, runs: int) -> dict[Any, float]:
    """p50 latency of each runner on ``x`` (numpy), in interleaved rounds."""
    from zoo.bench import time_interleaved

    timed = time_interleaved({k: (lambda r=r: r(x)) for k, r in runners.items()}, runs, warmup=5)
    return {k: v["p50_ms"] for k, v in timed.items()}


_QUANTIZERS = {"onnx": "onnxruntime", "executorch": "XNNPACKQuantizer", "litert": "litert-torch PT2EQuantizer"}


def _present(model, fmt: str, quantizer: str | None, fp32_path: Path, size: int, tmp: Path) -> list[str]:
    """The candidate op types that occur in the float graph, in :data:`CANDIDATES` order (ONNX op types where
    onnxruntime quantizes, OpenVINO's where NNCF does)."""
    if fmt == "openvino" and quantizer == "nncf":
        import openvino as ov

        from zoo.export.openvino import XML

        types = {op.get_type_name() for op in ov.Core().read_model(str(fp32_path / XML)).get_ordered_ops()}
        return [t for t in CANDIDATES["openvino"] if t in types]
    import onnx

    if fmt != "onnx":
        from zoo.export import export

        fp32_path = export(model, "onnx", imgsz=size, out=tmp / "scan.onnx").path
    types = {n.op_type for n in onnx.load(str(fp32_path)).graph.node}
    return [t for t in CANDIDATES["onnx"] if t in types]


def _export_int8(model, fmt: str, size: int, calibration, float_types, path: Path, quantizer: str | None):
    """The int8 export with ``float_types`` left in float, by the format's own mechanism."""
    from zoo.export import checked_input_size, deploy_form, export, write_report

    if fmt in ("executorch", "litert"):
        return export(model, fmt, imgsz=size, precision="int8", calibration=calibration, out=path)
    deploy, spec = deploy_form(model), model.zoo_spec
    shape = checked_input_size(spec, size)
    if fmt == "onnx":
        from zoo.export.onnx import export_onnx

        result = export_onnx(deploy, spec, path, shape, calibration=calibration, exclude_types=float_types)
    else:
        from zoo.export.openvino import export_openvino

        result = export_openvino(deploy, spec, path, shape, precision="int8", calibration=calibration, ignored_types=float_types,
                                 quantizer=quantizer)
    write_report(result)
    return result


def _module(run):
    """An exported file's runner wearing just enough of ``nn.Module`` for :mod:`zoo.evaluate` (image by image)."""
    import numpy as np
    import torch

    class RuntimeModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)  # evaluate() reads the device from it

        def forward(self, x):
            return torch.cat([torch.from_numpy(np.asarray(run(x[i:i + 1].numpy().copy()))) for i in range(len(x))])

    return RuntimeModule()


def _accuracy(spec, model, loader, classes) -> float:
    row = TASKS[spec.task]
    return float(row.part("evaluate")(model, loader, classes, progress=False)[row.accuracy[0]])


def main(argv: Sequence[str]) -> int:
    """``zoo quantize``: options anywhere, ``data.KEY=VALUE`` overrides as in ``zoo eval`` (``zoo quantize --help``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="zoo quantize", add_help=False)
    parser.add_argument("source")
    parser.add_argument("--data")
    parser.add_argument("--format", default="openvino")
    parser.add_argument("--calib", type=int, default=300)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-mixed", dest="mixed", action="store_false")
    parser.add_argument("--out")
    args, overrides = parser.parse_known_args(list(argv))
    unknown = [o for o in overrides if o.startswith("-") or "=" not in o]
    if unknown:
        raise BadArgumentError(f"unknown option(s) {' '.join(unknown)}; see zoo quantize --help")
    if not args.data:
        raise BadArgumentError("name the calibration and validation data: --data digits, --data shapes_det, "
                               "--data folder data.root=PATH, ...")
    quantize(args.source, args.format, [f"data={args.data}", *overrides], calib=args.calib, out=args.out,
             threads=args.threads, mixed=args.mixed)
    return 0
