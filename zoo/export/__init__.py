"""``zoo.export``: a model (or its name, folder or run) -> a verified ONNX, OpenVINO, ExecuTorch, LiteRT,
CoreML or TensorRT file.

Every export starts from the deploy form (a family's own ``model.deploy()`` where it has one, e.g.
YOLOv10 drops its training-only head and folds BatchNorm; otherwise ``timm.utils.model.reparameterize_model``
folds MobileOne / FastViT / RepVGG branches and BatchNorm), writes its file atomically, and is verified
against PyTorch before it is moved into place: an export that is off by more than its tolerance raises
and leaves nothing behind that a later run could trust. Detectors are compared detection by detection
(:func:`compare_detections`), since near-equal scores may swap places in a top-k.

Precisions: every format exports fp32; OpenVINO also fp16 (compressed weights) and bf16 (its inference
precision hint, kept in the IR); CoreML and TensorRT fp16. int8 comes from calibration data
(``calibration=``, what ``zoo quantize`` passes, each runtime with its own quantizer) or from a QAT run.
"""
from __future__ import annotations

import copy
import os
import sys
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo._io import atomic_write_text
from zoo.errors import BadArgumentError, ZooError
from zoo.registry import state_of

FORMATS = {"onnx": ".onnx", "openvino": "_openvino", "executorch": ".pte", "litert": ".tflite", "coreml": ".mlpackage",
           "tensorrt": ".engine"}
ALIASES = {"trt": "tensorrt", "engine": "tensorrt", "mlpackage": "coreml", "mlmodel": "coreml", "ov": "openvino",
           "pte": "executorch", "tflite": "litert"}
PRECISIONS = {"onnx": ("fp32", "int8"), "openvino": ("fp32", "fp16", "bf16", "int8"), "executorch": ("fp32", "int8"),
              "litert": ("fp32", "int8"), "coreml": ("fp32", "fp16"), "tensorrt": ("fp32", "fp16", "int8")}
# format: (module, pip extra), checked before any work (TensorRT is not: without it the verified ONNX is still written,
# ready for trtexec on the target, see zoo.export.tensorrt)
EXTRAS = {"openvino": ("openvino", "openvino"), "executorch": ("executorch", "executorch"), "litert": ("ai_edge_litert", "litert"),
          "coreml": ("coremltools", "coreml")}
INT8_COSINE = 0.98  # int8 from calibration has no PyTorch int8 twin to match step by step: its direction must hold


class ExportError(ZooError):
    """An export that failed, or whose result does not match PyTorch (``checks``: the failed comparisons, by input)."""

    checks: dict[str, dict[str, float]] = {}


