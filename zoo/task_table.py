"""The task table: one row per task, naming everything a task is made of.

``zoo train``, ``zoo eval``, model cards and the registry read this table instead of branching on task
names, so a new task (segmentation, depth, image-text) is a LightningModule, a DataModule, an evaluation
function and one row here (docs/architecture.md shows the files). The parts are named as
``"module:attribute"`` and imported only when used, so the table sits at the registry's floor and
``import zoo`` stays light.

A row's parts follow one shape each:

- ``lightning_module``: a :class:`zoo.tasks.base.TaskBase` subclass; ``zoo train`` builds it with its
  ``for_data(model, data, optim=..., **task_options)``.
- ``data_module``: a LightningDataModule built as ``DataModule(cfg.data, spec, seed=..., with_train=...)`` (False:
  evaluation, the val split only), with ``classes``,
  ``num_classes``, ``describe()`` and ``preprocessing()``; ``data_sources`` lists the ``data.source`` values
  it reads (what ``zoo eval`` accepts for a model of this task).
- ``evaluate``: ``fn(model, loader, class_names, out_dir, *, title, progress) -> metrics`` writing
  ``metrics.json`` and its pictures, the ``files`` it wrote listed in ``metrics["files"]`` and a one-line
  ``metrics["headline"]``.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class TaskDef:
    name: str
    lightning_module: str
    data_module: str
    data_sources: str  # "module:NAME" of the tuple of data.source values the DataModule reads
    evaluate: str
    monitor: str  # the logged validation metric that picks the best checkpoint
    mode: str  # "max" when larger is better, else "min"
    summary: dict[str, str]  # summary.json key -> the evaluation's metrics key
    accuracy: tuple[str, str]  # (metrics key, name) that int8 is compared on against float (zoo quantize)
    headline: str  # a run's result in a recipe header, formatted from summary.json
    result: str  # the same for people, printed when a run ends
    example_recipe: str
    default_data: str  # the data config zoo eval uses when none is given
    data_kind: str  # what its data is, in words (for the message when other data is given)
    pipeline_tag: str  # the Hugging Face Hub's task tag, for model cards
    output: str  # what the model returns, for model cards
    named_classes: bool = True  # the data's classes name the outputs (a byte vocabulary does not)
    also_trains: str = ""  # "module:function(spec) -> bool": models registered under another task this one trains too

    def part(self, field: str) -> Any:
        """The object a ``"module:attribute"`` field names, imported now."""
        module, _, attr = getattr(self, field).partition(":")
        return getattr(importlib.import_module(module), attr)

    def trains(self, spec: Any) -> bool:
        """Whether this task trains ``spec``, a model registered under another task (``also_trains``)."""
        return bool(self.also_trains) and bool(self.part("also_trains")(spec))


TASKS: dict[str, TaskDef] = {
    "classification": TaskDef(
        name="classification",
        lightning_module="zoo.tasks.classification:ClassificationTask",
        data_module="zoo.data.classification:ClassificationDataModule",
        data_sources="zoo.data.classification:SOURCES",
        evaluate="zoo.evaluate:evaluate",
        monitor="val/top1",
        mode="max",
        summary={"val_top1": "top1", "val_loss": "loss"},
        accuracy=("top1", "top-1"),
        headline="val/top1: {val_top1:.4f}  val/loss: {val_loss:.4f}",
        result="val top-1 {val_top1:.2%}",
        example_recipe="quickstart",
        default_data="digits",
        data_kind="labelled images",
        pipeline_tag="image-classification",
        output="image classification: one label per image, logits `[B, num_classes]`",
    ),
    "detection": TaskDef(
        name="detection",
        lightning_module="zoo.tasks.detection:DetectionTask",
        data_module="zoo.data.detection:DetectionDataModule",
        data_sources="zoo.data.detection:SOURCES",
        evaluate="zoo.evaluate:evaluate_detection",
        monitor="val/map",
        mode="max",
        summary={"val_map": "map", "val_map50": "map50"},
        accuracy=("map50", "mAP@.5"),
        headline="val/map50: {val_map50:.4f}  val/map: {val_map:.4f}",
        result="val mAP@.5 {val_map50:.3f}, mAP@[.5:.95] {val_map:.3f}",
        example_recipe="yolov10n_shapes",
        default_data="shapes_det",
        data_kind="detection data",
        pipeline_tag="object-detection",
        output="object detection: boxes `[B, max_det, 6]` = x1, y1, x2, y2, score, class in input pixels",
    ),
    "segmentation": TaskDef(
        name="segmentation",
        lightning_module="zoo.tasks.segmentation:SegmentationTask",
        data_module="zoo.data.segmentation:SegmentationDataModule",
        data_sources="zoo.data.segmentation:SOURCES",
        evaluate="zoo.evaluate:evaluate_segmentation",
        monitor="val/miou",
        mode="max",
        summary={"val_miou": "miou", "val_pixel_acc": "pixel_acc"},
        accuracy=("miou", "mIoU"),
        headline="val/miou: {val_miou:.4f}  val/pixel_acc: {val_pixel_acc:.4f}",
        result="val mIoU {val_miou:.3f}, pixel accuracy {val_pixel_acc:.3f}",
        example_recipe="lraspp_mobilenetv3_large_shapes",
        default_data="shapes_seg",
        data_kind="segmentation data (images with class masks)",
        pipeline_tag="image-segmentation",
        output="semantic segmentation: logits `[B, num_classes, H, W]` at the input's resolution (argmax: the class map)",
    ),
    "depth": TaskDef(
        name="depth",
        lightning_module="zoo.tasks.depth:DepthTask",
        data_module="zoo.data.depth:DepthDataModule",
        data_sources="zoo.data.depth:SOURCES",
        evaluate="zoo.evaluate:evaluate_depth",
        monitor="val/delta1",
        mode="max",
        summary={"val_delta1": "delta1", "val_rmse": "rmse", "val_absrel": "absrel"},
        accuracy=("delta1", "delta1"),
        headline="val/delta1: {val_delta1:.4f}  val/rmse: {val_rmse:.4f}  val/absrel: {val_absrel:.4f}",
        result="val delta1 {val_delta1:.3f}, RMSE {val_rmse:.3f} m",
        example_recipe="fastdepth_shapes",
        default_data="shapes_depth",
        data_kind="depth data (images with depth maps)",
        pipeline_tag="depth-estimation",
        output="monocular depth: `[B, 1, H, W]` depth in metres at the input's resolution",
        named_classes=False,
    ),
    "language-modeling": TaskDef(
        name="language-modeling",
        lightning_module="zoo.tasks.language_modeling:LanguageModelingTask",
        data_module="zoo.data.text:TextDataModule",
        data_sources="zoo.data.text:SOURCES",
        evaluate="zoo.evaluate:evaluate_language_model",
        monitor="val/loss",
        mode="min",
        summary={"val_loss": "loss", "val_bpt": "bits_per_token", "val_loss_per_granularity": "granularities"},
        accuracy=("loss", "loss (nats/token)"),
        headline="val/loss: {val_loss:.4f}  val/bpt: {val_bpt:.4f}",
        result="val loss {val_loss:.4f} nats/token ({val_bpt:.3f} bits)",
        example_recipe="matlm_nano_stdlib",
        default_data="stdlib",
        data_kind="text",
        pipeline_tag="text-generation",
        output="next-token prediction: logits `[B, T, vocab]`",
        named_classes=False,
    ),
    "image-text": TaskDef(
        name="image-text",
        lightning_module="zoo.tasks.image_text:ImageTextTask",
        data_module="zoo.data.captions:CaptionDataModule",
        data_sources="zoo.data.captions:SOURCES",
        evaluate="zoo.evaluate:evaluate_retrieval",
        monitor="val/i2t_r1",
        mode="max",
        summary={"val_i2t_r1": "i2t_r1", "val_t2i_r1": "t2i_r1", "val_i2t_r5": "i2t_r5"},
        accuracy=("i2t_r1", "image-to-text R@1"),
        headline="val/i2t_r1: {val_i2t_r1:.4f}  val/t2i_r1: {val_t2i_r1:.4f}",
        result="val image-to-text R@1 {val_i2t_r1:.3f}, text-to-image R@1 {val_t2i_r1:.3f}",
        example_recipe="mobileclip2_s0_shape_captions",
        default_data="shape_captions",
        data_kind="image-text pairs (images with captions)",
        pipeline_tag="zero-shot-image-classification",
        output="image and text embeddings `[B, D]`, L2-normalised, compared by dot product",
        named_classes=False,
        also_trains="zoo.tasks.image_text:trains",
    ),
}
