"""Where detection training data comes from, and how its labels are checked.

The sources behind :class:`~zoo.data.detection.DetectionDataModule`: :class:`ShapesSplit` (synthetic, no
download), :func:`load_coco_split` (COCO json) and :func:`load_yolo_split` (YOLO txt labels), each giving
boxes in the original image's pixels. Labels are checked once, when a split is loaded: every box or image
that cannot be used becomes a :class:`DataProblem`, and :func:`report_problems` warns about them together
or stops the run. Separate from :mod:`zoo.data.detection` because reading and checking files needs neither
Lightning nor torchvision.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zoo.errors import DataError

# -- label checking --------------------------------------------------------------------------------

CLIP_TOLERANCE = 1.0  # pixels a box may stick out before clipping it is worth a report


@dataclass(frozen=True)
class DataProblem:
    """One thing left out of (or changed in) the training data, and where it is."""

    file: str
    where: str  # "line 3", "annotation id 17", or "" for a whole image
    reason: str
    action: str  # "dropped" (a box), "clipped" (a box, kept), "skipped" (an image)

    def __str__(self) -> str:
        return f"{self.file}{', ' + self.where if self.where else ''}: {self.reason}"


def _checked_box(
    box: Sequence[float], height: int, width: int, file: str, where: str, problems: list[DataProblem]
) -> tuple[float, float, float, float] | None:
    """An xyxy pixel box clipped to the image, or None (and a problem noted) if it cannot be used."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        problems.append(DataProblem(file, where, f"malformed box (not finite: {_fmt(box)})", "dropped"))
        return None
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        problems.append(DataProblem(file, where, f"non-positive size (width {x1 - x0:g}, height {y1 - y0:g} px)", "dropped"))
        return None
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        problems.append(DataProblem(file, where, f"box {_fmt((x0, y0, x1, y1))} is outside the {width}x{height} image", "dropped"))
        return None
    clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
    if max(abs(a - b) for a, b in zip(clipped, (x0, y0, x1, y1))) > CLIP_TOLERANCE:
        problems.append(
            DataProblem(file, where, f"box {_fmt((x0, y0, x1, y1))} is partly outside the {width}x{height} image; clipped", "clipped")
        )
    return clipped


def _fmt(values: Sequence[Any]) -> str:
    try:
        return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"
    except (TypeError, ValueError):
        return repr(values)


def report_problems(problems: Sequence[DataProblem], source: str, strict: bool) -> None:
    """Warn once about everything dropped, clipped or skipped, or raise on the first with ``strict``."""
    if not problems:
        return
    first = "; ".join(str(p) for p in problems[:5]) + ("; ..." if len(problems) > 5 else "")
    if strict:
        raise DataError(
            f"bad {source} data in {problems[0].file}: {len(problems)} problem(s) ({first}). "
            "Fix the file(s), or set data.strict=false to drop such boxes and images with a warning"
        )
    counts = {a: sum(p.action == a for p in problems) for a in ("dropped", "clipped", "skipped")}
    parts = [
        f"dropped {counts['dropped']} bad box(es)" if counts["dropped"] else "",
        f"clipped {counts['clipped']} box(es) partly outside their image" if counts["clipped"] else "",
        f"skipped {counts['skipped']} unreadable image(s)" if counts["skipped"] else "",
    ]
    warnings.warn(
        f"{source} data: {', '.join(p for p in parts if p)} (first: {first}). "
        "Fix the files, or set data.strict=true to stop on them",
        UserWarning,
        stacklevel=3,
    )


# -- sources ---------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SOURCES = ("shapes", "doc_pages", "coco", "yolo")


@dataclass
class Record:
    """One image file and its checked boxes, in the original image's pixels."""

    path: str
    boxes: np.ndarray  # float32 [n, 4] xyxy
    labels: np.ndarray  # int64 [n]
    image_id: int
    height: int
    width: int
    # COCO crowd regions: not objects to learn, but detections on them are not counted as false positives
    crowd_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    crowd_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))