def require(fmt: str):
    """The runtime module behind ``fmt``, or one line naming the ``pip install`` that brings it."""
    import importlib

    module, extra = EXTRAS[fmt]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"--format {fmt} needs the {module} package: pip install 'efficient-zoo[{extra}]'") from None


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how well it matches PyTorch."""

    path: Path
    format: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    verification: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.format}: {self.path}"]
        for name, v in self.verification.items():
            if isinstance(v, dict) and "max_abs_diff" in v:
                matched = f", {v['matched']}/{v['required']} confident detections matched" if "required" in v else ""
                if "argmax_agreement" in v:
                    matched = f", classes agree on {v['argmax_agreement']:.2%} of pixels"
                lines.append(
                    f"  verified on {name} input: max |diff| {v['max_abs_diff']:.3g} (tolerance {v['tolerance']:.3g}), "
                    f"cosine {v['cosine']:.6f}{matched}"
                )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def export(
    model_or_source: Any,
    format: str = "onnx",
    *,
    imgsz: int | None = None,
    batch: int = 1,
    dynamic: bool = False,
    half: bool = False,
    precision: str | None = None,
    opset: int = 18,
    simplify: bool = True,
    out: str | os.PathLike | None = None,
    image_input: bool = False,
    calibration: Any = None,
    allow_pickle: bool = False,
) -> ExportResult:
    """Export and verify. ``model_or_source`` is a module from :func:`zoo.load` or anything it accepts
    (``allow_pickle`` as there: for official weights published only as pickles).

    ``precision``: fp32 (default), fp16, bf16 or int8 where the format has it (:data:`PRECISIONS`);
    ``half=True`` means fp16. int8 needs ``calibration`` (an iterable of input batches) unless the model
    is a QAT run's int8 model. A precision a format cannot carry is refused before any work.
    """
    import zoo

    fmt = ALIASES.get(str(format).lower(), str(format).lower())
    if fmt not in FORMATS:
        raise BadArgumentError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if batch < 1:
        raise BadArgumentError(f"batch must be >= 1, not {batch}")
    if half and precision not in (None, "fp16"):
        raise BadArgumentError(f"--half means fp16; it cannot be combined with precision {precision}")
    precision = precision or ("fp16" if half else "fp32")
    if precision not in PRECISIONS[fmt]:
        raise BadArgumentError(f"{fmt} exports {', '.join(PRECISIONS[fmt])}, not {precision!r}")
    if fmt in EXTRAS:
        require(fmt)
    source = model_or_source if isinstance(model_or_source, (str, os.PathLike)) else None
    model = zoo.load(model_or_source, allow_pickle=allow_pickle) if source is not None else model_or_source
    spec = getattr(model, "zoo_spec", None)
    if spec is None:
        raise BadArgumentError("zoo.export takes a model made by zoo.load (it carries model.zoo_spec) or a model source")
    if fmt in spec.cannot_export:  # known from the export matrix: refused before a capture that takes minutes
        runtime = {"executorch": "ExecuTorch", "litert": "LiteRT", "coreml": "CoreML", "openvino": "OpenVINO",
                   "tensorrt": "TensorRT", "onnx": "ONNX"}[fmt]
        can = [f for f in ("onnx", "openvino", "tensorrt") if f not in spec.cannot_export]
        raise ExportError(f"{spec.name}: {runtime} cannot convert this model ({spec.cannot_export[fmt]}); nothing was "
                          f"written. It exports to {', '.join(can)}")
    size = checked_input_size(spec, imgsz)
    path = writable(Path(out) if out else default_path(spec.name, fmt, source), fmt in DIRECTORY_FORMATS)
    if fmt == "coreml" and path.suffix != ".mlpackage":
        raise BadArgumentError(f"--out {path}: a CoreML ML program is an .mlpackage folder; give a path ending in .mlpackage")
    state = state_of(model)
    qat = bool(state.quantization or state.int8)  # a QAT run, or its deploy form
    if qat and fmt in ("coreml", "litert", "executorch"):
        raise BadArgumentError(
            f"an int8 (QAT) model exports to onnx, openvino and tensorrt (from its Q/DQ ONNX graph); {fmt} does not run "
            f"this int8 graph: export the fp32 model, or quantize it for {fmt} with `zoo quantize --format {fmt}`"
        )
    if qat and precision not in ("fp32", "int8"):
        raise BadArgumentError(f"a QAT run exports its int8 graph; precision {precision} does not apply to it")
    if qat:
        precision = "int8"
    elif precision == "int8" and fmt != "tensorrt" and calibration is None:
        raise BadArgumentError(f"int8 needs calibration data: `zoo quantize {source or spec.name} --format {fmt} --data NAME` "
                               "(or zoo.export(..., precision='int8', calibration=batches))")
    elif precision == "int8" and fmt == "tensorrt":
        raise BadArgumentError("TensorRT builds int8 from a QAT run's Q/DQ graph; train with plugins=[qat] first")
    if spec.takes_tokens and (image_input or spec.task == "language-modeling" and fmt not in ("onnx", "tensorrt")):
        raise BadArgumentError(f"{spec.name} is a language model (token ids in): export it to onnx, or to tensorrt "
                               f"from its ONNX graph; {fmt} export here takes image models")
    if dynamic and fmt in ("executorch", "litert", "coreml"):
        raise BadArgumentError(f"{fmt} exports a fixed batch; drop --dynamic and set --batch")
    deploy = deploy_form(model)
    if fmt == "onnx":
        from zoo.export.onnx import export_onnx

        result = export_onnx(deploy, spec, path, size, batch=batch, dynamic=dynamic, opset=opset, simplify=simplify,
                             calibration=calibration)
    elif fmt == "openvino":
        from zoo.export.openvino import export_openvino

        result = export_openvino(deploy, spec, path, size, batch=batch, dynamic=dynamic, precision=precision,
                                 calibration=calibration, opset=opset)
    elif fmt == "executorch":
        from zoo.export.executorch import export_executorch

        result = export_executorch(deploy, spec, path, size, batch=batch, calibration=calibration)
    elif fmt == "litert":
        from zoo.export.litert import export_litert

        result = export_litert(deploy, spec, path, size, batch=batch, calibration=calibration)
    elif fmt == "coreml":
        from zoo.export.coreml import export_coreml

        result = export_coreml(deploy, spec, path, size, batch=batch, half=precision == "fp16", image_input=image_input)
    else:
        from zoo.export.tensorrt import export_tensorrt

        result = export_tensorrt(deploy, spec, path, size, batch=batch, dynamic=dynamic, half=precision == "fp16", opset=opset,
                                 simplify=simplify)
    write_report(result)
    return result


def reference_outputs(model, inputs: dict[str, Any]) -> dict[str, Any]:
    """PyTorch's outputs for each named input, as numpy arrays."""
    import torch

    with torch.no_grad():
        return {name: model(x).numpy() for name, x in inputs.items()}


