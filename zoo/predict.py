"""Run a classifier, a detector or a segmentation model on image files: annotated PNGs plus ``predictions.json``, in
the original image's pixels.

A classifier sees each image through its evaluation transform (timm's, with the model's preprocessing) and each
image gets its top classes' probabilities drawn beside it; an image-text model (``mobileclip*``) classifies into
the ``labels`` given (zero-shot).

Every zoo detector takes the same letterboxed square input and returns ``[B, max_det, 6]`` rows
``(x1, y1, x2, y2, score, class)`` in that square's pixels, so one function serves them all: letterbox,
run, keep ``score >= conf``, map the boxes back with :meth:`Letterbox.to_original`, draw, write. A segmentation
model sees the image resized to its square input (as in its evaluation), its logits are resized back to the
original pixels, and each image gets an overlay and its class map (``<stem>_classes.png``: one class index per
pixel, coloured by a palette, readable as a label mask). A depth model is run the same way; each image gets its depth
beside it in a perceptual colour map with a scale in metres, and the raw depth in metres as ``<stem>_depth.npy``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo._io import atomic_write, atomic_write_json
from zoo.errors import BadArgumentError, DataError

# Distinct, saturated colours (the usual detection palette); class k gets PALETTE[k % len].
PALETTE = (
    (255, 56, 56), (255, 157, 151), (255, 112, 31), (255, 178, 29), (207, 210, 49), (72, 249, 10),
    (146, 204, 23), (61, 219, 134), (26, 147, 52), (0, 212, 187), (44, 153, 168), (0, 194, 255),
    (52, 69, 147), (100, 115, 255), (0, 24, 236), (132, 56, 255), (82, 0, 133), (203, 56, 255),
    (255, 149, 200), (255, 55, 199),
)
PREDICTIONS_NAME = "predictions.json"
_PROGRESS_FROM = 5  # more images than this many: show a progress bar


def predict(
    model_or_source: Any,
    images: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    conf: float = 0.25,
    imgsz: int | None = None,
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    pretrained: bool | None = None,
    progress: bool | None = None,
    labels: Sequence[str] | None = None,
    top_k: int = 5,
    allow_pickle: bool = False,
) -> list[dict[str, Any]]:
    """Classify, detect or segment ``images``; write ``out/<stem>.png`` (scores, boxes or classes drawn) and
    ``out/predictions.json``.

    Args:
        model_or_source: a detector from :func:`zoo.load`, or anything ``zoo.load`` accepts (a registered
            name, ``arch.tag``, a ``zoo.save`` folder, a run directory, ``hf-hub:org/name``).
        images: image files (JPEG, PNG, GIF, WebP); all are checked before anything is written.
        out: output folder (created).
        conf: keep detections with ``score >= conf``.
        imgsz: square input size (default: the model's ``input_size``).
        batch_size: images per forward pass.
        device: where to run (default: where the model is; a loaded source starts on the CPU).
        pretrained: for a registered name, download its published weights. Default: only when the name
            has a weights tag (``yolov10n.coco``); a bare name is the untrained architecture.
        progress: show a progress bar (default: when there are more than a few images).
        labels: class names for a source loaded here (``zoo.load(..., labels=...)``): an image-text model becomes a
            zero-shot classifier of them.
        top_k: classifiers: how many of the most probable classes each image lists.
        allow_pickle: for a source loaded here, as in :func:`zoo.load` (official weights published only as pickles).

    Returns one dict per image (the entries of ``predictions.json``): ``file``, ``output``, ``width``,
    ``height`` and, for classifiers, ``top`` (``label``, ``class``, ``probability``, most probable first); for detectors
    ``detections`` (``box`` [x1, y1, x2, y2] in original pixels, ``score``, ``class``, ``label``).
    """
    if not 0 <= conf <= 1:
        raise BadArgumentError(f"conf must be between 0 and 1, not {conf}")
    if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 1):
        raise BadArgumentError(f"imgsz must be a whole number of pixels >= 1, not {imgsz!r}")
    if batch_size < 1:
        raise BadArgumentError(f"batch_size must be >= 1, not {batch_size}")
    paths = [Path(p) for p in images]
    if not paths:
        raise BadArgumentError("no images given: pass one or more image files")
    for path in paths:  # a bad file fails before any model is loaded or output written
        _check_image(path)
    if top_k < 1:
        raise BadArgumentError(f"top_k must be >= 1, not {top_k}")
    model = _predictor(model_or_source, pretrained, labels, allow_pickle)
    spec = model.zoo_spec
    size = _input_size(spec, imgsz)
    segmenting = spec.task == "segmentation"
    if spec.task == "classification" and not spec.num_classes:
        raise BadArgumentError(f"{spec.name} has no classifier (it returns embeddings); give it classes with --labels "
                               "\"cat,dog\" (image-text models) or load a trained run")
    out = Path(out).expanduser()
    outputs = _output_names(paths, out)

    device = _device(model, device)
    was_training = model.training
    model = model.to(device).eval()
    labels = list(spec.labels) if spec.labels is not None else None
    results: list[dict[str, Any]] = []
    show = len(paths) > _PROGRESS_FROM if progress is None else progress
    try:
        with _progress(show, len(paths)) as advance:
            for start in range(0, len(paths), batch_size):
                batch = list(range(start, min(start + batch_size, len(paths))))
                originals = [_read_image(paths[i]) for i in batch]
                if spec.task == "classification":
                    for i, image, probs in zip(batch, originals, _classify(model, originals, size, device, spec)):
                        results.append(_finish_classification(paths[i], outputs[i], image, probs, labels, top_k))
                        advance()
                    continue
                if spec.task == "depth":
                    for i, image, depth in zip(batch, originals, _segment(model, originals, size, device, spec)):
                        results.append(_finish_depth(paths[i], outputs[i], image, depth))
                        advance()
                    continue
                if segmenting:
                    for i, image, classes in zip(batch, originals, _segment(model, originals, size, device, spec)):
                        results.append(_finish_segmentation(paths[i], outputs[i], image, classes, labels or []))
                        advance()
                    continue
                for i, image, det in zip(batch, originals, _detect(model, originals, size, device, spec.name)):
                    results.append(_finish(paths[i], outputs[i], image, det, conf, labels))
                    advance()
    finally:
        model.train(was_training)
    document = {"model": spec.name + (f".{spec.tag}" if spec.tag else ""), "imgsz": size, "images": results}
    if spec.task == "detection":
        document["conf"] = conf
    atomic_write_json(out / PREDICTIONS_NAME, document)
    return results


def _detect(model, originals: list[torch.Tensor], size: int, device: torch.device, name: str) -> list[tuple[Any, torch.Tensor]]:
    """Letterbox a batch, run it, and pair each image's :class:`Letterbox` with its ``[max_det, 6]`` rows."""
    from zoo.data.letterbox import letterbox

    boxed = [letterbox(image, size) for image in originals]
    x = torch.stack([b[0] for b in boxed]).to(device)
    with torch.no_grad():
        detections = model(x)
    if not torch.is_tensor(detections) or detections.ndim != 3 or detections.shape[-1] != 6:
        shape = tuple(detections.shape) if torch.is_tensor(detections) else type(detections).__name__
        raise BadArgumentError(f"{name} returned {shape}, not [B, max_det, 6] detections: is it a zoo detector?")
    return [(lb, det) for (_, lb), det in zip(boxed, detections.detach().float().cpu())]


def _finish(path: Path, output: Path, image: torch.Tensor, boxed: tuple[Any, torch.Tensor], conf: float,
            labels: list[str] | None) -> dict[str, Any]:
    """Filter one image's rows, map them to the original pixels, draw and write; its JSON entry."""
    lb, det = boxed
    det = det[det[:, 4] >= max(conf, 1e-12)]  # score-0 rows are padding, even with conf=0
    det = det[det[:, 4].argsort(descending=True)]
    boxes = lb.to_original(det[:, :4])
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # drop boxes wholly in the padding
    boxes, scores, classes = boxes[keep], det[keep, 4], det[keep, 5].long()
    _write_png(output, draw_detections(image, boxes, scores, classes, labels))
    return {
        "file": str(path),
        "output": str(output),
        "width": int(image.shape[2]),
        "height": int(image.shape[1]),
        "detections": [
            {"box": [round(v, 2) for v in box], "score": round(float(s), 4), "class": int(c), "label": n}
            for box, s, c, n in zip(boxes.tolist(), scores.tolist(), classes.tolist(), (_label(labels, int(c)) for c in classes))
        ],
    }


def _segment(model, originals: list[torch.Tensor], size: int, device: torch.device, spec) -> list[torch.Tensor]:
    """Each image resized to ``size`` x ``size`` and normalised as in training, run, and its logits resized back:
    one ``[H, W]`` class map per image in its original pixels (a depth model's: its ``[H, W]`` depth in metres)."""
    from torchvision.transforms.v2 import functional as TF

    x = torch.stack([TF.resize(image, [size, size], antialias=True) for image in originals]).float().div(255)
    x = TF.normalize(x, list(spec.mean), list(spec.std)).to(device)
    with torch.no_grad():
        logits = model(x).float().cpu()
    if logits.ndim != 4 or logits.shape[1] != spec.num_classes:
        raise BadArgumentError(f"{spec.name} returned {tuple(logits.shape)}, not [B, {spec.num_classes}, H, W] "
                               + ("depth" if spec.task == "depth" else "logits"))
    resized = [torch.nn.functional.interpolate(lg[None], size=tuple(image.shape[-2:]), mode="bilinear", align_corners=False)[0]
               for lg, image in zip(logits, originals)]
    return [r[0] if spec.task == "depth" else r.argmax(0) for r in resized]


def _finish_depth(path: Path, output: Path, image: torch.Tensor, depth: torch.Tensor) -> dict[str, Any]:
    """Write the image beside its coloured depth (with a colour bar in metres) and the raw depth as ``.npy``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    depth = depth.clamp(min=0)
    height, width = image.shape[1:]
    fig, axes = plt.subplots(1, 2, figsize=(2 * 4.2 * width / max(height, width) + 0.8, 4.2 * height / max(height, width)))
    axes[0].imshow(image.permute(1, 2, 0).numpy())
    shown = axes[1].imshow(depth.numpy(), cmap="magma", vmin=0)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.02).set_label("depth (m)")
    fig.tight_layout()
    atomic_write(output, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    raw_path = output.with_name(f"{output.stem}_depth.npy")

    def write_raw(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save given a name would add its own .npy to the temporary one
            np.save(f, depth.numpy().astype(np.float32), allow_pickle=False)

    atomic_write(raw_path, write_raw)
    return {"file": str(path), "output": str(output), "depth": str(raw_path), "width": int(width), "height": int(height),
            "depth_m": {"min": round(float(depth.min()), 3), "median": round(float(depth.median()), 3),
                        "max": round(float(depth.max()), 3)}}


def _finish_segmentation(path: Path, output: Path, image: torch.Tensor, classes: torch.Tensor, labels: list[str]) -> dict[str, Any]:
    """Write the overlay and the class map of one image; its JSON entry (the share of the pixels of each class)."""
    from PIL import Image

    names = labels or [str(k) for k in range(int(classes.max()) + 1)]
    colours = palette(names)
    _write_png(output, overlay_classes(image, classes, colours))
    mask = Image.fromarray(classes.to(torch.uint8).numpy(), "P")
    mask.putpalette([v for c in colours[:256] for v in c])
    mask_path = output.with_name(f"{output.stem}_classes.png")
    atomic_write(mask_path, lambda tmp: mask.save(tmp, format="PNG"))
    counts = torch.bincount(classes.flatten(), minlength=len(names))
    return {
        "file": str(path), "output": str(output), "classes": str(mask_path),
        "width": int(image.shape[2]), "height": int(image.shape[1]),
        "pixels": {_label(names, k): round(int(n) / classes.numel(), 4) for k, n in enumerate(counts.tolist()) if n},
    }


def _classify(model, originals: list[torch.Tensor], size: int, device: torch.device, spec) -> torch.Tensor:
    """Class probabilities ``[B, num_classes]``: each image through the evaluation transform of the model's
    preprocessing (resize, centre crop, normalise), as ``zoo eval`` sees it."""
    from torchvision.transforms.v2 import functional as TF

    from zoo.data.classification import eval_transform

    transform = eval_transform({**spec.preprocessing(), "input_size": (3, size, size)})
    x = torch.stack([transform(TF.to_pil_image(image)) for image in originals]).to(device)
    with torch.no_grad():
        logits = model(x).float().cpu()
    if logits.ndim != 2 or logits.shape[1] != spec.num_classes:
        raise BadArgumentError(f"{spec.name} returned {tuple(logits.shape)}, not [B, {spec.num_classes}] class scores")
    return logits.softmax(-1)


def _finish_classification(path: Path, output: Path, image: torch.Tensor, probs: torch.Tensor, labels: list[str] | None,
                           top_k: int) -> dict[str, Any]:
    """Write the image with its top classes' probabilities as bars beside it; its JSON entry."""
    values, classes = probs.topk(min(top_k, probs.numel()))
    top = [{"label": _label(labels, int(k)), "class": int(k), "probability": round(float(v), 4)} for v, k in zip(values, classes)]
    _write_png(output, draw_scores(image, top))
    return {"file": str(path), "output": str(output), "width": int(image.shape[2]), "height": int(image.shape[1]), "top": top}


def draw_scores(image: torch.Tensor, top: list[dict[str, Any]]) -> torch.Tensor:
    """The image (shown at most 512 px high) with a panel beside it: one bar per class, its label and probability."""
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.transforms.v2 import functional as TF

    scale = min(1.0, 512 / image.shape[1])
    shown = TF.resize(image, [max(1, round(image.shape[1] * scale)), max(1, round(image.shape[2] * scale))], antialias=True)
    height = max(shown.shape[1], 34 * len(top) + 16)
    canvas = Image.new("RGB", (shown.shape[2] + 320, height), (255, 255, 255))
    canvas.paste(Image.fromarray(shown.permute(1, 2, 0).numpy()), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font_path = _font()
    font = ImageFont.truetype(font_path, 14) if font_path else ImageFont.load_default()
    left = shown.shape[2] + 12
    for row, entry in enumerate(top):
        y = 10 + 34 * row
        colour = PALETTE[entry["class"] % len(PALETTE)]
        draw.rectangle([left, y + 16, left + round(290 * entry["probability"]), y + 28], fill=colour)
        draw.text((left, y), f"{entry['label']}  {entry['probability']:.1%}", fill=(0, 0, 0), font=font)
    return TF.pil_to_tensor(canvas)


# -- model -----------------------------------------------------------------------------------------


def _predictor(model_or_source: Any, pretrained: bool | None, labels: Sequence[str] | None = None,
               allow_pickle: bool = False):
    """The model, loaded if given as a source; refuses a task predict cannot draw."""
    if isinstance(model_or_source, (str, os.PathLike)):
        import zoo

        source = os.fspath(model_or_source)
        registered = _registered_name(source)
        if registered is not None:
            from zoo.registry import get_spec, split_name

            _refuse_task(get_spec(registered), source)  # before building (or downloading) anything
            if pretrained is None:
                pretrained = split_name(registered)[1] is not None
            model = zoo.load(source, pretrained=pretrained, labels=labels, allow_pickle=allow_pickle)
        else:
            model = zoo.load(source, labels=labels, allow_pickle=allow_pickle)
    else:
        if labels is not None:
            raise BadArgumentError("labels are for a source predict loads; for a model you loaded, pass them to zoo.load")
        model = model_or_source
    spec = getattr(model, "zoo_spec", None)
    if spec is None:
        raise BadArgumentError("predict takes a classifier, detector or segmentation model made by zoo.load (it carries "
                               "model.zoo_spec) or a model source")
    _refuse_task(spec, spec.name)
    return model


def _registered_name(source: str) -> str | None:
    from zoo import hub
    from zoo.api import is_path

    if source.startswith(hub.HF_HUB_PREFIX) or source.endswith(".ckpt") or is_path(source):
        return None
    return source


def _refuse_task(spec, source: str) -> None:
    if spec.task not in ("classification", "detection", "segmentation", "depth"):
        raise BadArgumentError(
            f"{source} is a {spec.task} model; predict draws the classes of classifiers, the boxes of detection models, "
            "the class maps of segmentation models and the depth of depth models (see `zoo list --task ...`)"
        )


def _device(model, device: str | torch.device | None) -> torch.device:
    if device is None:
        params = next(model.parameters(), None)
        return params.device if params is not None else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadArgumentError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadArgumentError(f"device {device} asked for, but this machine has no CUDA GPU; use --device cpu")
    return device


def _input_size(spec, imgsz: int | None) -> int:
    """The square side: the model's own, or ``--imgsz`` checked as every export checks it (and, for the dense tasks,
    as detectors check it: a multiple of the coarsest stride)."""
    from zoo.data.letterbox import check_img_size
    from zoo.export import checked_input_size as checked

    side = checked(spec, imgsz)[-1]
    return side if spec.task == "classification" else check_img_size(side, "--imgsz")


# -- images ----------------------------------------------------------------------------------------

_DECODABLE = {"JPEG", "PNG", "GIF", "WEBP", "MPO", "AVIF", "HEIF"}  # what torchvision.io.decode_image reads


def _check_image(path: Path) -> None:
    """Exists, is a file, and its header is an image format torchvision decodes (cheap: no decoding)."""
    if not path.exists():
        raise DataError(f"image {path} does not exist")
    if not path.is_file():
        raise DataError(f"image {path} is not a file")
    if not os.access(path, os.R_OK):
        raise DataError(f"image {path} is not readable (permissions)")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            fmt = im.format
    except (UnidentifiedImageError, OSError, ValueError):
        fmt = None
    if fmt not in _DECODABLE:  # PIL may not know a format torchvision does: the decoder decides
        _read_image(path)


def _read_image(path: Path) -> torch.Tensor:
    """``[3, H, W]`` uint8 RGB, EXIF orientation applied (as image viewers show it)."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        with _quiet_deprecation():
            image = decode_image(str(path), mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except (RuntimeError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read image {path}: {first} (JPEG, PNG, GIF and WebP are supported)") from None
    if image.dtype == torch.uint16:  # 16-bit PNG
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    elif image.dtype != torch.uint8:
        image = (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return image


def _output_names(paths: list[Path], out: Path) -> list[Path]:
    """``out/<stem>.png``, made unique, and never the path of an input image."""
    inputs = {p.resolve() for p in paths}
    used: set[str] = set()
    names = []
    for path in paths:
        candidates = [f"{path.stem}.png", f"{path.stem}_pred.png"] + [f"{path.stem}_pred{k}.png" for k in range(2, len(paths) + 2)]
        name = next(c for c in candidates if c not in used and (out / c).resolve() not in inputs)
        used.add(name)
        names.append(out / name)
    return names


def _label(labels: list[str] | None, k: int) -> str:
    return labels[k] if labels is not None and 0 <= k < len(labels) else str(k)


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor,
                    labels: list[str] | None) -> torch.Tensor:
    """Boxes (xyxy pixels) on a uint8 ``[3, H, W]`` image in per-class colours, ``"name 0.87"`` on a filled
    tag; line and text scale with the image. ``labels``: the class names (None: class numbers)."""
    if not len(boxes):
        return image
    names = [_label(labels, int(c)) for c in classes]
    import inspect

    from torchvision.utils import draw_bounding_boxes

    h, w = int(image.shape[1]), int(image.shape[2])
    line = max(1, round((h + w) / 2 * 0.003))
    colors = [PALETTE[int(c) % len(PALETTE)] for c in classes]
    kwargs: dict[str, Any] = {}
    font = _font()
    if font is not None:
        kwargs.update(font=font, font_size=max(10, round(max(h, w) * 0.018)))
    if "fill_labels" in inspect.signature(draw_bounding_boxes).parameters:  # torchvision >= 0.23
        text = [(0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255) for r, g, b in colors]
        kwargs.update(fill_labels=True, label_colors=text)
    texts = [f"{n} {float(s):.2f}" for n, s in zip(names, scores)]
    # PIL's rectangles include their far corner: pixels x1..x2-1 are the box, so a box that ends at the
    # image border is drawn on the last pixel row/column instead of just outside the image.
    pixels = boxes.clone()
    pixels[:, 2:] = torch.maximum(pixels[:, 2:] - 1, pixels[:, :2])
    order = list(range(len(boxes)))[::-1]  # lowest score first, so the best box and its label end up on top
    kwargs = {k: [v[i] for i in order] if isinstance(v, list) else v for k, v in kwargs.items()}
    return draw_bounding_boxes(image, pixels[order], labels=[texts[i] for i in order], colors=[colors[i] for i in order],
                               width=line, **kwargs)


def palette(names: Sequence[str]) -> list[tuple[int, int, int]]:
    """A colour per class for class maps: matplotlib's tab10 then tab20 hues (neighbours differ), then golden-ratio hues
    past 30 classes; a class named "background" is dark grey so the objects stand out."""
    import colorsys

    from matplotlib import colormaps

    table = [*colormaps["tab10"].colors, *colormaps["tab20"].colors[1::2]]
    colours = []
    for k, name in enumerate(names):
        if str(name).lower() == "background":
            colours.append((40, 40, 40))
            continue
        rgb = table[k % 30] if k < 30 else colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.7 + 0.3 * (k % 2), 0.95 - 0.15 * (k % 3))
        colours.append(tuple(round(255 * v) for v in rgb))
    return colours


def overlay_classes(image: torch.Tensor, classes: torch.Tensor, colours: Sequence[tuple[int, int, int]], alpha: float = 0.65) -> torch.Tensor:
    """A class map ``[H, W]`` drawn over a uint8 ``[3, H, W]`` image in the class colours (torchvision's
    ``draw_segmentation_masks``) on the image in grey, so the colours read as the legend's; pixels outside the classes
    (the ignore index) show the grey image."""
    from torchvision.transforms.v2.functional import rgb_to_grayscale
    from torchvision.utils import draw_segmentation_masks

    image = rgb_to_grayscale(image, num_output_channels=3)
    present = [int(k) for k in classes.unique() if 0 <= int(k) < len(colours)]
    if not present:
        return image
    masks = torch.stack([classes == k for k in present])
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=[colours[k] for k in present])


def _font() -> str | None:
    """A TrueType font so labels scale (DejaVu Sans ships with matplotlib, a dependency); None: PIL's bitmap."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


def _write_png(path: Path, image: torch.Tensor) -> None:
    from torchvision.io import write_png

    def write(tmp: str) -> None:
        with _quiet_deprecation():
            write_png(image.contiguous(), tmp)

    atomic_write(path, write)


@contextlib.contextmanager
def _quiet_deprecation():
    """torchvision 0.29 warns on every image decode/encode (it is moving them to torchcodec)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)
        yield


class _progress:
    """``with _progress(show, total) as advance:`` a rich bar when ``show``, else a no-op ``advance``."""

    def __init__(self, show: bool, total: int) -> None:
        self.show, self.total, self.bar = show, total, None

    def __enter__(self):
        if not self.show:
            return lambda: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.__enter__()
        task = self.bar.add_task("predicting", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
