"""``zoo train``: a recipe (Hydra config) -> Lightning Trainer run -> run directory.

A recipe in ``recipes/`` is a complete Hydra primary config that composes the groups in ``conf/``
(model, data, task, optim, trainer). ``zoo train recipe=NAME [overrides]`` runs it through Hydra's own
entry point, so every Hydra feature works (``--cfg job``, ``-m`` sweeps, ``+key=value``), and Lightning's
DDP launcher can re-run this module for each rank (``python -m zoo.train ...``).

A run writes ``runs/<recipe>/<time>/``: ``config.yaml`` (resolved), ``checkpoints/{best,last}.ckpt``
(written atomically), ``logs/metrics.csv``, ``tensorboard/``, ``model/`` (``zoo.save``: loads back with
``zoo.load(run_dir)``), ``eval/`` (metrics JSON and plots: a confusion matrix for classifiers, per-class
AP and a sheet of predictions for detectors, loss per granularity for MatFormer language models) and
``summary.json``. The model's task picks the DataModule and the LightningModule (``ClassificationTask``,
``DetectionTask`` or ``LanguageModelingTask``).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo._io import atomic_write, atomic_write_json, atomic_write_text, new_run_dir, replace_marked_block
from zoo.config import (
    SEARCHPATH,
    check_overrides,
    check_values,
    compose,
    list_recipes,
    recipe_path,
    recipes_dir,
)
from zoo.environment import machine
from zoo.errors import ConfigError, DataError
from zoo.registry import state_of

MEASURED_START = "# >>> measured"
MEASURED_END = "# <<< measured"


# -- running ---------------------------------------------------------------------------------------


def _precision(value: Any) -> Any:
    if value != "auto":
        return value
    import torch

    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def _resume_path(cfg) -> str | None:
    resume = cfg.get("resume")
    if not resume:
        return None
    if resume == "last":
        return _last_fitting_run(cfg)
    path = Path(resume).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"resume={resume}: no checkpoint at {path} (give a .ckpt file, a run directory, or 'last')")
    _same_plugins(str(path), cfg)
    return str(path)


def _same_plugins(path: str, cfg) -> None:
    """A checkpoint continues only with the plugins that wrote it: they rebuild what they changed (pruned shapes, the
    QAT graph) before its weights load, and a plugin added or dropped on resume would not fit them."""
    from zoo.plugins.base import saved_plugins

    try:
        saved = saved_plugins(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear line
        raise ConfigError(f"resume={cfg.resume}: {path} is not a readable checkpoint ({type(e).__name__}: {str(e)[:120]})") from None
    wanted = sorted((cfg.get("plugins") or {}).keys())
    if saved != wanted:
        raise ConfigError(f"resume={cfg.resume}: that run trained with plugins=[{','.join(saved)}], this one has "
                          f"plugins=[{','.join(wanted)}]; resume with the plugins it was trained with")


def _last_fitting_run(cfg) -> str:
    """The last checkpoint of the newest run of this recipe that trained the same model with the same plugins (a
    checkpoint of another model or plugin set cannot be resumed); the reasons when none fits."""
    import yaml

    runs = sorted(Path(cfg.out_dir, cfg.recipe).glob("*/checkpoints/last.ckpt"), key=lambda p: p.parent.parent.name)
    if not runs:
        raise ConfigError(f"resume=last: no earlier run of {cfg.recipe!r} under {Path(cfg.out_dir, cfg.recipe)}")
    wanted = (cfg.model.name, sorted((cfg.get("plugins") or {}).keys()))
    reasons = []
    for ckpt in reversed(runs):
        try:
            saved = yaml.safe_load((ckpt.parent.parent / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            reasons.append(f"{ckpt.parent.parent.name}: no readable config.yaml")
            continue
        found = ((saved.get("model") or {}).get("name"), sorted((saved.get("plugins") or {}).keys()))
        if found == wanted:
            return str(ckpt)
        reasons.append(f"{ckpt.parent.parent.name}: {found[0]} with plugins {found[1] or 'none'}")
    raise ConfigError(f"resume=last: no run of {cfg.recipe!r} trained {wanted[0]} with plugins {wanted[1] or 'none'} "
                      f"({'; '.join(reasons[:3])}); give resume=RUN_DIR or train from scratch")


def _atomic_checkpoint_io():
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Checkpoints go to a temporary file first, then replace the old one in a single rename."""

        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
            atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    return AtomicCheckpointIO()


