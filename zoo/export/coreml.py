"""CoreML export: coremltools ``mlprogram`` ``.mlpackage`` (fp32 or fp16), optionally with an image input
that applies the model's normalisation, and class labels for classifiers.

Prediction needs macOS; on other systems the converted program is checked instead (inputs, outputs,
shapes, op count) and the result says that prediction parity was not checked.
"""
from __future__ import annotations

import platform
import shutil
import tempfile
from pathlib import Path

from zoo.errors import ZooError
from zoo.export import ExportResult, cannot_convert, compare_outputs, metadata, sample_inputs


def _fold_scalar_casts_under_numpy2() -> None:
    """coremltools (9.0) folds a traced ``int()``/``bool()`` of a constant with Python's ``int(array)``, which NumPy 2
    refuses for one-element arrays that are not 0-d ("only 0-dimensional arrays can be converted to Python scalars"):
    every model whose trace computes a size that way (TF-style same padding, letterbox arithmetic, detector heads)
    failed to convert. These converters, registered through coremltools' own op registry, fold through the array's
    single element and leave everything else to coremltools' cast."""
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch import register_torch_op
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs

    def scalar_cast(torch_name: str, kind: type, mil_dtype: str):
        def convert(context, node) -> None:
            x = _get_inputs(context, node, expected=1)[0]
            if x.can_be_folded_to_const():
                value = np.asarray(x.val)
                if value.size != 1:
                    raise ValueError(f"{torch_name}() of a tensor with {value.size} elements")
                result = mb.const(val=kind(value.reshape(()).item()), name=node.name)
            else:
                squeezed = mb.squeeze(x=x, name=node.name + "_item") if len(x.shape) else x
                result = mb.cast(x=squeezed, dtype=mil_dtype, name=node.name)
            context.add(result, node.name)

        convert.__name__ = torch_name  # the registry keys a converter by its function's name
        register_torch_op(convert, override=True)

    scalar_cast("int", int, "int32")
    scalar_cast("bool", bool, "bool")


def export_coreml(model, spec, path: Path, size, *, batch=1, half=False, image_input=False) -> ExportResult:
    try:
        import coremltools as ct
    except ImportError:
        raise ZooError("CoreML export needs coremltools: pip install 'efficient-zoo[coreml]'") from None
    import torch

    _fold_scalar_casts_under_numpy2()

    inputs = sample_inputs(spec, size, batch)
    example = inputs["random"]
    with cannot_convert(spec, "CoreML"):
        traced = torch.jit.trace(model, example)
    if image_input:  # the model gets RGB pixels 0..255; scale/bias apply its mean/std (one scale for all channels)
        std = sum(spec.std) / len(spec.std)
        ml_input = ct.ImageType(name="image", shape=example.shape, scale=1 / (255.0 * std),
                                bias=[-m / s for m, s in zip(spec.mean, spec.std)], color_layout=ct.colorlayout.RGB)
    else:
        ml_input = ct.TensorType(name="images", shape=example.shape)
    labels = list(spec.labels) if spec.labels else None
    with cannot_convert(spec, "CoreML"):
        mlmodel = ct.convert(
            traced,
            inputs=[ml_input],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16 if half else ct.precision.FLOAT32,
            classifier_config=ct.ClassifierConfig(labels) if labels and spec.task == "classification" else None,
            minimum_deployment_target=ct.target.iOS16,
        )
    props = metadata(spec, {"input_size": str(list(size)), "precision": "fp16" if half else "fp32"})
    mlmodel.user_defined_metadata.update(props)
    mlmodel.short_description = f"{spec.name} ({spec.family}), exported by efficient-zoo"

    check = inspect_spec(mlmodel)
    expected_shape = list(example.shape)
    if check["inputs"][0]["shape"] != expected_shape:
        raise ZooError(f"CoreML input shape {check['inputs'][0]['shape']} != {expected_shape}")
    verification = {"spec": check}
    notes = []
    if platform.system() == "Darwin":
        with torch.no_grad():
            reference = model(inputs["real"]).numpy()
        feed = {"images": inputs["real"].numpy()} if not image_input else None
        if feed is not None:
            out = mlmodel.predict(feed)
            key = next(k for k in out if not isinstance(out[k], (str, dict)))
            verification["real"] = compare_outputs(spec, reference, out[key], half=half)
    else:
        notes.append(f"prediction parity not checked: CoreML runs only on macOS (this is {platform.system()})")
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        staged = Path(tmp) / path.name
        mlmodel.save(str(staged))
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.rmtree(path)
        staged.rename(path)  # an .mlpackage is a folder: staged whole, then renamed into place
    return ExportResult(path=path, format="coreml", inputs=check["inputs"], outputs=check["outputs"],
                        verification=verification, metadata=props, notes=notes)


def inspect_spec(mlmodel) -> dict:
    """Inputs, outputs and their shapes, and the op count of the ML program (works on any OS)."""
    spec = mlmodel.get_spec()

    def describe(feature):
        kind = feature.type.WhichOneof("Type")
        shape = []
        if kind == "multiArrayType":
            shape = list(feature.type.multiArrayType.shape)
        elif kind == "imageType":
            shape = [1, 3, feature.type.imageType.height, feature.type.imageType.width]
        return {"name": feature.name, "type": kind, "shape": shape}

    main = spec.mlProgram.functions["main"]
    ops = main.block_specializations[main.opset].operations
    return {
        "inputs": [describe(f) for f in spec.description.input],
        "outputs": [describe(f) for f in spec.description.output],
        "op_count": len(ops),
        "opset": main.opset,
    }