class FileSplit:
    """Images on disk with their labels (``coco`` and ``yolo``)."""

    def __init__(self, records: list[Record], problems: list[DataProblem] | None = None) -> None:
        self.records, self.problems = records, problems or []

    def __len__(self) -> int:
        return len(self.records)

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
        r = self.records[index]
        return r.boxes, r.labels, r.image_id, (r.height, r.width)

    def crowd(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        r = self.records[index]
        return r.crowd_boxes, r.crowd_labels

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, np.ndarray, int]:
        r = self.records[index]
        try:
            with Image.open(r.path) as image:
                rgb = image.convert("RGB")
        except Exception as e:  # damaged after the check: name the file, not a bare worker traceback
            raise DataError(f"cannot read image {r.path}: {type(e).__name__}: {e}") from None
        return rgb, r.boxes, r.labels, r.image_id


class ShapesSplit:
    """Synthetic images rendered on access (deterministic, so nothing is stored)."""

    def __init__(self, seed: int, split: str, count: int, size: int, scene: str = "normal") -> None:
        self.seed, self.split, self.count, self.size, self.scene = seed, split, count, size, scene
        self.problems: list[DataProblem] = []

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, np.ndarray, int]:
        from zoo.data.shapes import detection_sample

        if not 0 <= index < self.count:
            raise IndexError(f"shapes {self.split} has {self.count} images, no index {index}")
        image, boxes, labels = detection_sample(self.seed, self.split, index, self.size, self.scene)
        return image, boxes, labels, index

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
        _, boxes, labels, image_id = self.load(index)
        return boxes, labels, image_id, (self.size, self.size)


class DocPagesSplit(ShapesSplit):
    """Synthetic document pages (:func:`zoo.data.doc_pages.page_sample`), rendered on access like the shapes."""

    def load(self, index: int) -> tuple[Image.Image, np.ndarray, np.ndarray, int]:
        from zoo.data.doc_pages import page_sample

        if not 0 <= index < self.count:
            raise IndexError(f"doc_pages {self.split} has {self.count} images, no index {index}")
        image, boxes, labels = page_sample(self.seed, self.split, index, self.size)
        return image, boxes, labels, index