def _task_row(cfg, spec):
    """The model's row of the task table, checked against the recipe's task (a detector in a classifier recipe...)."""
    from zoo.task_table import TASKS

    recipe_kind = cfg.task.get("kind", "classification")
    row = TASKS.get(recipe_kind)
    if row is not None and spec.task != recipe_kind and row.trains(spec):
        return row  # e.g. an image-text model, registered as a zero-shot classifier, in a contrastive recipe
    if spec.task not in TASKS:
        raise ConfigError(f"{spec.name} is a {spec.task} model; zoo train handles {', '.join(TASKS)} models")
    if spec.task != recipe_kind:
        raise ConfigError(
            f"{spec.name} is a {spec.task} model but recipe {cfg.recipe!r} trains {recipe_kind} models; "
            f"use a {spec.task} recipe (e.g. {TASKS[spec.task].example_recipe}) "
            f"or a {recipe_kind} model"
        )
    return TASKS[spec.task]


@dataclasses.dataclass
class Prepared:
    """Everything a run is made of, before ``trainer.fit`` (also what the overhead benchmark times)."""

    trainer: Any
    task: Any
    data: Any
    model: Any
    best: Any  # the ModelCheckpoint callback
    row: Any = None  # the task table's row the run trains


def prepare(cfg, run_dir: str | Path, callbacks: Sequence[Any] = ()) -> Prepared:
    """Build the data, model, task and Trainer of a recipe, without training."""
    import lightning as L
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
        RichProgressBar,
    )
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from omegaconf import OmegaConf

    import zoo
    from zoo.registry import get_spec

    run_dir = Path(run_dir)
    check_values(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    spec = get_spec(cfg.model.name)
    row = _task_row(cfg, spec)
    context = cfg.model.get("kwargs", {}).get("context_length")  # a language model's context, as built
    data = row.part("data_module")(cfg.data, dataclasses.replace(spec, input_size=(context,)) if context else spec, seed=cfg.seed)
    num_classes = cfg.model.num_classes or data.num_classes
    if num_classes != data.num_classes:
        raise DataError(
            f"model.num_classes={cfg.model.num_classes} but the data has {data.num_classes} classes "
            f"({', '.join(data.classes[:5])}{', ...' if data.num_classes > 5 else ''}); remove the override"
        )
    labels = tuple(data.classes) if row.named_classes else None
    kwargs = OmegaConf.to_container(cfg.model.kwargs, resolve=True)
    size = getattr(data, "input_size", None)
    if spec.fixed_input_size and row.name == "segmentation" and "img_size" not in kwargs and size and size[-1] != spec.input_size[-1]:
        kwargs["img_size"] = size[-1]  # a segmenter whose attention is sized for its input is built for the data's
    model = zoo.load(
        cfg.model.name,
        pretrained=cfg.model.pretrained,
        num_classes=num_classes,
        labels=labels if cfg.model.pretrained else None,  # classes the weights know keep their rows
        weights=cfg.model.get("weights"),
        **kwargs,
    )
    model.zoo_spec = dataclasses.replace(model.zoo_spec, labels=labels, **_spec_preprocessing(data))
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    options = {k: v for k, v in cfg.task.items() if k != "kind"}
    task = row.part("lightning_module").for_data(model, data, optim=optim, **options)

    from zoo.plugins.base import build as build_plugins

    plugins = build_plugins(OmegaConf.to_container(cfg.plugins, resolve=True) if cfg.get("plugins") else {}, row.name)
    if plugins:
        print("plugins: " + ", ".join(p.describe() for p in plugins))

    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs["precision"] = _precision(trainer_kwargs.get("precision", "auto"))
    best = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=row.monitor,
        mode=row.mode,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    # last.ckpt is what resume=last continues from, so it follows every epoch; Lightning >= 2.6's save_last only
    # rewrites it when the best checkpoint changes, which would resume from the best epoch and lose the later ones.
    last = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    from zoo.tasks.base import RandomStateInCheckpoint

    all_callbacks = [best, last, RandomStateInCheckpoint(), LearningRateMonitor(logging_interval="step"), *plugins, *callbacks]
    nonfinite_steps = cfg.early_stopping.get("nonfinite_steps", 3)
    if nonfinite_steps:
        from zoo.tasks.base import DivergenceGuard

        all_callbacks.insert(0, DivergenceGuard(nonfinite_steps, configured_lr=cfg.optim.get("lr")))
    if trainer_kwargs.get("enable_progress_bar", True):
        all_callbacks.append(RichProgressBar(leave=True))
    stop = cfg.early_stopping
    if stop.get("patience"):
        monitor = stop.monitor or row.monitor
        mode = stop.mode or (row.mode if monitor == row.monitor else _mode(monitor))
        all_callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=stop.patience))
    loggers = [
        CSVLogger(save_dir=str(run_dir), name="logs", version=""),
        TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False),
    ]
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        trainer = L.Trainer(
            **trainer_kwargs,
            default_root_dir=str(run_dir),
            callbacks=all_callbacks,
            logger=loggers,
            plugins=[_atomic_checkpoint_io()],
        )
    except (MisconfigurationException, TypeError, ValueError) as e:
        raise ConfigError(f"Lightning refused the trainer settings: {' '.join(str(e).split())}") from None
    return Prepared(trainer, task, data, model, best, row)


