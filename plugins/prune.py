"""``prune``: structural channel pruning with Torch-Pruning, down to a target share of MACs or params.

Torch-Pruning (VainF/Torch-Pruning, MIT) traces the dependency graph, so removing a conv's output
channels also removes the matching BatchNorm entries and the next layer's inputs: the result is a
genuinely smaller dense model. Channels are ranked globally by magnitude, first-order Taylor
(|weight x gradient|) or BatchNorm scale, and removed in ``steps`` rounds spread between the ``start``
and ``until`` shares of training (before ``start`` the model trains dense, so the ranking sees trained
weights, as NetAdapt prunes a trained network; after ``until`` it fine-tunes). After each round the
optimizer is rebuilt for the new parameters (the learning-rate schedule follows the global step, so it
continues where it was) and the EMA restarts from the pruned weights.

The saved model records its pruned shapes in ``config.json`` (``zoo.load`` rebuilds them before loading
the weights): no pickled modules.

``mode=unstructured`` (global magnitude: the smallest ``ratio`` of all conv/linear weights) and
``mode=2:4`` (in every group of 4 consecutive input weights the 2 smallest, the semi-structured pattern
sparse tensor cores run) zero weights instead of removing channels: masks are computed on the same
schedule and re-applied after every optimizer step (and to the EMA), so the saved weights hold the
zeros; the achieved sparsity is logged and printed. The model keeps its shape.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
from lightning.pytorch.utilities import rank_zero_info

from zoo.errors import ConfigError
from zoo.plugins.base import Plugin, restart_best
from zoo.registry import state_of

IMPORTANCE = ("magnitude", "taylor", "bn_scale")
MODES = ("channels", "unstructured", "2:4")


@dataclasses.dataclass
class PruneConfig:
    ratio: float = 0.5  # share of MACs (or params) to remove
    target: str = "macs"  # "macs" or "params"
    importance: str = "magnitude"  # magnitude, taylor (|w x grad|) or bn_scale; channels ranked globally
    steps: int = 4  # pruning rounds
    start: float = 0.0  # share of the epochs trained dense before the first round (pruning a trained model)
    until: float = 0.5  # rounds happen before this share of the epochs; the rest fine-tunes
    mode: str = "channels"  # channels (a smaller dense model), unstructured or 2:4 (zeroed weights)


class Prune(Plugin):
    name = "prune"
    order = 10
    Config = PruneConfig
    tasks = ("classification", "segmentation", "depth")
    changes = "the model's layer widths: saved and exported smaller (config.json records the pruned shapes)"

    def __init__(self, config: PruneConfig | None = None, **options) -> None:
        super().__init__(config, **options)
        c = self.config
        if not 0 < c.ratio < 1:
            raise ConfigError(f"plugins.prune.ratio is the share to remove, between 0 and 1, not {c.ratio}")
        if c.target not in ("macs", "params"):
            raise ConfigError(f"plugins.prune.target must be macs or params, not {c.target!r}")
        if c.importance not in IMPORTANCE:
            raise ConfigError(f"plugins.prune.importance must be one of {', '.join(IMPORTANCE)}, not {c.importance!r}")
        if c.mode not in MODES:
            raise ConfigError(f"plugins.prune.mode must be one of {', '.join(MODES)}, not {c.mode!r}")
        if c.steps < 1 or not 0 <= c.start < c.until <= 1:
            raise ConfigError("plugins.prune.steps must be >= 1 and 0 <= plugins.prune.start < plugins.prune.until <= 1")
        self.done = 0
        self.history: list[dict[str, float]] = []
        self.masks: dict[str, torch.Tensor] = {}

    def _measure(self, model) -> float:
        import torch_pruning as tp

        with _inference(model):
            macs, params = tp.utils.count_ops_and_params(model, self.example.to(next(model.parameters()).device))
        return float(macs if self.config.target == "macs" else params)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or hasattr(self, "example"):
            return
        c, h, w = pl_module.model.zoo_spec.input_size
        self.example = torch.randn(1, c, h, w)
        self.base = self._measure(pl_module.model)
        self.schedule = rounds(max(int(trainer.max_epochs or 1), 1), self.config.start, self.config.until, self.config.steps)
        self.on_resume(pl_module, lambda state: self._resume(state, pl_module))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "done": self.done, "history": self.history, "base": getattr(self, "base", None),
                "structure": getattr(self, "structure", None)}

    def _resume(self, state: dict, pl_module) -> None:
        """Continue a killed run: the rounds done so far, and the pruned shapes its weights have."""
        self.done, self.history = int(state["done"]), list(state["history"])
        self.base = float(state["base"]) if state.get("base") is not None else self.base
        if state.get("structure"):
            from zoo.api import apply_pruned_structure

            apply_pruned_structure(pl_module.model, state["structure"])
            state_of(pl_module.model).pruned = True
            pl_module.reset_ema()
        elif self.config.mode != "channels" and self.history:
            self.masks_from_weights = True  # the zeros are in the weights, which Lightning loads after setup

    def on_train_start(self, trainer, pl_module) -> None:
        if getattr(self, "masks_from_weights", False):
            self.masks = {n: (w != 0).to(w.dtype) for n, w in _eligible(pl_module.model).items()}
            self.masks_from_weights = False

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        """Prune on the first update of each scheduled epoch (gradients are there for Taylor importance)."""
        epoch = trainer.current_epoch
        if self.done >= len(self.schedule) or epoch < self.schedule[self.done] or self.history and self.history[-1]["epoch"] == epoch:
            return
        self.done += 1
        if self.config.mode != "channels":
            share = 0.5 if self.config.mode == "2:4" else self.config.ratio * self.done / len(self.schedule)
            self.masks = sparsity_masks(pl_module.model, share, self.config.mode)
            self.history.append({"epoch": epoch, "sparsity": share})
            return
        goal = self.base * (1 - self.config.ratio * self.done / len(self.schedule))
        self._prune_to(pl_module.model, goal)
        self.history.append({"epoch": epoch, self.config.target: self._measure(pl_module.model), "goal": goal})
        pl_module.log(f"prune/{self.config.target}_kept", self.history[-1][self.config.target] / self.base)
        model = pl_module.model
        state_of(model).pruned = True  # zoo.save records the new shapes
        from zoo.api import pruned_structure

        self.structure = pruned_structure(model)  # what a resumed run rebuilds before loading the checkpoint
        trainer.strategy.setup_optimizers(trainer)  # the pruned parameters are new tensors
        pl_module.reset_ema()
        restart_best(trainer)  # earlier checkpoints have the old shapes

    def _prune_to(self, model, goal: float) -> None:
        import torch_pruning as tp

        importance = {
            "magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "taylor": lambda: tp.importance.GroupTaylorImportance(),
            "bn_scale": lambda: tp.importance.BNScaleImportance(),
        }[self.config.importance]()
        from zoo.api import head_names

        modules = dict(model.named_modules())  # a spec may name the heads of several builds (segmentation heads)
        head = [modules[n] for n in head_names(model, model.zoo_spec) if n in modules] or _last_linear(model)
        example = self.example.to(next(model.parameters()).device)
        # small global rounds until the goal is met: MACs do not fall linearly with the channel share
        with _inference(model):  # tracing the dependency graph runs the model once
            pruner = tp.pruner.MetaPruner(model, example, importance=importance, global_pruning=True, pruning_ratio=0.9,
                                          iterative_steps=90, ignored_layers=head, round_to=8)
        for _ in range(90):
            if self._measure(model) <= goal:
                break
            pruner.step()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._apply_masks(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:  # the EMA updated after the last mask; checkpoints follow
        self._apply_masks(pl_module)

    def _apply_masks(self, pl_module) -> None:
        if not self.masks:
            return
        models = [pl_module.model] + ([pl_module.ema.module] if getattr(pl_module, "ema", None) is not None else [])
        with torch.no_grad():
            for model in models:
                for name, param in model.named_parameters():
                    mask = self.masks.get(name)
                    if mask is not None:
                        param.mul_(mask.to(param.device))

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.masks:
            zeros, total = measured_sparsity(pl_module.model, self.masks)
            rank_zero_info(f"prune: {self.config.mode} sparsity {zeros / max(total, 1):.1%} of {total:,} conv/linear weights")
            return
        if self.history:  # the last round's measurement (a later plugin, e.g. qat, may have captured the model)
            kept = self.history[-1][self.config.target] / self.base
            rank_zero_info(f"prune: {self.config.target} kept {kept:.1%} of {self.base:,.0f} ({len(self.history)} rounds, {self.config.importance})")


def rounds(epochs: int, start: float, until: float, steps: int) -> list[int]:
    """The epochs that begin with a pruning round: up to ``steps`` of them, spread evenly from the ``start`` share of
    the epochs to before the ``until`` share, at least one."""
    first = math.floor(epochs * start)
    last = max(first + 1, math.floor(epochs * until))
    return sorted({min(last - 1, first + round(k * (last - first) / steps)) for k in range(steps)})


@contextlib.contextmanager
def _inference(model):
    """Eval mode for the forwards that measure or trace the model: in train mode each would move BatchNorm's running
    statistics towards those of a random example input."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _last_linear(model) -> list:
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1:]


