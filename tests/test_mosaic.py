"""Mosaic, mixup and close-mosaic (zoo/data/mosaic.py): boxes stay with their pixels and labels, inside the image,
the same under the same seed, and mosaic ends where the schedule says."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torchvision import tv_tensors

from zoo.data.detection import DetectionDataModule
from zoo.data.detection_transforms import MultiScaleCollate, augment_options, detection_transforms
from zoo.data.mosaic import CloseMosaic, TrainingDetectionDataset, mosaic
from zoo.errors import ConfigError
from zoo.registry import get_spec

COLOURS = torch.tensor([[250, 10, 10], [10, 250, 10], [10, 10, 250], [250, 250, 10]], dtype=torch.uint8)


class SolidImages(torch.utils.data.Dataset):
    """Image k: one colour, one box over its whole area labelled k (sizes differ, so tiles are cut unevenly)."""

    sizes = ((40, 64), (64, 30), (50, 50), (64, 64))

    def __len__(self) -> int:
        return 4

    def __getitem__(self, k: int):
        h, w = self.sizes[k]
        image = tv_tensors.Image(COLOURS[k].view(3, 1, 1).expand(3, h, w).clone())
        boxes = tv_tensors.BoundingBoxes([[0, 0, w, h]], format="XYXY", canvas_size=(h, w))
        return image, {"boxes": boxes, "labels": torch.tensor([k]), "image_id": k}


@pytest.mark.parametrize("seed", range(6))
def test_each_mosaic_box_covers_only_its_own_images_pixels(seed):
    torch.manual_seed(seed)
    image, target = mosaic(SolidImages(), 0, 64)
    assert image.shape == (3, 128, 128) and target["boxes"].canvas_size == (128, 128)
    assert len(target["boxes"]) == len(target["labels"]) >= 1 and 0 in target["labels"].tolist()  # the asked-for image is in
    for box, label in zip(target["boxes"].round().int().tolist(), target["labels"].tolist(), strict=True):
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        inside = image[:, y1:y2, x1:x2].reshape(3, -1).T
        assert (inside == COLOURS[label]).all(), (box, label)  # clipped to its tile: no other image's pixels


def shapes_data(**augment) -> DetectionDataModule:
    cfg = OmegaConf.load(__import__("zoo.config").config.conf_dir() / "data" / "shapes_det.yaml")
    cfg.train_images, cfg.val_images, cfg.image_size, cfg.img_size = 24, 8, 96, 64
    cfg.augment = {**cfg.augment, **augment}
    return DetectionDataModule(cfg, get_spec("yolov10n"), seed=0)


STRONG = {"mosaic": 1.0, "mixup": 0.5, "copy_paste": 0.5, "degrees": 10.0, "shear": 5.0, "hsv": [0.015, 0.7, 0.4], "scale": [0.5, 1.5]}


DETR_LIKE = {"photometric": 0.5, "zoom_out": 0.5, "iou_crop": 0.8, "color_jitter": 0.0}


@pytest.mark.parametrize("augment", [STRONG, DETR_LIKE], ids=["mosaic-mixup-affine-hsv", "photometric-zoomout-ioucrop"])
def test_strong_augmentation_keeps_every_box_inside_the_image_with_its_label(augment):
    dataset = shapes_data(**augment).train_dataset()
    assert isinstance(dataset, TrainingDetectionDataset)
    torch.manual_seed(0)
    counts = []
    for i in range(len(dataset)):
        image, target = dataset[i]
        boxes = target["boxes"].as_subclass(torch.Tensor)
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert len(boxes) == len(target["labels"])
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all() and (boxes[:, 2:] - boxes[:, :2] >= 2).all()
        counts.append(len(boxes))
    plain = shapes_data().train_dataset()
    torch.manual_seed(0)
    plain_counts = [len(plain[i][1]["boxes"]) for i in range(len(plain))]
    if "mosaic" in augment:
        assert sum(counts) > 1.5 * sum(plain_counts)  # four images (and a mixed-in fifth) per sample: more objects


def test_the_same_seed_gives_the_same_augmented_samples():
    dataset = shapes_data(**STRONG).train_dataset()

    def draw(seed):
        torch.manual_seed(seed)
        return [dataset[i] for i in range(4)]

    first, again, other = draw(3), draw(3), draw(4)
    for (a, ta), (b, tb) in zip(first, again, strict=True):
        assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"], tb["labels"])
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(first, other, strict=True))


def test_close_mosaic_turns_the_strong_augmentations_off_for_the_last_epochs():
    import types

    dataset = shapes_data(mosaic=1.0, mixup=0.3, iou_crop=0.8).train_dataset()
    batches = MultiScaleCollate(64, 0.5, 1.5)
    callback = CloseMosaic(2)
    loader = types.SimpleNamespace(dataset=dataset, collate_fn=batches)
    trainer = types.SimpleNamespace(max_epochs=10, current_epoch=7, train_dataloader=loader)
    callback.on_train_epoch_start(trainer, None)
    strong = lambda: [dataset.options[k] for k in ("mosaic", "mixup", "iou_crop")]  # noqa: E731
    assert strong() == [1.0, 0.3, 0.8] and batches.sizes == [32, 64, 96]  # epochs 8 and 9 are the last two
    trainer.current_epoch = 8
    callback.on_train_epoch_start(trainer, None)
    assert strong() == [0.0, 0.0, 0.0] and batches.sizes == [64]
    plain = shapes_data().train_dataset()  # and what is left is the plain pipeline: the same samples, seed for seed
    torch.manual_seed(5)
    closed = dataset[3]
    torch.manual_seed(5)
    assert torch.equal(closed[0], plain[3][0])


def test_a_detection_task_adds_close_mosaic_when_the_data_asks_and_keeps_workers_fresh():
    import lightning as L

    from zoo.tasks.detection import DetectionTask

    data = shapes_data(mosaic=1.0, close_mosaic=1)
    data.cfg.batch_size, data.cfg.num_workers = 8, 1
    seen = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(trainer.train_dataloader.dataset.options["mosaic"])

    task = DetectionTask("yolov10n", num_classes=data.num_classes, optim={"name": "sgd", "lr": 0.01})
    trainer = L.Trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Probe()])
    trainer.fit(task, datamodule=data)
    assert seen == [1.0, 0.0]  # off in the last epoch only, before its batches were loaded
    assert not trainer.train_dataloader.persistent_workers  # new workers each epoch see the switch


@pytest.mark.parametrize("augment,needle", [
    ({"hsv": [0.9, 0.7, 0.4]}, "data.augment.hsv must be [hue <= 0.5, saturation, value]"),
    ({"close_mosaic": 2.5}, "close_mosaic is a whole number of epochs"),
    ({"mosaic": 1.5}, "data.augment.mosaic is a probability in [0, 1]"),
    ({"mosiac": 1.0}, "did you mean mosaic"),
])
def test_bad_augment_options_name_the_fix(augment, needle):
    with pytest.raises(ConfigError, match=__import__("re").escape(needle)):
        augment_options(augment)


def test_without_mosaic_or_mixup_training_samples_are_the_plain_transforms_ones():
    from zoo.data.detection import DetectionDataset

    data = shapes_data()
    data.setup()
    dataset = TrainingDetectionDataset(DetectionDataset(data.train_split), 64, data.cfg.augment)
    reference = DetectionDataset(data.train_split, detection_transforms(64, True, data.cfg.augment))
    for i in range(3):
        torch.manual_seed(i)
        image, target = dataset[i]
        torch.manual_seed(i)
        expected, expected_target = reference[i]
        assert torch.equal(image, expected) and torch.equal(target["boxes"], expected_target["boxes"])


def test_zoo_data_show_draws_the_augmented_training_samples(tmp_path, capsys):
    from PIL import Image as PILImage

    from zoo.cli import main as cli

    out = tmp_path / "sheet.png"
    assert cli(["data", "show", "recipe=yolov10n_shapes", "data.train_images=8", "data.val_images=4", "data.image_size=64",
                "data.img_size=64", "data.augment.mosaic=1.0", "--count", "4", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with PILImage.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.width > 4 * 64  # four samples side by side


@pytest.mark.parametrize("argv,needle", [
    (["data"], "zoo data takes one command, show"),
    (["data", "show"], "name one recipe"),
    (["data", "show", "recipe=quickstart"], "zoo data show draws detection data; 'quickstart' trains a classification model"),
    (["data", "show", "recipe=yolov10n_shapes", "--count", "many"], "--count takes a whole number of samples"),
])
def test_zoo_data_show_bad_input(argv, needle, capsys):
    from zoo.cli import main as cli

    assert cli(argv) == 2
    assert needle in capsys.readouterr().err


def test_multi_scale_batches_take_one_multiple_of_32_each_and_scale_their_boxes():
    from zoo.data.detection_transforms import MultiScaleCollate

    image = torch.zeros(3, 64, 64)
    target = {"boxes": tv_tensors.BoundingBoxes([[8, 8, 40, 24]], format="XYXY", canvas_size=(64, 64)),
              "labels": torch.tensor([1]), "image_id": 0}
    batches = MultiScaleCollate(64, 0.5, 1.5)
    assert batches.sizes == [32, 64, 96]
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        images, targets = batches([(image, target), (image, target)])
        size = images.shape[-1]
        seen.add(size)
        assert images.shape == (2, 3, size, size)
        assert torch.allclose(targets[1]["boxes"], torch.tensor([[8.0, 8, 40, 24]]) * size / 64)
    assert seen == {32, 64, 96}


def test_copy_paste_puts_the_donors_objects_on_free_spots_and_drops_what_they_hide():
    from zoo.data.mosaic import copy_paste

    image = tv_tensors.Image(COLOURS[0].view(3, 1, 1).expand(3, 64, 64).clone())
    mine = {"boxes": tv_tensors.BoundingBoxes([[0, 0, 64, 64], [20, 20, 30, 30]], format="XYXY", canvas_size=(64, 64)),
            "labels": torch.tensor([0, 0]), "image_id": 7}
    donor = tv_tensors.Image(COLOURS[2].view(3, 1, 1).expand(3, 64, 64).clone())
    donor[:, 10:40, 5:25] = COLOURS[1].view(3, 1, 1)  # object 1, 20x30
    donor[:, 50:60, 40:60] = COLOURS[3].view(3, 1, 1)  # object 3, 20x10
    theirs = {"boxes": tv_tensors.BoundingBoxes([[5, 10, 25, 40], [40, 50, 60, 60]], format="XYXY", canvas_size=(64, 64)),
              "labels": torch.tensor([1, 3]), "image_id": 9}
    outcomes = set()
    for seed in range(40):
        torch.manual_seed(seed)
        out, target = copy_paste(image, mine, donor, theirs)
        pasted = [(b, k) for b, k in zip(target["boxes"].int().tolist(), target["labels"].tolist(), strict=True) if k in (1, 3)]
        assert sorted(k for _, k in pasted) == [1, 3] or len(pasted) == 1  # the second skipped only if it would overlap
        for (x1, y1, x2, y2), k in pasted:
            assert (out[:, y1:y2, x1:x2].reshape(3, -1).T == COLOURS[k]).all()  # its own pixels, where its box says
        small_hidden = int((out[:, 20:30, 20:30].reshape(3, -1).T != COLOURS[0]).any(1).sum()) > 60  # of its 100 pixels
        assert ([20, 20, 30, 30] in target["boxes"].int().tolist()) == (not small_hidden)
        assert [0, 0, 64, 64] in target["boxes"].int().tolist() and target["image_id"] == 7  # mostly visible: kept
        outcomes.add(bool(small_hidden))
    assert outcomes == {True, False}  # both cases came up