def _mode(metric: str) -> str:
    """Whether a larger value of ``metric`` is better (accuracy, mAP) or a smaller one (losses)."""
    return "min" if "loss" in metric else "max"


def run(cfg, run_dir: str | Path, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; on rank 0 save, evaluate and return the summary."""
    import torch
    from omegaconf import OmegaConf

    import zoo

    started = time.perf_counter()
    run_dir = Path(run_dir)
    resume = _resume_path(cfg)  # a wrong resume= fails before anything is built
    p = prepare(cfg, run_dir, callbacks)
    trainer, task, data, model, best = p.trainer, p.task, p.data, p.model, p.best
    if trainer.is_global_zero:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        print(f"data: {data.describe()}; model: {cfg.model.name} ({sum(p.numel() for p in model.parameters()):,} params)")
    trainer.fit(task, datamodule=data, ckpt_path=resume, weights_only=True)  # a resumed file never runs code
    if not trainer.is_global_zero:
        return {}

    checkpoint = best.best_model_path or str(run_dir / "checkpoints" / "last.ckpt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    task.load_state_dict(state)
    final = task.eval_model().cpu().eval()
    final.zoo_spec = getattr(final, "zoo_spec", model.zoo_spec)  # a plugin that rebuilt the model (ann2snn) set its own
    zoo.save(final, run_dir / "model")
    if state_of(final).quantization:  # evaluate the int8 model zoo.load gives, not the QAT graph
        final = zoo.load(run_dir / "model")
    title = f"{cfg.recipe}: {cfg.model.name} on {cfg.data.source} (val)"
    row = p.row
    summary = {"recipe": cfg.recipe, "model": cfg.model.name, "task": row.name, "data": data.describe(),
               "epochs": trainer.current_epoch}
    metrics = row.part("evaluate")(final, data.val_dataloader(), data.classes, run_dir / "eval", title=title)
    summary.update({key: metrics[name] for key, name in row.summary.items() if name in metrics})
    summary.update(_dynamic_confidence(final, data, run_dir / "eval"))
    summary.update({
        "best_checkpoint": checkpoint,
        "run_dir": str(run_dir),
        "model_dir": str(run_dir / "model"),
        "eval_dir": str(run_dir / "eval"),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "machine": machine(),
    })
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def _dynamic_confidence(model, data, out_dir: Path) -> dict[str, Any]:
    """For a spiking classifier over several steps: Dynamic Confidence early exit on the val data, its threshold
    chosen by 2-fold cross-validation there (zoo.snn); nothing for other models."""
    from zoo.snn import evaluate_dynamic_confidence, is_spiking

    if not is_spiking(model) or model.timesteps < 2:
        return {}
    r = evaluate_dynamic_confidence(model, data.val_dataloader(), out_dir=out_dir)
    return {"dynamic_confidence": {"threshold": r.threshold, "val_top1": r.accuracy, "average_steps": r.average_steps,
                                   "timesteps": r.timesteps}}


def _spec_preprocessing(data) -> dict[str, Any]:
    pre = data.preprocessing()
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in pre.items()}


def record_result(recipe: str, summary: dict[str, Any], command: str) -> Path:
    """Write a run's measured result into the recipe's header block (between the measured markers)."""
    path = recipe_path(recipe)
    m = summary["machine"]
    where = f"{m['gpu']}" if m.get("gpu") else f"{m['cpu']}, {m['threads']} CPU threads"
    block = "\n".join(
        [
            f"{MEASURED_START} (written by `zoo train recipe={recipe} record_result=true`; do not edit by hand)",
            f"# {_headline(summary)}  after {summary['epochs']} epochs",
            f"# wall time: {summary['wall_time_s']:.0f} s on {where}; torch {m['torch']}, lightning {m['lightning']}, {m['date']}",
            f"# command: {command}",
            MEASURED_END,
        ]
    )
    return replace_marked_block(path, MEASURED_START, MEASURED_END, block)


# -- the entry point -------------------------------------------------------------------------------


_FAILURES: list[BaseException] = []  # an error raised inside Hydra's job, re-raised by main() for the CLI to report


def _hydra_task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = run(cfg, run_dir)
        if summary:
            _print_summary(summary)
            if cfg.get("record_result"):
                overrides = " ".join(o for o in HydraConfig.get().overrides.task if not o.startswith("out_dir="))
                path = record_result(cfg.recipe, summary, f"zoo train {overrides}".strip())
                print(f"recorded the result in {path}")
    except Exception as e:  # noqa: BLE001 - Hydra would print its own traceback; main() re-raises it for the CLI
        _FAILURES.append(e)
        _drop_if_empty(run_dir)
        raise SystemExit(2) from None


def _drop_if_empty(run_dir: Path) -> None:
    """Remove the folder this process made for a run that failed before its first checkpoint (it holds only
    Hydra's config and empty logs); a folder the user named, or one with checkpoints, stays."""
    from zoo._io import claimed, remove_claimed

    if claimed(run_dir) and not any((run_dir / "checkpoints").glob("*.ckpt")):
        remove_claimed(run_dir)


def _headline(summary: dict[str, Any]) -> str:
    from zoo.task_table import TASKS

    line = TASKS[summary["task"]].headline.format(**summary)
    per = summary.get("val_loss_per_granularity")
    return line + (("  (" + "/".join(per) + ": " + "/".join(f"{v:.4f}" for v in per.values()) + ")") if per else "")


def _print_summary(summary: dict[str, Any]) -> None:
    from zoo.task_table import TASKS

    result = TASKS[summary["task"]].result.format(**summary)
    dc = summary.get("dynamic_confidence")
    if dc:
        result += (f" (Dynamic Confidence early exit: {dc['val_top1']:.2%} in {dc['average_steps']:.2f} of "
                   f"{dc['timesteps']} steps on average)")
    files = ", ".join(sorted(p.name for p in Path(summary["eval_dir"]).glob("*.png")))
    print(
        f"\n{result} after {summary['epochs']} epoch{'s' * (summary['epochs'] != 1)}, "
        f"{summary['wall_time_s']:.0f} s\n"
        f"run directory : {summary['run_dir']}\n"
        f"model         : {summary['model_dir']}  (zoo.load({summary['run_dir']!r}))\n"
        f"evaluation    : {summary['eval_dir']}/metrics.json{', ' + files if files else ''}"
    )


_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun"}


def _sweeps(overrides: Sequence[str]) -> bool:
    """Whether any override sweeps (a,b or range(...)): each job's values are checked when it runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(list(overrides)))


def _split_hydra_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Hydra flags (with their values) apart from overrides, so they may come in any order."""
    flags, overrides, it = [], [], iter(args)
    for arg in it:
        if arg.startswith("-"):
            flags.append(arg)
            if arg in _VALUE_FLAGS:
                value = next(it, None)
                if value is not None:
                    flags.append(value)
        else:
            overrides.append(arg)
    return flags, overrides


def main(argv: Sequence[str] | None = None) -> int:
    """``zoo train recipe=NAME [hydra overrides] [--cfg job] [-m]``."""
    import importlib.util

    import hydra

    args = list(sys.argv[1:] if argv is None else argv)
    recipes = [a for a in args if a.startswith("recipe=")]
    if not recipes:
        raise ConfigError(f"say which recipe to train: zoo train recipe=NAME. Recipes: {', '.join(list_recipes())}")
    recipe = recipes[-1].split("=", 1)[1]
    recipe_path(recipe)
    flags, overrides = _split_hydra_args(args)
    check_overrides(recipe, overrides)
    if not any(o.startswith("hydra.") for o in overrides) and not _sweeps(overrides):
        check_values(compose(recipe, [o for o in overrides if not o.startswith("recipe=")]))
    if SEARCHPATH not in overrides:
        overrides.insert(0, SEARCHPATH)
    # Hydra reads sys.argv (flags first: its parser takes the overrides as one positional list);
    # Lightning's DDP launcher re-runs `python -m zoo.train <the same arguments>`.
    sys.argv = [__file__, *flags, *overrides]
    sys.modules["__main__"].__spec__ = importlib.util.find_spec("zoo.train")
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("zoo_run_dir", new_run_dir, replace=True)  # conf/base.yaml's hydra.run.dir
    _FAILURES.clear()
    try:
        hydra.main(version_base="1.3", config_path=str(recipes_dir()), config_name=recipe)(_hydra_task)()
    except SystemExit:
        if _FAILURES:
            raise _FAILURES.pop() from None
        raise
    return 0


if __name__ == "__main__":
    from zoo.errors import ZooError

    try:
        sys.exit(main())
    except ZooError as e:
        print(f"zoo train: error: {e}", file=sys.stderr)
        sys.exit(2)