def _eligible(model) -> dict[str, torch.Tensor]:
    """Conv and linear weights (the tensors sparse kernels accelerate), by parameter name."""
    names = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    return {n: p for n, p in model.named_parameters() if n in names}


def sparsity_masks(model, share: float, mode: str) -> dict[str, torch.Tensor]:
    """Keep-masks (1 keeps, 0 zeroes) for ``unstructured`` (global magnitude) or ``2:4`` sparsity."""
    weights = _eligible(model)
    masks = {}
    if mode == "unstructured":
        magnitudes = torch.cat([w.detach().abs().flatten() for w in weights.values()])
        k = int(share * magnitudes.numel())
        if k == 0:
            return {}
        threshold = magnitudes.kthvalue(k).values
        return {n: (w.detach().abs() > threshold).to(w.dtype) for n, w in weights.items()}
    for name, w in weights.items():  # 2:4 along the input (reduction) dimension
        inputs = w.shape[1]
        if inputs % 4:
            continue  # e.g. depthwise or RGB-input convs: no 2:4 pattern exists
        grouped = w.detach().movedim(1, -1).reshape(-1, 4).abs()
        keep = torch.zeros_like(grouped).scatter_(1, grouped.topk(2, dim=1).indices, 1.0)
        shape = w.movedim(1, -1).shape
        masks[name] = keep.reshape(shape).movedim(-1, 1).contiguous()
    return masks


def measured_sparsity(model, masks: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Zero weights and total weights over the masked tensors, counted on the model itself."""
    params = dict(model.named_parameters())
    zeros = sum(int((params[n] == 0).sum()) for n in masks)
    return zeros, sum(params[n].numel() for n in masks)