def verify(spec, what: str, run, inputs: dict[str, Any], reference: dict[str, Any], *, precision: str = "fp32",
           int8_step: float | None = None, float_reference: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Run each named input through ``run`` (numpy in, numpy out) and compare with ``reference``; raise
    :class:`ExportError` naming the worst differences when any is beyond tolerance (callers write nothing then).

    ``int8_step``: an int8 graph with a PyTorch int8 twin, compared within :data:`INT8_STEPS` output steps; with
    ``float_reference`` (the float model's outputs before quantization) plus twice the twin's own distance from
    float. Runtimes round requantizations and approximate some int8 ops their own way (TFLite's fixed-point
    multipliers and hardswish), so they need not land where the twin does, only as near the float model: a runtime
    no further from float than the twin plus 16 steps is, by the triangle inequality, within 16 steps plus twice
    the twin's error of the twin. A wrong graph is off by far more.
    Calibrated int8 without a twin (onnxruntime's and NNCF's quantizers) must keep the fp32 output's
    direction on calibration images (cosine >= :data:`INT8_COSINE`; detectors: their sorted scores; see
    :func:`calibration_check`); the accuracy check of ``zoo quantize`` is what judges it.
    """
    results = {}
    for name, x in inputs.items():
        got = run(x.numpy())
        if precision == "int8" and int8_step is None:
            results[name] = compare_int8(spec, reference[name], got)
        else:
            int8_error = None if float_reference is None else max_abs_diff(float_reference[name], reference[name])
            results[name] = compare_outputs(spec, reference[name], got, precision=None if precision == "int8" else precision,
                                            int8_step=int8_step, int8_error=int8_error)
    failed = {k: v for k, v in results.items() if not v["ok"]}
    if failed:
        worst = ", ".join(f"{k}: max |diff| {v['max_abs_diff']:.3g} > {v['tolerance']:.3g}, cosine {v['cosine']:.4f}"
                          for k, v in failed.items())
        error = ExportError(f"{spec.name}: {what} output differs from PyTorch beyond tolerance ({worst}); nothing was written")
        error.checks = failed
        raise error
    return results


def compare_int8(spec, reference, candidate) -> dict[str, float]:
    """Calibrated int8 against fp32 PyTorch: the direction of the output (detectors: of the sorted scores)."""
    import numpy as np

    ref, got = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    if spec is not None and spec.task == "detection":
        ref, got = np.sort(ref[..., 4], -1), np.sort(got[..., 4], -1)
    check = compare(ref, got)
    if spec is not None and spec.task == "segmentation":
        check["argmax_agreement"] = argmax_agreement(ref, got)
    check["tolerance"] = float("inf")
    check["ok"] = ref.shape == got.shape and check["cosine"] >= INT8_COSINE
    check["min_cosine"] = INT8_COSINE
    return check


class cannot_convert:
    """Turn a converter's own exception into one :class:`ExportError` line naming the model, the tool and its reason
    (torch.export, ExecuTorch's and LiteRT's lowerings raise many types; the user needs the first line, not the trace)."""

    def __init__(self, spec, tool: str) -> None:
        self.spec, self.tool = spec, tool

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if error is None or isinstance(error, (ZooError, KeyboardInterrupt)) or not isinstance(error, Exception):
            return False
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise ExportError(f"{self.spec.name}: {self.tool} cannot convert this model ({type(error).__name__}: {reason}); "
                          "nothing was written") from error


def batches_of(calibration, batch: int | None) -> list[Any]:
    """Calibration input batches re-cut to exactly ``batch`` rows (a graph with a fixed batch takes no other);
    items may be tensors or ``(inputs, targets)`` pairs. ``batch=None`` keeps them as given."""
    import torch

    tensors = [item[0] if isinstance(item, (tuple, list)) else item for item in calibration]
    if not tensors:
        raise BadArgumentError("calibration data is empty: give at least one batch of inputs")
    if batch is None:
        return tensors
    rows = torch.cat(tensors)
    return [rows[i:i + batch] for i in range(0, len(rows) - batch + 1, batch)]


def calibration_check(model, batches) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inputs a calibrated int8 graph without a PyTorch int8 twin is verified on: calibration images, the
    distribution its ranges were set on (random noise or an unrelated photo is clipped differently, and the
    accuracy check of ``zoo quantize`` on the validation split is what judges the quantization itself)."""
    inputs = {"calibration": batches[0]}
    return inputs, reference_outputs(model, inputs)


def calibration_inputs(batches) -> dict[str, Any]:
    """The first and last calibration batches: what calibrated int8 with a PyTorch twin is verified on. Ranges are set on
    that distribution; another photo (a flower for a digits model) is clipped differently, and the runtimes' own
    rounding at the clipping edges then grows layer by layer."""
    return {"calibration": batches[0], **({"calibration_last": batches[-1]} if len(batches) > 1 else {})}


def write_verified(path: Path, data: bytes, fmt: str, what: str, open_runner, spec, inputs, reference, *, precision: str,
                   int8_step: float | None, size, batch: int, notes: list[str], props: dict[str, str],
                   float_reference: dict[str, Any] | None = None) -> ExportResult:
    """A single-file program (``.pte``, ``.tflite``): staged, opened in its runtime by ``open_runner(path)``, verified,
    then moved into place; a program the runtime cannot load is an :class:`ExportError` and nothing is written."""
    verification: dict = {}

    def write(staged: Path) -> None:
        staged.write_bytes(data)
        try:
            run = open_runner(staged)
        except RuntimeError as e:
            raise ExportError(f"{spec.name}: the {what} runtime cannot load this program ({str(e).splitlines()[0]}); "
                              "nothing was written") from None
        verification.update(verify(spec, what, run, inputs, reference, precision=precision, int8_step=int8_step,
                                   float_reference=float_reference))

    stage_and_move(path, write)
    shape = list(next(iter(reference.values())).shape)
    ids = "int32" if fmt == "litert" else "int64"  # LiteRT keeps 32-bit I/O
    given = {"name": "input_ids", "dtype": ids} if spec.takes_tokens else {"name": "images", "dtype": "float32"}
    return ExportResult(path=path, format=fmt, inputs=[{**given, "shape": [batch, *size]}],
                        outputs=[{"name": "output", "shape": shape, "dtype": "float32"}], verification=verification,
                        metadata=props, notes=notes)


def stage_and_move(path: Path, write) -> Path:
    """Write a file or folder export into a temporary sibling with ``write(tmp_path)``, then move it into place
    whole (a folder export, OpenVINO's IR, is replaced as one)."""
    import shutil
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged = Path(tmp) / path.name
        write(staged)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(staged, path)
    return path


def report_path(path: str | os.PathLike) -> Path:
    """Where the verification report of an exported file lives (model cards read it)."""
    return Path(f"{path}.verification.json")


def write_report(result: ExportResult) -> Path:
    """``FILE.verification.json`` next to the export: what was checked, how closely it matched, and when."""
    import json
    from datetime import date

    import torch

    report = {"file": result.path.name, "format": result.format, "inputs": result.inputs, "outputs": result.outputs,
              "verification": result.verification, "notes": result.notes, "date": date.today().isoformat(),
              "torch": torch.__version__}
    return atomic_write_text(report_path(result.path), json.dumps(report, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)) + "\n")


def deploy_form(model):
    """A copy in eval mode with re-parameterisable branches folded (the original is untouched). A deploy form
    given again is copied as it is: folding twice is not a no-op for every family (FastViT's RepMixer)."""
    spec, state = getattr(model, "zoo_spec", None), state_of(model)
    if state.deploy_form:
        deploy = copy.deepcopy(model).eval()  # a GraphModule's copy drops attributes: set them again
        deploy.zoo_spec, deploy.zoo_state = spec, replace(state)
        return deploy
    if state.quantization:  # int8: the converted reference graph (already folded)
        from zoo.quantize import convert

        deploy = copy.deepcopy(model) if state.int8 else convert(model)
        deploy.eval()
        deploy.zoo_spec, deploy.zoo_state = spec, replace(state, int8=True, deploy_form=True)
        return deploy
    from zoo.contracts import HasDeployForm

    deploy = copy.deepcopy(model).eval()
    if isinstance(deploy, HasDeployForm):  # families that know their own inference form
        deploy = deploy.deploy()
    else:
        from timm.utils.model import reparameterize_model

        deploy = reparameterize_model(deploy)
    deploy.zoo_spec, deploy.zoo_state = spec, replace(state, deploy_form=True)
    return deploy


def checked_input_size(spec, imgsz: int | None) -> tuple[int, ...]:
    if spec.takes_tokens:
        if imgsz is not None:
            raise BadArgumentError(f"{spec.name}'s input is {spec.input_size[0]} token ids, not an image; drop --imgsz "
                                   "(the context length is chosen when the model is built)")
        return tuple(spec.input_size)
    c, h, w = spec.input_size
    if imgsz is None:
        return (c, h, w)
    if spec.fixed_input_size and (imgsz, imgsz) != (h, w):
        raise BadArgumentError(f"{spec.name} has a fixed input size of {h}x{w}; drop --imgsz or use {h}")
    smallest = max(1, spec.min_input_size or 1)
    if isinstance(imgsz, bool) or int(imgsz) != imgsz or imgsz < smallest:
        raise BadArgumentError(f"--imgsz must be a whole number of pixels >= {smallest} for {spec.name}, not {imgsz!r}")
    return (c, int(imgsz), int(imgsz))


DIRECTORY_FORMATS = ("openvino", "coreml")  # exports that are folders (an IR folder, an .mlpackage)


def writable(path: Path, folder: bool = False) -> Path:
    """``path`` if an export can be written there, checked before minutes of conversion; one clear error if not."""
    if path.is_dir() and not folder:
        raise BadArgumentError(f"--out {path} is a folder; give the path of the file to write (it may be inside that folder)")
    if path.exists() and not path.is_dir() and folder:
        raise BadArgumentError(f"--out {path} is a file; this format writes a folder: give a path that is not a file")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadArgumentError(f"cannot write {path}: {existing} is a file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadArgumentError(f"cannot write to {existing} (no permission); choose another --out")
    return path


def default_path(name: str, fmt: str, source: str | os.PathLike | None) -> Path:
    folder = Path(source) if source is not None and Path(source).is_dir() else None
    if folder is not None:
        return folder / "export" / f"model{FORMATS[fmt]}"
    return Path("exports") / f"{name}{FORMATS[fmt]}"


def sample_inputs(spec, size: tuple[int, int, int], batch: int) -> dict[str, Any]:
    """A seeded random batch and a real photo (scikit-learn's bundled sample) preprocessed for the model."""
    import numpy as np
    import torch
    from PIL import Image
    from sklearn.datasets import load_sample_image
    from timm.data import create_transform

    generator = torch.Generator().manual_seed(0)
    if spec.takes_tokens:  # random ids, and real text: this module's docstring as UTF-8 bytes, repeated
        random = example_input(spec, size, batch, generator)
        text = list(__doc__.encode("utf-8")) * (1 + size[0] // len(__doc__))
        real = torch.tensor(text[: size[0]], dtype=torch.long).clamp_max(spec.vocab - 1)
        return {"random": random, "real": real.unsqueeze(0).expand(batch, -1).contiguous()}
    random = torch.randn(batch, *size, generator=generator)
    image = np.asarray(load_sample_image("flower.jpg"))
    if spec.task == "detection":  # detectors take letterboxed RGB in 0..1; random input in that range too
        from zoo.data.letterbox import letterbox

        photo, _ = letterbox(torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous(), size[-1])
        random = torch.rand(batch, *size, generator=generator)
        return {"random": random, "real": photo.unsqueeze(0).expand(batch, -1, -1, -1).contiguous()}
    transform = create_transform(input_size=size, interpolation=spec.interpolation, mean=spec.mean, std=spec.std,
                                 crop_pct=spec.crop_pct)
    photo = transform(Image.fromarray(image))
    return {"random": random, "real": photo.unsqueeze(0).expand(batch, -1, -1, -1).contiguous()}


def example_input(spec, size: tuple[int, ...], batch: int, generator=None):
    """A random input of the model's kind: token ids for language models, N(0, 1) images otherwise."""
    import torch

    if spec.takes_tokens:
        return torch.randint(0, spec.vocab, (batch, *size), generator=generator)
    return torch.randn(batch, *size, generator=generator)


INT8_STEPS = 16  # int8 outputs: within 1/16 of their 256-step range


TOLERANCES = {"fp32": (1e-4, 1e-5), "fp16": (1e-2, 1e-3), "bf16": (5e-2, 2e-2)}  # (atol, rtol) by precision


def compare(reference, candidate, half: bool = False, int8_step: float | None = None, precision: str | None = None,
            int8_error: float | None = None) -> dict[str, float]:
    """max |diff| and cosine similarity; tolerance = atol + rtol * max|reference| (:data:`TOLERANCES`).

    For int8 graphs (``int8_step``: the output's quantization step) the tolerance is :data:`INT8_STEPS`
    steps: onnxruntime's integer kernels round each requantization their own way, so outputs move by
    whole steps (a wrong graph moves them by far more on a trained model); plus twice ``int8_error``, the int8
    twin's own distance from the float model, where it is known (see :func:`verify`).
    """
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(candidate, dtype=np.float64).ravel()
    atol, rtol = TOLERANCES[precision or ("fp16" if half else "fp32")]
    diff = max_abs_diff(ref, got) if ref.size else 0.0
    denom = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(ref @ got / denom) if denom else 1.0
    if int8_step is not None:
        tolerance = INT8_STEPS * int8_step + 2 * (int8_error or 0.0)
    else:
        tolerance = atol + rtol * float(np.abs(ref).max() if ref.size else 0.0)
    check = {"max_abs_diff": diff, "cosine": cosine, "tolerance": tolerance, "ok": diff <= tolerance}
    if int8_error is not None:
        check["int8_error"] = int8_error  # the twin's own max |diff| from the float model
    return check


def max_abs_diff(a, b) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def compare_outputs(spec, reference, candidate, half: bool = False, int8_step: float | None = None,
                    precision: str | None = None, int8_error: float | None = None) -> dict[str, float]:
    """:func:`compare` for classifiers; :func:`compare_detections` for detectors."""
    if spec is not None and spec.task == "detection":
        return compare_detections(reference, candidate, half=half, precision=precision)
    check = compare(reference, candidate, half=half, int8_step=int8_step, precision=precision, int8_error=int8_error)
    if spec is not None and spec.task == "segmentation":
        check["argmax_agreement"] = argmax_agreement(reference, candidate)
    return check


def argmax_agreement(reference, candidate) -> float:
    """The fraction of pixels whose class (argmax over dim 1 of ``[B, K, H, W]`` logits) is the same in both."""
    import numpy as np

    ref, got = np.asarray(reference), np.asarray(candidate)
    if ref.shape != got.shape or ref.ndim != 4:
        return 0.0
    return float((ref.argmax(1) == got.argmax(1)).mean())


def compare_detections(reference, candidate, half: bool = False, precision: str | None = None) -> dict[str, float]:
    """Detections ``[B, K, 6]`` matched row by row: each confident reference detection must appear in the
    candidate with the same class and a box and score within tolerance.

    Only rows whose score clears the last kept score by more than the tolerance are required, since a
    candidate may legitimately keep a different one of two near-equal detections at the top-k boundary.
    """
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    if ref.shape != got.shape or ref.ndim != 3 or ref.shape[-1] != 6:
        return {"max_abs_diff": float("inf"), "cosine": 0.0, "tolerance": 0.0, "ok": False, "matched": 0, "required": -1}
    precision = precision or ("fp16" if half else "fp32")
    atol, rtol = TOLERANCES[precision]
    tolerance = atol + rtol * float(np.abs(ref[..., :4]).max(initial=0.0))
    relative = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 5e-2}[precision]
    score_tol = 1e-7 + relative * float(ref[..., 4].max(initial=0.0))  # relative: untrained scores are tiny
    worst, matched, required, dots, norms = 0.0, 0, 0, 0.0, [0.0, 0.0]
    for r, g in zip(ref, got):
        kept = r[:, 4][r[:, 4] > 0]  # score-0 rows are padding, not the boundary of the top-k
        for row in r[r[:, 4] > (kept.min() if len(kept) else 0.0) + score_tol]:
            required += 1
            same = g[g[:, 5] == row[5]]
            if not len(same):
                worst = float("inf")
                continue
            best = same[np.abs(same[:, :5] - row[:5]).max(axis=1).argmin()]
            box_diff, score_diff = float(np.abs(best[:4] - row[:4]).max()), float(abs(best[4] - row[4]))
            worst = max(worst, box_diff, score_diff)
            matched += box_diff <= tolerance and score_diff <= score_tol
            dots += float(best[:5] @ row[:5])
            norms[0] += float(row[:5] @ row[:5])
            norms[1] += float(best[:5] @ best[:5])
    cosine = dots / float(np.sqrt(norms[0] * norms[1])) if norms[0] and norms[1] else 1.0
    # the score profile must agree even where ties leave no row clear of the boundary (untrained models)
    score_diff = float(np.abs(np.sort(ref[..., 4], -1) - np.sort(got[..., 4], -1)).max(initial=0.0))
    scores_ok = score_diff <= score_tol
    worst = max(worst, score_diff)
    return {"max_abs_diff": worst, "cosine": cosine, "tolerance": tolerance, "ok": matched == required and scores_ok,
            "matched": matched, "required": required}


def metadata(spec, extra: dict[str, str] | None = None) -> dict[str, str]:
    import json

    from zoo._version import __version__

    return {
        "zoo_name": spec.name,
        "zoo_tag": spec.tag or "",
        "zoo_version": __version__,
        "task": spec.task,
        "labels": json.dumps(list(spec.labels) if spec.labels else []),
        "num_classes": str(spec.num_classes),
        "mean": json.dumps(list(spec.mean)),
        "std": json.dumps(list(spec.std)),
        "input_size": json.dumps(list(spec.input_size)),
        **({"vocab_size": str(spec.vocab)} if spec.takes_tokens else {}),
        **({"tower": str(spec.default_kwargs["tower"])} if "tower" in spec.default_kwargs else {}),
        **(extra or {}),
    }


class _CallableModule(types.ModuleType):
    """DESIGN's public call is ``zoo.export(model, format, ...)``, and ``zoo.export`` is also this package
    (its submodules bind it as an attribute of ``zoo``), so the package itself forwards calls to :func:`export`."""

    def __call__(self, *args: Any, **kwargs: Any) -> ExportResult:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["export", "ExportResult", "ExportError", "FORMATS", "PRECISIONS"]
