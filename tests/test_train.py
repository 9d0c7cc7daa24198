"""Training: recipes through Hydra, the run directory, reload, resume, options, errors, eval."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo.cli import main as cli
from zoo.errors import ZooError
from zoo.train import compose, list_recipes, record_result, run

ZOO = str(Path(sys.executable).with_name("zoo"))
FAST = ["trainer.enable_progress_bar=false", "trainer.limit_train_batches=3", "trainer.max_epochs=1", "trainer.log_every_n_steps=1"]


def fast_cfg(tmp_path: Path, *extra: str):
    return compose("quickstart", [f"out_dir={tmp_path}", *FAST, *extra])


def test_run_writes_a_complete_run_dir_that_loads_back(tmp_path):
    cfg = fast_cfg(tmp_path, "trainer.max_epochs=2")
    run_dir = tmp_path / "run"
    summary = run(cfg, run_dir)

    assert summary["epochs"] == 2
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 2 and saved["model"]["name"] == "mobilenetv3_small_100"
    assert "${" not in (run_dir / "config.yaml").read_text()  # resolved
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    rows = list(csv.DictReader(open(run_dir / "logs" / "metrics.csv")))
    assert any(v for r in rows for k, v in r.items() if k.startswith("lr-AdamW")) and any(r.get("val/top1") for r in rows)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["top1"] == summary["val_top1"] and len(metrics["confusion_matrix"]) == 10
    assert (run_dir / "eval" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    model = zoo.load(str(run_dir)).eval()
    assert model.zoo_spec.labels == tuple(str(i) for i in range(10))
    assert model.zoo_spec.input_size == (3, 64, 64) and model.zoo_spec.crop_pct == 1.0
    from zoo.data.classification import ClassificationDataModule
    from zoo.evaluate import evaluate

    data = ClassificationDataModule(cfg.data, model.zoo_spec, seed=cfg.seed)
    again = evaluate(model, data.val_dataloader(), data.classes, progress=False)
    assert again["top1"] == summary["val_top1"]  # same predictions after the round trip
    assert again["loss"] == pytest.approx(summary["val_loss"], abs=1e-6)

    from_ckpt = zoo.load(str(run_dir / "checkpoints" / "best.ckpt")).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(from_ckpt(x), model(x))


def test_a_killed_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(tmp_path):
    from killed import train_until_killed

    overrides = [f"out_dir={tmp_path}", *FAST, "trainer.max_epochs=2", "data.batch_size=16", "trainer.limit_val_batches=2"]
    last = train_until_killed("quickstart", overrides, tmp_path / "killed", epoch=1)  # SIGKILL in epoch 1
    assert torch.load(last, weights_only=True)["epoch"] == 0
    resumed = run(compose("quickstart", [*overrides, f"resume={tmp_path / 'killed'}"]), tmp_path / "resumed")
    assert resumed["epochs"] == 2
    epochs = {r["epoch"] for r in csv.DictReader(open(tmp_path / "resumed" / "logs" / "metrics.csv")) if r.get("val/top1")}
    assert epochs == {"1"}  # only the second epoch ran in the resumed run
    run(compose("quickstart", overrides), tmp_path / "whole")
    # the checkpoint carries the random state: the resumed epoch drew the shuffle and augmentations of an uninterrupted run
    whole, again = (torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for d in ("whole", "resumed"))
    assert whole.keys() == again.keys()
    for key in whole:
        torch.testing.assert_close(again[key], whole[key], msg=key)


def test_task_options_ema_mixup_sgd_channels_last_clipping(tmp_path):
    overrides = ["task.ema_decay=0.9", "task.mixup=0.2", "task.cutmix=0.5", "task.channels_last=true", "optim=sgd",
                 "optim.lr=0.05", "trainer.gradient_clip_val=1.0", "early_stopping.patience=1", "data=shapes",
                 "data.train_per_class=8", "data.val_per_class=4", "data.batch_size=8"]
    run_dir = tmp_path / "opts"
    summary = run(fast_cfg(tmp_path, *overrides), run_dir)
    assert summary["model"] == "mobilenetv3_small_100"
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    raw = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    ema = {k[len("ema.module."):]: v for k, v in state.items() if k.startswith("ema.module.")}
    assert raw.keys() == ema.keys() and any(not torch.equal(raw[k], ema[k]) for k in raw)
    assert zoo.load(str(run_dir)).zoo_spec.labels == ("circle", "square", "triangle", "cross")


def test_atomic_checkpoints_never_leave_half_files(tmp_path):
    from zoo.train import _atomic_checkpoint_io

    io = _atomic_checkpoint_io()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "x": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "recipe=quickstrat"], "unknown recipe 'quickstrat'. Recipes: "),
        (["train", "trainer.max_epochs=1"], "zoo train recipe=NAME"),
        (["train", "recipe=quickstart", "trainer.max_epoch=1"], "did you mean 'trainer.max_epochs'?"),
        (["train", "recipe=quickstart", "optim=adam"], "unknown optim config 'adam'; choices: adamw, sgd"),
        (["train", "recipe=quickstart", "model.name=mobilenet_v9"], "unknown model 'mobilenet_v9'"),
        (["train", "recipe=quickstart", "model.num_classes=3", *FAST], "model.num_classes=3 but the data has 10 classes"),
        (["train", "recipe=quickstart", "data=folder"], "data.root is not set"),
        (["eval", "no/such/run", "data=digits"], "no such file or folder"),
    ],
)
def test_bad_input_gets_one_clear_line(capsys, argv, needle):
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1] and err[-1].startswith(f"zoo {argv[0]}: error:")


def test_cli_train_print_config_and_multirun(tmp_path):
    shown = subprocess.run([ZOO, "train", "recipe=quickstart", "--cfg", "job", "optim.lr=0.123"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["optim"]["lr"] == 0.123
    sweep = subprocess.run(
        [ZOO, "train", "-m", "recipe=quickstart", f"out_dir={tmp_path}", "optim.lr=0.001,0.01", *FAST,
         "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"],
        capture_output=True, text=True, timeout=300,
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    (multirun,) = (tmp_path / "quickstart").glob("multirun_*")
    lrs = sorted(yaml.safe_load((multirun / str(i) / "config.yaml").read_text())["optim"]["lr"] for i in (0, 1))
    assert lrs == [0.001, 0.01]
    assert (multirun / "0" / "model" / "model.safetensors").is_file()


def test_zoo_eval_writes_report(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run(fast_cfg(tmp_path), run_dir)
    assert cli(["eval", str(run_dir), "data=digits", "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top5" in out and str(tmp_path / "ev") in out
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {"top1", "top5", "loss", "per_class_accuracy", "confusion_matrix", "samples"} <= set(report)
    assert report["samples"] == 360 and set(report["per_class_accuracy"]) == {str(i) for i in range(10)}
    assert sum(map(sum, report["confusion_matrix"])) == 360
    assert cli(["eval", str(run_dir), "data=shapes"]) == 2
    assert "predicts 10 classes but the data has 4" in capsys.readouterr().err


def test_record_result_rewrites_only_the_measured_block(tmp_path, monkeypatch):
    import zoo.config

    original = (zoo.config.recipes_dir() / "quickstart.yaml").read_text()
    (tmp_path / "quickstart.yaml").write_text(original)
    monkeypatch.setattr(zoo.config, "recipes_dir", lambda: tmp_path)
    summary = {"task": "classification", "val_top1": 0.987654, "val_loss": 0.2, "epochs": 12, "wall_time_s": 51.0,
               "machine": {"cpu": "Test CPU", "threads": 2, "gpu": None, "torch": "x", "lightning": "y", "date": "2026-01-01"}}
    record_result("quickstart", summary, "zoo train recipe=quickstart record_result=true")
    text = (tmp_path / "quickstart.yaml").read_text()
    assert "# val/top1: 0.9877" in text and "Test CPU, 2 CPU threads" in text
    strip = lambda t: [line for line in t.splitlines() if not line.startswith("#")]  # noqa: E731
    assert strip(text) == strip(original)  # the config itself is untouched


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_states_its_measured_result(recipe):
    from zoo.config import recipe_path

    header = recipe_path(recipe).read_text().split("# <<< measured")[0]
    if "# not measured yet: needs GPUs" in header:  # e.g. COCO recipes: documented, run where GPUs and data are
        assert "trainer.devices" in recipe_path(recipe).read_text()
    elif "# not measured yet: needs your data" in header:  # fine-tuning recipes: the user's folder is the point
        from omegaconf import OmegaConf

        assert OmegaConf.is_missing(compose(recipe, []).data, "root")
    else:
        from zoo.task_table import TASKS

        firsts = {row.headline.split(":")[0] for row in TASKS.values()}  # each task's headline metric: val/top1, ...
        assert any(f"# {metric}: " in header for metric in firsts), (
            f"{recipe}: run `zoo train recipe={recipe} record_result=true` and commit the header")
        assert f"# command: zoo train recipe={recipe}" in header and "wall time:" in header
    cfg = compose(recipe, [])
    assert cfg.recipe == recipe


@pytest.mark.slow(reason="torch.compile's first compilation of the training forward")
def test_torch_compile_option(tmp_path):
    """task.compile=true compiles the training forward; checkpoints keep the model's own key names."""
    run_dir = tmp_path / "compiled"
    # the smallest classifier graph: compiling MobileNetV3's forward and backward takes 2.5x as long, for the same check
    run(fast_cfg(tmp_path, "task.compile=true", "trainer.limit_train_batches=2", "model.name=simplenetv1_small_m1_05"), run_dir)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in k for k in state)
    assert zoo.load(str(run_dir)).zoo_spec.num_classes == 10


