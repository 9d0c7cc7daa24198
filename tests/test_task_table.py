"""A new task is one module and one row of the task table: zoo train, zoo.load and the run directory need nothing else."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import REPO_ROOT

# The task's one module: its LightningModule, DataModule and evaluation (a model that regresses mean brightness).
BRIGHTNESS = '''
import json
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zoo.tasks.base import TaskBase

SOURCES = ("noise",)


class BrightnessTask(TaskBase):
    def __init__(self, model, optim=None, **options):
        super().__init__()
        self.model, self.optim, self.ema = model, dict(optim or {"name": "sgd", "lr": 0.1}), None

    @classmethod
    def for_data(cls, model, data, optim, **options):
        return cls(model, optim=optim)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.model(x)[:, 0], y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/mse", nn.functional.mse_loss(self.model(x)[:, 0], y))


class NoiseData(L.LightningDataModule):
    classes, num_classes = ["brightness"], 1

    def __init__(self, cfg, spec, seed=0, *, with_train=True):
        super().__init__()
        self.x = torch.rand(32, *spec.input_size, generator=torch.Generator().manual_seed(seed))
        self.y = self.x.mean((1, 2, 3))

    def describe(self):
        return "noise: 32 images"

    def preprocessing(self):
        return {}

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8)

    val_dataloader = train_dataloader


def evaluate(model, loader, class_names, out_dir=None, *, title="", progress=True):
    with torch.no_grad():
        mse = sum(nn.functional.mse_loss(model(x)[:, 0], y, reduction="sum").item() for x, y in loader) / 32
    metrics = {"mse": mse, "headline": f"mse {mse:.4f}", "files": {}}
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics))
    return metrics
'''

SCRIPT = '''
import json, sys
import torch
import zoo
from zoo.task_table import TASKS, TaskDef
from zoo.train import compose, run

TASKS["brightness"] = TaskDef(  # the task's one row
    name="brightness", lightning_module="brightness:BrightnessTask", data_module="brightness:NoiseData",
    data_sources="brightness:SOURCES", evaluate="brightness:evaluate", monitor="val/mse", mode="min",
    summary={"val_mse": "mse"}, accuracy=("mse", "mse"), headline="val/mse: {val_mse:.4f}", result="val mse {val_mse:.4f}",
    example_recipe="quickstart", default_data="digits", data_kind="noise", pipeline_tag="image-feature-extraction",
    output="mean brightness", named_classes=False)


@zoo.register_model(family="toy", task="brightness", num_classes=1, input_size=(3, 8, 8), mean=(0.0,) * 3, std=(1.0,) * 3)
def brightness_net(num_classes=1):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, num_classes))


out = sys.argv[1]
cfg = compose("quickstart", [f"out_dir={out}", "model.name=brightness_net", "task.kind=brightness", "data.source=noise",
                             "trainer.max_epochs=3", "optim.lr=0.05", "optim.warmup_epochs=0", "trainer.enable_progress_bar=false"])
from brightness import NoiseData

zero = float((NoiseData(cfg.data, zoo.info("brightness_net"), seed=cfg.seed).y ** 2).mean())  # predicting 0
summary = run(cfg, out + "/run")
print(json.dumps({"summary": summary, "zero_mse": zero, "reloaded": type(zoo.load(out + "/run")).__name__}))
'''


def test_a_new_task_is_one_module_and_one_row(tmp_path):
    (tmp_path / "brightness.py").write_text(textwrap.dedent(BRIGHTNESS))
    (tmp_path / "script.py").write_text(textwrap.dedent(SCRIPT))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path)], capture_output=True, text=True,
                         env=env, cwd=REPO_ROOT, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    summary = result["summary"]
    assert summary["task"] == "brightness" and summary["epochs"] == 3 and summary["val_mse"] < 0.8 * result["zero_mse"]
    assert json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())["mse"] == summary["val_mse"]
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file() and result["reloaded"] == "Sequential"
