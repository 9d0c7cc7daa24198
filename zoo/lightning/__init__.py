"""Zoo tasks and data for plain Lightning code and ``LightningCLI``.

``zoo train`` (Hydra recipes) is the main path; this is for people whose own tooling is Lightning's. A task takes a
model name, a DataModule here takes the same name (its input size and preprocessing follow the model) and the
name of a data config in ``conf/data``::

    task = ClassificationTask("mobilenetv3_small_100", num_classes=10)
    L.Trainer(max_epochs=3).fit(task, ClassificationData("mobilenetv3_small_100", "digits"))

    python -m zoo.lightning fit --model ClassificationTask --model.model mobilenetv3_small_100 \\
        --data ClassificationData --data.data digits --trainer.max_epochs 3

On the command line the model name is given once (the DataModule gets the task's) and the number of classes is
the data's.
"""
from __future__ import annotations

from typing import Any

from zoo.data.classification import ClassificationDataModule
from zoo.data.detection import DetectionDataModule
from zoo.data.text import TextDataModule
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.detection import DetectionTask
from zoo.tasks.language_modeling import LanguageModelingTask

__all__ = ["ClassificationData", "ClassificationTask", "DetectionData", "DetectionTask", "LanguageModelingTask", "TextData",
           "main"]


def _config(model: str, data: str, **options: Any):
    from zoo.config import data_config
    from zoo.registry import get_spec

    return data_config(data, **{k: v for k, v in options.items() if v is not None}), get_spec(model)


class ClassificationData(ClassificationDataModule):
    """Images for a classifier: ``data`` is ``digits``, ``shapes``, ``folder`` (with ``root``) or ``hf``."""

    def __init__(self, model: str, data: str = "digits", batch_size: int | None = None, img_size: int | None = None,
                 root: str | None = None, num_workers: int | None = None, seed: int = 0) -> None:
        super().__init__(*_config(model, data, batch_size=batch_size, img_size=img_size, root=root, num_workers=num_workers),
                         seed=seed)


class DetectionData(DetectionDataModule):
    """Images with boxes for a detector: ``data`` is ``shapes_det``, ``coco`` or ``yolo`` (with ``root``)."""

    def __init__(self, model: str, data: str = "shapes_det", batch_size: int | None = None, img_size: int | None = None,
                 root: str | None = None, num_workers: int | None = None, seed: int = 0) -> None:
        super().__init__(*_config(model, data, batch_size=batch_size, img_size=img_size, root=root, num_workers=num_workers),
                         seed=seed)


class TextData(TextDataModule):
    """Byte-level text for a language model: ``data`` is ``stdlib`` or ``files`` (with ``root``)."""

    def __init__(self, model: str, data: str = "stdlib", batch_size: int | None = None, context: int | None = None,
                 root: str | None = None, num_workers: int | None = None, seed: int = 0) -> None:
        super().__init__(*_config(model, data, batch_size=batch_size, context=context, root=root, num_workers=num_workers),
                         seed=seed)


def main(args: list[str] | None = None) -> None:
    """``python -m zoo.lightning fit|validate ...``: Lightning's own CLI over the zoo's tasks and data."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from zoo.tasks.base import TaskBase

    class ZooCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("model.init_args.model", "data.init_args.model")
            parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")

    ZooCLI(TaskBase, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True, args=args,
           auto_configure_optimizers=False, save_config_kwargs={"overwrite": True})