def test_the_ema_moves_once_per_optimizer_step_under_gradient_accumulation(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from zoo.tasks.classification import ClassificationTask

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    task = ClassificationTask(model, num_classes=3, optim={"name": "sgd", "lr": 0.1}, ema_decay=0.5)
    updates = []
    real_update = task.ema.update
    task.ema.update = lambda m, step=None: (updates.append(step), real_update(m, step=step))
    data = DataLoader(TensorDataset(torch.randn(12, 3, 2, 2), torch.randint(0, 3, (12,))), batch_size=2)  # 6 batches
    trainer = L.Trainer(max_epochs=1, accumulate_grad_batches=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(task, data)
    assert trainer.global_step == 2 and updates == [1, 2]  # 6 micro-batches, 2 optimizer steps, 2 EMA updates


def test_a_zoo_task_and_data_train_in_plain_lightning_code_and_in_lightning_cli(tmp_path):
    """A user's own Lightning script (a task and a DataModule from names) and LightningCLI (`python -m zoo.lightning`)
    train a zoo model on zoo data for a few steps; the CLI gives the task the data's number of classes."""
    import lightning as L

    from zoo.lightning import ClassificationData, ClassificationTask

    task = ClassificationTask("mobilenetv3_small_100", num_classes=10)
    data = ClassificationData("mobilenetv3_small_100", "digits", img_size=32, batch_size=16)
    before = task.model.classifier.weight.detach().clone()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, data)
    assert trainer.global_step == 2 and "val/top1" in trainer.callback_metrics
    assert task.model.classifier.out_features == 10 and not torch.equal(before, task.model.classifier.weight)

    args = ["fit", "--model", "ClassificationTask", "--model.model", "mobilenetv3_small_100", "--data", "ClassificationData",
            "--data.data", "digits", "--data.img_size", "32", "--data.batch_size", "16", "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.default_root_dir", str(tmp_path / "cli")]
    out = subprocess.run([sys.executable, "-m", "zoo.lightning", *args], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "`Trainer.fit` stopped: `max_epochs=1` reached" in out.stdout + out.stderr
    saved = yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())
    assert saved["data"]["class_path"] == "zoo.lightning.ClassificationData"
    assert saved["model"]["init_args"]["model"] == "mobilenetv3_small_100"  # given once, linked into the data


def test_resume_last_takes_the_newest_run_of_the_same_model_and_plugins(tmp_path):
    from zoo.train import _resume_path

    def fake_run(time: str, model: str, plugins: list[str]) -> Path:
        run_dir = tmp_path / "quickstart" / time
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"name": model}, "plugins": {p: {} for p in plugins}}))
        return run_dir / "checkpoints" / "last.ckpt"

    fake_run("2026-01-01_10-00-00", "mobilenetv3_small_100", [])
    wanted = fake_run("2026-01-02_10-00-00", "mobilenetv3_small_100", [])
    fake_run("2026-01-03_10-00-00", "mobileone_s0", [])  # newer, another model
    fake_run("2026-01-04_10-00-00", "mobilenetv3_small_100", ["prune"])  # newer, other plugins
    assert _resume_path(compose("quickstart", [f"out_dir={tmp_path}", "resume=last"])) == str(wanted)
    with pytest.raises(ZooError, match="no run of 'quickstart' trained mobilenetv3_small_100 with plugins \\['qat'\\]"):
        _resume_path(compose("quickstart", [f"out_dir={tmp_path}", "resume=last", "plugins=[qat]"]))


