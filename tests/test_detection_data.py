"""Detection data: synthetic shapes, COCO json and YOLO txt sources, box-aware transforms, bad labels."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision import tv_tensors

from zoo.data.detection import (
    DetectionDataModule,
    DetectionDataset,
    Letterbox,
    LetterboxTransform,
    ShapesSplit,
    collate,
    detection_transforms,
    letterbox,
)
from zoo.data.shapes import CLASSES, _scene, detection_sample
from zoo.errors import ConfigError, DataError
from zoo.registry import get_spec

SPEC = dataclasses.replace(get_spec("mobilenetv3_small_100"), task="detection", input_size=(3, 160, 160))
NO_AUGMENT = {"color_jitter": 0.0, "affine": 0.0, "hflip": 0.0}


def datamodule(**cfg) -> DetectionDataModule:
    base = {"img_size": 64, "batch_size": 2, "num_workers": 0, "strict": False, "augment": NO_AUGMENT}
    return DetectionDataModule(OmegaConf.create({**base, **cfg}), SPEC, seed=0)


def target(boxes, labels, canvas) -> dict:
    return {
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=canvas),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "image_id": 7,
    }


# -- synthetic shapes ------------------------------------------------------------------------------


def test_shapes_detection_samples_are_deterministic():
    image, boxes, labels = detection_sample(3, "train", 5, size=96)
    again = detection_sample(3, "train", 5, size=96)
    assert np.array_equal(np.asarray(image), np.asarray(again[0]))
    assert np.array_equal(boxes, again[1]) and np.array_equal(labels, again[2])
    assert boxes.dtype == np.float32 and boxes.shape == (len(labels), 4) and labels.dtype == np.int64
    assert image.size == (96, 96) and image.mode == "RGB"
    other = detection_sample(3, "val", 5, size=96)
    assert not np.array_equal(np.asarray(image), np.asarray(other[0]))
    counts = [len(detection_sample(0, "train", i, size=96)[2]) for i in range(40)]
    assert min(counts) >= 1 and max(counts) <= 6 and len(set(counts)) >= 4
    all_labels = np.concatenate([detection_sample(0, "train", i, size=96)[2] for i in range(40)])
    assert set(all_labels.tolist()) == set(range(len(CLASSES)))


def test_shapes_boxes_are_tight_and_inside_the_image():
    size, edges_seen, objects = 128, 0, 0
    for i in range(25):
        image, boxes, labels, colours, _ = _scene(1, "train", i, size)
        pixels = np.asarray(image)
        assert ((boxes >= 0) & (boxes <= size)).all()
        sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
        assert (sides >= 0.09 * size - 1).all() and (sides <= 0.45 * size + 2).all()
        for box, colour in zip(boxes.astype(int), colours):
            x0, y0, x1, y1 = box
            hit = (pixels == np.array(colour, dtype=np.uint8)).all(-1)
            inside = hit[y0:y1, x0:x1]
            assert hit.sum() - inside.sum() <= 2  # nothing of the shape outside its box (bar chance noise matches)
            assert inside.sum() > 0.15 * (x1 - x0) * (y1 - y0)  # and it is visible in it
            objects += 1
            edges_seen += bool(inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any())
    assert edges_seen >= 0.9 * objects  # the shape touches all four sides (unless a later one covers a tip)


# -- letterbox and transforms ----------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(100, 200), (300, 120), (64, 64), (33, 47)])
def test_letterbox_round_trip_of_boxes(hw):
    h, w = hw
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(10, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    boxes = torch.cat([xy, xy + torch.rand(10, 2, generator=g) * torch.tensor([w * 0.2, h * 0.2]) + 1], 1)
    placement = Letterbox.fit(h, w, 160)
    placed = placement.to_input(boxes)
    assert (placed >= 0).all() and (placed <= 160).all()
    assert torch.allclose(placement.to_original(placed), boxes, atol=1e-3)
    image, same = letterbox(torch.zeros(3, h, w, dtype=torch.uint8), 160)
    assert image.shape == (3, 160, 160) and same == placement
    # the v2 step places image and boxes exactly as inference's letterbox does
    out, t = LetterboxTransform(160)(tv_tensors.Image(torch.zeros(3, h, w, dtype=torch.uint8)), target(boxes.tolist(), [0] * 10, (h, w)))
    assert out.shape == (3, 160, 160) and out.dtype == torch.uint8
    assert torch.allclose(t["boxes"].as_subclass(torch.Tensor), placed) and t["boxes"].canvas_size == (160, 160)


def test_letterbox_transform_keeps_the_box_format_and_handles_int_boxes():
    boxes = tv_tensors.BoundingBoxes([[5, 5, 5, 5]], format="CXCYWH", canvas_size=(20, 50))  # int64
    _, out = LetterboxTransform(64)(torch.ones(3, 20, 50), boxes)
    assert out.format == tv_tensors.BoundingBoxFormat.CXCYWH and out.dtype == torch.float32
    assert torch.allclose(out.as_subclass(torch.Tensor), torch.tensor([[6.4, 25.4, 6.4, 6.4]]))


def test_train_transform_takes_images_without_objects():
    image = tv_tensors.Image(torch.full((3, 30, 50), 90, dtype=torch.uint8))
    out, t = detection_transforms(64, True)(image, target([], [], (30, 50)))
    assert out.shape == (3, 64, 64) and t["boxes"].shape == (0, 4) and t["labels"].shape == (0,)


def bright_square_sample(h=60, w=90, box=(10, 20, 40, 45)):
    image = torch.zeros(3, h, w, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    image[:, y0:y1, x0:x1] = 255
    return tv_tensors.Image(image), target([list(box)], [2], (h, w))


def test_train_flip_moves_the_box_with_the_pixels():
    image, t = bright_square_sample()
    out, t2 = detection_transforms(96, True, {**NO_AUGMENT, "hflip": 1.0})(image, t)
    assert out.dtype == torch.float32 and out.shape == (3, 96, 96) and 0 <= out.min() and out.max() <= 1
    placed = Letterbox.fit(60, 90, 96).to_input(torch.tensor([[10.0, 20, 40, 45]]))[0]
    flipped = torch.tensor([96 - placed[2], placed[1], 96 - placed[0], placed[3]])
    assert torch.allclose(t2["boxes"].as_subclass(torch.Tensor)[0], flipped, atol=1e-4)
    x0, y0, x1, y1 = flipped.round().int().tolist()
    assert out[:, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].min() > 0.9  # white inside the box...
    assert out[:, y0:y1, : x0 - 2].max() < 0.5 and out[:, y0:y1, x1 + 2 :].max() < 0.5  # ...dark beside it
    assert t2["labels"].tolist() == [2] and t2["image_id"] == 7


def test_scale_jitter_keeps_boxes_on_the_object_and_drops_lost_ones():
    transform = detection_transforms(96, True, {"color_jitter": 0.0, "scale": [0.5, 1.5], "translate": 0.3, "hflip": 0.5})
    torch.manual_seed(0)
    kept = 0
    for _ in range(30):
        out, t = transform(*bright_square_sample())
        boxes = t["boxes"].as_subclass(torch.Tensor)
        assert len(boxes) == len(t["labels"]) <= 1
        if len(boxes):
            kept += 1
            x0, y0, x1, y1 = boxes[0].tolist()
            assert x1 - x0 >= 2 and y1 - y0 >= 2
            inner = out[:, int(y0) + 1 : max(int(y1) - 1, int(y0) + 2), int(x0) + 1 : max(int(x1) - 1, int(x0) + 2)]
            assert inner.float().mean() > 0.8
    assert kept >= 20


def test_unknown_augment_option_names_the_closest():
    with pytest.raises(ConfigError, match=r"data\.augment\.hflp.*hflip"):
        detection_transforms(64, True, {"hflp": 0.5})
    with pytest.raises(ConfigError, match=r"scale"):
        detection_transforms(64, True, {"scale": [1.5, 0.5]})


def test_collate_stacks_images_and_keeps_plain_targets():
    dataset = DetectionDataset(ShapesSplit(0, "train", 3, 64), detection_transforms(64, False))
    images, targets = collate([dataset[i] for i in range(3)])
    assert images.shape == (3, 3, 64, 64) and images.dtype == torch.float32 and type(images) is torch.Tensor
    for i, t in enumerate(targets):
        assert type(t["boxes"]) is torch.Tensor and t["boxes"].dtype == torch.float32 and t["boxes"].shape[1] == 4
        assert t["labels"].dtype == torch.int64 and len(t["labels"]) == len(t["boxes"]) and t["image_id"] == i
    raw = DetectionDataset(ShapesSplit(0, "train", 1, 48))[0]
    assert raw[0].dtype == torch.uint8 and isinstance(raw[1]["boxes"], tv_tensors.BoundingBoxes)
    with pytest.raises(DataError, match="one size"):
        collate([raw, dataset[0]])


# -- the DataModule with shapes --------------------------------------------------------------------


def test_shapes_datamodule_batches():
    data = datamodule(source="shapes", train_images=5, val_images=3, data_seed=0, image_size=96, img_size=64, augment=None)
    data.setup()
    assert data.classes == tuple(CLASSES) and data.num_classes == 4
    assert data.preprocessing() == {"input_size": (3, 64, 64), "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
                                    "interpolation": "bilinear", "crop_pct": 1.0}
    batches = list(data.train_dataloader())
    assert len(batches) == 2  # 5 images, batch 2, last partial batch dropped
    images, targets = batches[0]
    assert images.shape == (2, 3, 64, 64) and len(targets) == 2
    val = list(data.val_dataloader())
    assert [len(t) for _, t in val] == [2, 1]
    truth = data.val_annotations()
    loaded = [t for _, ts in val for t in ts]
    assert [t["image_id"] for t in truth] == [t["image_id"] for t in loaded] == [0, 1, 2]
    for a, b in zip(truth, loaded):
        assert torch.allclose(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
        assert torch.allclose(a["boxes"], torch.as_tensor(detection_sample(0, "val", a["image_id"], 96)[1]) * (64 / 96))
    assert data.describe() == "shapes: 5 train / 3 val images, 4 classes (circle, square, triangle, cross), img_size 64, 0 bad boxes dropped"


def test_img_size_must_be_a_multiple_of_32():
    with pytest.raises(DataError, match=r"img_size 150 is not a multiple of 32.*128 or 160.*data\.img_size=160"):
        datamodule(source="shapes", train_images=2, val_images=2, img_size=150)
    assert datamodule(source="shapes", train_images=2, val_images=2, img_size=None).img_size == 160  # the spec's


# -- COCO json -------------------------------------------------------------------------------------


def write_image(path, size=(40, 30), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_coco(root, split="train", annotations=None, categories=None):
    write_image(root / f"{split}2017" / "a.jpg", (40, 30))
    write_image(root / f"{split}2017" / "b.png", (20, 50))
    data = {
        "images": [{"id": 11, "file_name": "a.jpg", "width": 40, "height": 30},
                   {"id": 12, "file_name": "b.png", "width": 20, "height": 50}],
        "annotations": annotations if annotations is not None else [
            {"id": 1, "image_id": 11, "category_id": 7, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 3, "bbox": [20, 10, 15, 15], "iscrowd": 0},
            {"id": 3, "image_id": 11, "category_id": 3, "bbox": [0, 0, 40, 30], "iscrowd": 1},
        ],
        "categories": categories or [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))


def coco_datamodule(root, **cfg):
    return datamodule(source="coco", root=str(root), train_images="train2017",
                      train_annotations="annotations/instances_train2017.json", val_images="val2017",
                      val_annotations="annotations/instances_val2017.json", **cfg)


def test_coco_json_parses_to_contiguous_labels_and_pixel_boxes(tmp_path):
    write_coco(tmp_path, "train")
    write_coco(tmp_path, "val")
    data = coco_datamodule(tmp_path)
    data.setup()
    assert data.classes == ("cat", "dog")  # ids 3, 7 -> labels 0, 1
    first = data.train_split.records[0]
    assert first.image_id == 11 and (first.height, first.width) == (30, 40)
    assert first.boxes.tolist() == [[2, 3, 12, 8], [20, 10, 35, 25]] and first.labels.tolist() == [1, 0]  # crowd kept apart
    assert first.crowd_boxes.tolist() == [[0, 0, 40, 30]] and first.crowd_labels.tolist() == [0]
    _, val_targets = next(iter(data.val_dataloader()))
    assert val_targets[0]["crowd_labels"].tolist() == [0]  # evaluation sees the crowd region ...
    assert "crowd_boxes" not in DetectionDataset(data.train_split)[0][1]  # ... training does not
    assert len(data.train_split.records[1].boxes) == 0  # an image without annotations is a negative
    image, t = DetectionDataset(data.val_split)[0]
    assert image.shape == (3, 30, 40) and t["image_id"] == 11
    assert t["boxes"].tolist() == [[2, 3, 12, 8], [20, 10, 35, 25]]
    truth = data.val_annotations()[0]
    placed = Letterbox.fit(30, 40, 64).to_input(torch.tensor([[2.0, 3, 12, 8], [20, 10, 35, 25]]))
    assert torch.allclose(truth["boxes"], placed) and truth["orig_size"] == (30, 40)
    _, loaded = next(iter(data.val_dataloader()))
    assert torch.allclose(loaded[0]["boxes"], placed)
    assert "coco: 2 train / 2 val images, 2 classes (cat, dog)" in data.describe()


def test_evaluation_reads_only_the_val_split(tmp_path):
    write_coco(tmp_path, "val")  # no train json, no train images: enough to evaluate
    cfg = OmegaConf.create({"source": "coco", "root": str(tmp_path), "img_size": 64, "batch_size": 2, "num_workers": 0,
                            "val_images": "val2017", "val_annotations": "annotations/instances_val2017.json"})
    data = DetectionDataModule(cfg, SPEC, with_train=False)
    assert data.classes == ("cat", "dog") and len(next(iter(data.val_dataloader()))[1]) == 2
    assert data.describe().startswith("coco: 2 val images")
    with pytest.raises(DataError, match="only the val split"):
        data.train_dataloader()
    with pytest.raises(DataError, match="instances_train2017"):
        DetectionDataModule(cfg, SPEC).setup()


def test_coco_bad_boxes_are_reported_with_the_file_and_dropped(tmp_path):
    write_coco(tmp_path, "train", annotations=[
        {"id": 1, "image_id": 11, "category_id": 7, "bbox": [2, 3, 10, 5]},
        {"id": 2, "image_id": 11, "category_id": 7, "bbox": [2, 3, -4, 5]},
        {"id": 3, "image_id": 11, "category_id": 99, "bbox": [2, 3, 4, 5]},
        {"id": 4, "image_id": 11, "category_id": 3, "bbox": [50, 40, 4, 5]},
        {"id": 5, "image_id": 12, "category_id": 3, "bbox": [10, 40, 20, 20]},  # partly outside: clipped
        {"id": 6, "image_id": 12, "category_id": 3, "bbox": [1, "x", 2]},
    ])
    write_coco(tmp_path, "val")
    with pytest.warns(UserWarning, match=r"dropped 4 bad box\(es\), clipped 1 .*instances_train2017\.json, annotation id 2 \(a\.jpg\): non-positive size"):
        data = coco_datamodule(tmp_path)
        data.setup()
    assert data.train_split.records[0].boxes.tolist() == [[2, 3, 12, 8]]
    assert data.train_split.records[1].boxes.tolist() == [[10, 40, 20, 50]]
    reasons = " | ".join(str(p) for p in data.problems)
    assert "unknown category_id 99" in reasons and "outside the 40x30 image" in reasons and "malformed bbox" in reasons
    assert "4 bad boxes dropped" in data.describe()
    with pytest.raises(DataError, match=r"instances_train2017\.json, annotation id 2 .*non-positive size.*data\.strict=false"):
        coco_datamodule(tmp_path, strict=True).setup()


def test_coco_missing_root_and_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"data\.root is not set"):
        DetectionDataModule(OmegaConf.load("conf/data/coco.yaml"), SPEC).setup()
    with pytest.raises(DataError, match=r"instances_val2017\.json do not exist"):
        coco_datamodule(tmp_path).setup()


# -- YOLO txt --------------------------------------------------------------------------------------


def write_yolo(root, labels: dict[str, str], names_in="data.yaml"):
    for split in ("train", "val"):
        write_image(root / "images" / split / "a.jpg", (40, 20))
        write_image(root / "images" / split / "b.png", (30, 30))
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for name, text in labels.items():
        (root / "labels" / "train" / name).write_text(text)
    (root / "labels" / "val" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    if names_in == "data.yaml":
        (root / "data.yaml").write_text("path: .\nnames:\n  0: person\n  1: car\n")
    elif names_in == "classes.txt":
        (root / "classes.txt").write_text("person\ncar\n")


@pytest.mark.parametrize("names_in", ["data.yaml", "classes.txt", "cfg"])
def test_yolo_txt_parses_to_pixel_boxes_and_names(tmp_path, names_in):
    write_yolo(tmp_path, {"a.txt": "0 0.25 0.5 0.5 0.5\n\n1 0.75 0.25 0.2 0.5\n"}, names_in)
    data = datamodule(source="yolo", root=str(tmp_path), names=["person", "car"] if names_in == "cfg" else None)
    data.setup()
    assert data.classes == ("person", "car")
    a, b = data.train_split.records
    assert a.path.endswith("a.jpg") and (a.height, a.width) == (20, 40)
    assert np.allclose(a.boxes, [[0, 5, 20, 15], [26, 0, 34, 10]]) and a.labels.tolist() == [0, 1]
    assert b.boxes.shape == (0, 4) and b.labels.shape == (0,)  # no label file: no objects
    images, targets = next(iter(data.train_dataloader()))
    assert images.shape == (2, 3, 64, 64)
    first = next(t for t in targets if t["image_id"] == a.image_id)  # the train loader shuffles
    assert torch.allclose(first["boxes"], Letterbox.fit(20, 40, 64).to_input(torch.as_tensor(a.boxes)))


def test_yolo_without_class_names_says_where_to_put_them(tmp_path):
    write_yolo(tmp_path, {}, names_in=None)
    with pytest.raises(DataError, match=r"no class names.*data\.names=.*data\.yaml.*classes\.txt"):
        datamodule(source="yolo", root=str(tmp_path)).setup()


def test_yolo_bad_lines_and_images_are_reported_and_dropped(tmp_path):
    write_yolo(tmp_path, {"a.txt": "\n".join([
        "0 0.25 0.5 0.5 0.5",    # good
        "1 0.5 0.5 -0.2 0.3",    # negative width
        "0 1.5 1.5 0.2 0.2",     # fully outside
        "5 0.5 0.5 0.2 0.2",     # unknown class
        "1 0.5 0.5",             # malformed
        "1 nan 0.5 0.2 0.2",     # NaN
        "1 0.95 0.5 0.3 0.4",    # partly outside: clipped and kept
    ])})
    (tmp_path / "images" / "train" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.warns(UserWarning, match=r"dropped 5 bad box\(es\), clipped 1 .*skipped 1 unreadable image.*labels/train/a\.txt, line 2: non-positive size"):
        data = datamodule(source="yolo", root=str(tmp_path))
        data.setup()
    a = data.train_split.records[0]
    assert np.allclose(a.boxes, [[0, 5, 20, 15], [32, 6, 40, 14]]) and a.labels.tolist() == [0, 1]
    assert len(data.train_split) == 2  # broken.jpg skipped
    reasons = [str(p) for p in data.problems]
    assert any("line 3" in r and "outside the 40x20 image" in r for r in reasons)
    assert any("line 4" in r and "unknown class id 5 (valid: 0..1)" in r for r in reasons)
    assert any("line 5" in r and "malformed line" in r for r in reasons)
    assert any("line 6" in r and "NaN" in r for r in reasons)
    assert any("broken.jpg" in r and "cannot read image" in r for r in reasons)
    assert "5 bad boxes dropped, 1 unreadable images skipped" in data.describe()
    with pytest.raises(DataError, match=r"labels/train/a\.txt, line 2: non-positive size"):
        datamodule(source="yolo", root=str(tmp_path), strict=True).setup()


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(DataError, match=r"unknown detection data source 'cocoo'; did you mean coco\?"):
        datamodule(source="cocoo").setup()


def test_the_hard_shapes_scene_has_more_and_smaller_objects_than_the_normal_one():
    def stats(scene):
        samples = [detection_sample(0, "val", i, 128, scene) for i in range(30)]
        boxes = np.concatenate([b for _, b, _ in samples])
        return np.mean([len(labels) for _, _, labels in samples]), np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))

    (normal_count, normal_side), (hard_count, hard_side) = stats("normal"), stats("hard")
    assert hard_count > 1.5 * normal_count and hard_side < 0.7 * normal_side


def test_an_unknown_shapes_scene_names_the_choices():
    cfg = OmegaConf.create({"source": "shapes", "train_images": 4, "val_images": 2, "image_size": 64, "img_size": 64,
                            "batch_size": 2, "scene": "crowded"})
    with pytest.raises(ConfigError, match="data.scene='crowded': the shapes scenes are normal, hard"):
        DetectionDataModule(cfg, SPEC).setup()


def test_doc_pages_are_deterministic_with_every_layout_class_and_ink_tight_boxes():
    from zoo.data.doc_pages import page_sample
    from zoo.labels import DOCSTRUCTBENCH_CLASSES

    image, boxes, labels = page_sample(0, "val", 3, 320)
    again = page_sample(0, "val", 3, 320)
    assert np.array_equal(np.asarray(image), np.asarray(again[0])) and np.array_equal(boxes, again[1])
    assert not np.array_equal(np.asarray(image), np.asarray(page_sample(0, "train", 3, 320)[0]))
    seen = set()
    for index in range(20):
        image, boxes, labels = page_sample(0, "val", index, 320)
        pixels = np.asarray(image).astype(int)
        ink = np.abs(pixels - np.median(pixels.reshape(-1, 3), 0)).max(-1) > 40  # anything not paper
        assert boxes.dtype == np.float32 and labels.dtype == np.int64 and len(boxes) == len(labels) > 0
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 320).all() and (boxes[:, 2:] - boxes[:, :2] >= 2).all()
        for (x0, y0, x1, y1) in boxes.astype(int):
            crop = ink[y0:y1, x0:x1]  # every side of a box touches its block's ink (within 3 pixels)
            assert crop[:3].any() and crop[-3:].any() and crop[:, :3].any() and crop[:, -3:].any(), (index, x0, y0, x1, y1)
        seen.update(labels.tolist())
    assert seen == set(range(len(DOCSTRUCTBENCH_CLASSES)))
    data = datamodule(source="doc_pages", train_images=4, val_images=2, data_seed=0, image_size=320, img_size=160, augment=None)
    data.setup()
    assert data.classes == DOCSTRUCTBENCH_CLASSES
    truth = data.val_annotations()
    assert torch.allclose(truth[1]["boxes"], torch.as_tensor(page_sample(0, "val", 1, 320)[1]) / 2)