def _image_size(path: Path, problems: list[DataProblem]) -> tuple[int, int] | None:
    """``(height, width)`` of a readable image; an unreadable one is noted as skipped."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.verify()
    except Exception as e:
        reason = "file does not exist" if isinstance(e, FileNotFoundError) else f"cannot read image ({type(e).__name__}: {e})"
        problems.append(DataProblem(str(path), "", reason, "skipped"))
        return None
    return int(height), int(width)


def _progress(items: Sequence[Any], what: str):
    if len(items) <= 2000:
        return items
    from rich.progress import track

    return track(items, description=f"checking {what}", transient=True)


def read_json(path: Path, key: str) -> dict:
    import json

    if not path.is_file():
        raise DataError(f"COCO annotations {path} do not exist; set data.{key} to the instances_*.json file (relative to data.root or absolute)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"COCO annotations {path} are not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"COCO annotations {path} lack {', '.join(repr(k) for k in missing)}; expected a COCO instances file")
    return data


def coco_categories(data: dict, path: Path) -> tuple[list[int], list[str]]:
    """Category ids in ascending order and their names: id ``ids[k]`` becomes label ``k``."""
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"COCO annotations {path}: every category needs an integer 'id' and a 'name' ({type(e).__name__}: {e})") from None
    if not cats:
        raise DataError(f"COCO annotations {path} have no categories")
    return [c[0] for c in cats], [c[1] for c in cats]


def load_coco_split(images_dir: Path, annotations: Path, category_ids: Sequence[int], key: str = "train_annotations") -> FileSplit:
    """Records for one COCO split; labels are positions in ``category_ids``; crowd boxes are kept apart
    (``Record.crowd_boxes``): never trained on, but evaluation ignores detections on them, as COCO does."""
    data = read_json(annotations, key)
    to_label = {cid: k for k, cid in enumerate(category_ids)}
    file = str(annotations)
    problems: list[DataProblem] = []
    images: dict[int, dict] = {}
    for entry in data["images"]:
        try:
            images[int(entry["id"])] = entry
        except (KeyError, TypeError, ValueError):
            raise DataError(f"COCO annotations {annotations}: image entry {entry!r:.80} has no integer 'id'") from None
    per_image: dict[int, list[tuple[tuple[float, float, float, float], int, str]]] = {i: [] for i in images}
    crowds: dict[int, list[tuple[tuple[float, float, float, float], int, str]]] = {i: [] for i in images}
    pending: list[tuple[int, Any, Any, str, bool]] = []
    for n, ann in enumerate(data["annotations"]):
        where = f"annotation id {ann.get('id', f'#{n}')}" if isinstance(ann, dict) else f"annotation #{n}"
        if not isinstance(ann, dict):
            problems.append(DataProblem(file, where, f"malformed annotation {ann!r:.60}", "dropped"))
            continue
        image_id, category = ann.get("image_id"), ann.get("category_id")
        if image_id not in images:
            problems.append(DataProblem(file, where, f"image_id {image_id!r} is not in the file's 'images'", "dropped"))
            continue
        if category not in to_label:
            problems.append(DataProblem(file, where, f"unknown category_id {category!r} (categories: {_id_range(category_ids)})", "dropped"))
            continue
        pending.append((image_id, ann.get("bbox"), to_label[category], where, bool(ann.get("iscrowd"))))
    sizes: dict[int, tuple[int, int] | None] = {}
    ids = sorted(images)
    for image_id in _progress(ids, f"{images_dir.name} images"):
        sizes[image_id] = _image_size(images_dir / str(images[image_id].get("file_name", "")), problems)
    for image_id, bbox, label, where, crowd in pending:
        size = sizes[image_id]
        if size is None:
            continue  # the image itself is already reported
        where = f"{where} ({images[image_id].get('file_name')})"
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            problems.append(DataProblem(file, where, f"malformed bbox {bbox!r:.60} (expected [x, y, width, height])", "dropped"))
            continue
        box = _checked_box((x, y, x + w, y + h), size[0], size[1], file, where, problems)
        if box is not None:
            (crowds if crowd else per_image)[image_id].append((box, label, where))
    records = []
    for image_id in ids:
        if sizes[image_id] is None:
            continue
        h, w = sizes[image_id]
        objects, crowd = per_image[image_id], crowds[image_id]
        records.append(
            Record(
                str(images_dir / str(images[image_id]["file_name"])),
                np.asarray([o[0] for o in objects], dtype=np.float32).reshape(-1, 4),
                np.asarray([o[1] for o in objects], dtype=np.int64),
                image_id,
                h,
                w,
                np.asarray([o[0] for o in crowd], dtype=np.float32).reshape(-1, 4),
                np.asarray([o[1] for o in crowd], dtype=np.int64),
            )
        )
    return _with_boxes(FileSplit(records, problems), f"COCO split {annotations}")


def _id_range(ids: Sequence[int]) -> str:
    return f"{len(ids)} ids from {min(ids)} to {max(ids)}" if ids else "none"


def yolo_class_names(root: Path, names: Any = None) -> list[str]:
    """Class names from ``names`` (list, or dict index -> name), else ``root/data.yaml``, else ``root/classes.txt``."""
    source = "data.names"
    if names is None and (root / "data.yaml").is_file():
        import yaml

        try:
            names = (yaml.safe_load((root / "data.yaml").read_text(encoding="utf-8")) or {}).get("names")
        except (yaml.YAMLError, AttributeError) as e:
            raise DataError(f"cannot read class names from {root / 'data.yaml'}: {e}") from None
        source = str(root / "data.yaml")
    if names is None and (root / "classes.txt").is_file():
        names = [line.strip() for line in (root / "classes.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
        source = str(root / "classes.txt")
    if names is None:
        raise DataError(
            f"no class names for YOLO data in {root}: set data.names=[cat,dog,...], "
            f"or write {root / 'data.yaml'} with a 'names:' list, or {root / 'classes.txt'} with one name a line"
        )
    if hasattr(names, "items"):  # {0: cat, 1: dog}
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"class names in {source} must map integers to names, got {dict(names)!r:.80}") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise DataError(f"class names in {source} must be numbered 0..{len(by_index) - 1} without gaps, got {sorted(by_index)}")
        names = [by_index[i] for i in range(len(by_index))]
    if isinstance(names, str) or not isinstance(names, Sequence) and not hasattr(names, "__iter__"):
        raise DataError(f"class names in {source} must be a list, got {names!r:.80}")
    names = [str(n) for n in names]
    if not names:
        raise DataError(f"the class name list in {source} is empty")
    return names


def load_yolo_split(root: Path, split: str, num_classes: int) -> FileSplit:
    """Records for ``root/images/<split>`` with ``root/labels/<split>/<same name>.txt`` (missing file: no objects)."""
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    layout = f"expected {root}/images/{split}/*.jpg and {root}/labels/{split}/*.txt"
    if not image_dir.is_dir():
        raise DataError(f"YOLO image folder {image_dir} does not exist; {layout}")
    files = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{image_dir} holds no images ({', '.join(IMAGE_SUFFIXES[:3])}, ...); {layout}")
    if not label_dir.is_dir():
        raise DataError(f"YOLO label folder {label_dir} does not exist, so every image would count as empty; {layout}")
    problems: list[DataProblem] = []
    records = []
    for image_id, path in enumerate(_progress(files, f"{split} images")):
        size = _image_size(path, problems)
        if size is None:
            continue
        label_file = (label_dir / path.relative_to(image_dir)).with_suffix(".txt")
        boxes, labels = _parse_yolo_labels(label_file, size, num_classes, problems)
        records.append(Record(str(path), boxes, labels, image_id, size[0], size[1]))
    return _with_boxes(FileSplit(records, problems), f"YOLO split {image_dir}")


def _with_boxes(split: FileSplit, where: str) -> FileSplit:
    """``split``, unless not one of its images has a usable box: a detector cannot learn (or be scored) on that."""
    if any(len(r.boxes) for r in split.records):
        return split
    dropped = [p for p in split.problems if p.action == "dropped"]
    why = (f"; {len(dropped)} label(s) were dropped, the first in {dropped[0].file} {dropped[0].where}: {dropped[0].reason}"
           if dropped else "")
    raise DataError(f"{where} has no usable boxes in its {len(split.records)} image(s){why}. Check the labels "
                    "(class ids 0..N-1 and normalised cx cy w h for YOLO; bbox [x, y, w, h] in pixels for COCO)")


def _parse_yolo_labels(
    label_file: Path, size: tuple[int, int], num_classes: int, problems: list[DataProblem]
) -> tuple[np.ndarray, np.ndarray]:
    height, width = size
    boxes, labels = [], []
    file = str(label_file)
    try:
        text = label_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""  # an image without a label file shows no objects
    except (OSError, UnicodeDecodeError) as e:
        problems.append(DataProblem(file, "", f"cannot read label file ({type(e).__name__}: {e}); its image counts as empty", "dropped"))
        text = ""
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"line {n}"
        if len(parts) != 5:
            problems.append(DataProblem(file, where, f"malformed line {line.strip()!r:.60} (expected 'class cx cy w h', got {len(parts)} values)", "dropped"))
            continue
        try:
            cls_value, cx, cy, w, h = (float(v) for v in parts)
        except ValueError:
            problems.append(DataProblem(file, where, f"malformed line {line.strip()!r:.60} (not numbers)", "dropped"))
            continue
        if not all(math.isfinite(v) for v in (cls_value, cx, cy, w, h)):
            problems.append(DataProblem(file, where, f"malformed line {line.strip()!r:.60} (NaN or infinite value)", "dropped"))
            continue
        if cls_value != int(cls_value) or not 0 <= cls_value < num_classes:
            problems.append(DataProblem(file, where, f"unknown class id {parts[0]} (valid: 0..{num_classes - 1})", "dropped"))
            continue
        if w <= 0 or h <= 0:
            problems.append(DataProblem(file, where, f"non-positive size (w {w:g}, h {h:g})", "dropped"))
            continue
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        checked = _checked_box(box, height, width, file, where, problems)
        if checked is not None:
            boxes.append(checked)
            labels.append(int(cls_value))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)