def test_label_smoothing_keeps_a_confident_right_answer_from_zero_loss():
    from zoo.tasks.classification import ClassificationTask

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    logits, target = torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([0])
    sharp = ClassificationTask(model, num_classes=3, label_smoothing=0.0).train_loss(logits, target)
    smooth = ClassificationTask(model, num_classes=3, label_smoothing=0.1).train_loss(logits, target)
    assert sharp < 1e-6 and smooth > 0.5  # the smoothed target keeps 0.1 of the mass on the other classes
    mixed = ClassificationTask(model, num_classes=3, mixup=0.2, cutmix=0.5)
    _, y = mixed.mixup(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))
    assert y.shape == (4, 3) and torch.allclose(y.sum(1), torch.ones(4))  # soft targets from timm's mixup/cutmix


def test_poly_schedule_follows_the_segmentation_papers_decay():
    """optim.schedule=poly: after the warmup, lr = min_lr + (lr - min_lr) * (1 - t / T) ** power per update, as mmseg's
    and PaddleSeg's poly schedules (t counted from the warmup's end, T the updates after it)."""
    from types import SimpleNamespace

    from zoo.tasks.base import configure_optimizers

    optim = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0, "warmup_epochs": 1, "min_lr": 1e-6, "schedule": "poly", "power": 0.9}
    out = configure_optimizers(torch.nn.Linear(2, 2), SimpleNamespace(estimated_stepping_batches=100, max_epochs=10), optim)
    scheduler, optimizer = out["lr_scheduler"]["scheduler"], out["optimizer"]
    for step in (10, 40, 99):
        scheduler.step_update(num_updates=step)
        expected = 1e-6 + (1e-3 - 1e-6) * (1 - (step - 10) / 90) ** 0.9
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-6), step
