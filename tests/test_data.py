"""Data sources: image folders (with damaged files), Hugging Face datasets, digits, shapes."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import zoo
from zoo.data.classification import ClassificationDataModule
from zoo.data.shapes import CLASSES, classification_sample
from zoo.errors import DataError

SPEC = zoo.info("mobilenetv3_small_100")


def datamodule(**cfg) -> ClassificationDataModule:
    base = {"img_size": 32, "crop_pct": 1.0, "batch_size": 4, "num_workers": 0, "val_fraction": 0.25,
            "augment": {"hflip": 0.0, "color_jitter": 0.0}}
    return ClassificationDataModule(OmegaConf.create({**base, **cfg}), SPEC, seed=0)


def make_folder(root, classes=("cat", "dog"), per_class=3, splits=("train", "val")):
    for split in splits:
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (20, 16), (40 * c, 10 * i, 99)).save(root / split / name / f"{i}.png")
    return root


def test_folder_source_skips_and_reports_unreadable_images(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "val" / "dog" / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) in .*train.*broken.jpg"):
        data = datamodule(source="folder", root=str(root))
        data.setup()
    assert data.classes == ["cat", "dog"]
    assert len(data.train_split.labels) == 6 and len(data.val_split.labels) == 6
    assert "2 unreadable skipped" in data.describe()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64


@pytest.mark.parametrize(
    "layout,needle",
    [
        ("missing", "does not exist; expected"),
        ("no_val", "val does not exist"),
        ("empty", "holds no images"),
        ("val_classes", "must have the same class folders"),
    ],
)
def test_folder_source_errors_name_the_problem(tmp_path, layout, needle):
    root = tmp_path / "imgs"
    if layout == "no_val":
        make_folder(root, splits=("train",))
    elif layout == "empty":
        (root / "train" / "cat").mkdir(parents=True)
        (root / "val" / "cat").mkdir(parents=True)
    elif layout == "val_classes":
        make_folder(root)
        make_folder(root, classes=("bird",), splits=("val",))
    with pytest.raises(DataError, match=needle):
        datamodule(source="folder", root=str(root)).setup()


def test_hf_dataset_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    images = [Image.new("RGB", (12, 12), (i * 20, 0, 0)) for i in range(8)]
    features = datasets.Features({"img": datasets.Image(), "y": datasets.ClassLabel(names=["no", "yes"])})
    ds = datasets.Dataset.from_dict({"img": images, "y": [i % 2 for i in range(8)]}, features=features)
    datasets.DatasetDict({"train": ds, "test": ds.select(range(4))}).save_to_disk(str(tmp_path / "hf"))

    data = datamodule(source="hf", path=str(tmp_path / "hf"), image_column="img", label_column="y", train_split="train",
                      val_split="test")
    assert data.classes == ["no", "yes"] and data.num_classes == 2
    x, y = next(iter(data.val_dataloader()))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 0, 1]
    auto = datamodule(source="hf", path=str(tmp_path / "hf"), image_column="img", label_column="y", train_split="train",
                      val_split="auto")
    auto.setup()
    assert len(auto.train_split.labels) == 6 and len(auto.val_split.labels) == 2
    with pytest.raises(DataError, match="no column 'image'; columns: img, y"):
        datamodule(source="hf", path=str(tmp_path / "hf"), image_column="image", label_column="y", train_split="train",
                   val_split="test").setup()


def test_digits_are_real_stratified_and_deterministic():
    a, b = datamodule(source="digits", val_fraction=0.2), datamodule(source="digits", val_fraction=0.2)
    a.setup(), b.setup()
    assert len(a.train_split.labels) == 1437 and len(a.val_split.labels) == 360
    assert a.val_split.labels == b.val_split.labels
    assert list(a.val_split.images[0].getdata()) == list(b.val_split.images[0].getdata())
    counts = torch.bincount(torch.tensor(a.val_split.labels))
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: about 36 of each digit


def test_shapes_are_deterministic_and_balanced():
    first, label = classification_sample(7, "train", 5, size=48)
    again, _ = classification_sample(7, "train", 5, size=48)
    other, _ = classification_sample(7, "val", 5, size=48)
    assert first.size == (48, 48) and label == 5 % len(CLASSES)
    assert first.tobytes() == again.tobytes() and first.tobytes() != other.tobytes()
    data = datamodule(source="shapes", train_per_class=3, val_per_class=2, image_size=48)
    data.setup()
    assert sorted(data.train_split.labels) == sorted([0, 1, 2, 3] * 3) and data.classes == list(CLASSES)


def test_unknown_source():
    with pytest.raises(DataError, match="valid: digits, shapes, folder, hf"):
        datamodule(source="imagenet").setup()
