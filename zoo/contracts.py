"""What the tasks, plugins and exports expect of a model, declared once as typing protocols.

Families implement these by having the methods (no base class to inherit); callers test with ``isinstance``, and
``tests/test_contracts.py`` checks every registered model of each kind against its contract, so a new family that
misses a method fails there rather than deep inside a training run.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor, nn


# Where a task checkpoint keeps the weights a run ships, most preferred first: every task (zoo.tasks.base.TaskBase)
# holds its model as ``model`` and the EMA of it, when the run keeps one, as ``ema.module``.
CHECKPOINT_WEIGHTS = ("ema.module.", "model.")


@runtime_checkable
class Detector(Protocol):
    """A detection model. In eval mode ``forward(images)`` takes ``[B, 3, H, W]`` RGB in 0..1 (letterboxed) and returns
    ``[B, max_det, 6]`` rows ``(x1, y1, x2, y2, score, class)`` in input pixels, score 0 for padding rows;
    ``make_loss()`` gives the criterion :class:`~zoo.tasks.detection.DetectionTask` trains it with:
    ``criterion(outputs, targets) -> (loss, {name: value})``. A criterion whose attribute ``in_forward`` is true needs
    the targets in the training forward, ``model(images, targets)`` (DETRs build their denoising queries from them)."""

    def make_loss(self) -> nn.Module: ...


@runtime_checkable
class HasDeployForm(Protocol):
    """A model whose inference form differs from its training form (branches to fold, a training-only head to
    drop, a supernet's active sub-network to cut out): ``deploy()`` returns that form, made in place where it can be.
    Export calls it on a copy before tracing."""

    def deploy(self) -> nn.Module: ...


@runtime_checkable
class DistillableDetector(Protocol):
    """A detector a detection distillation can match head to head: ``head_outputs(images)`` gives the raw maps of its
    head branches, ``{branch: [map per level]}``, in any mode (a teacher's come from eval mode)."""

    def head_outputs(self, x: Tensor) -> dict[str, list[Tensor]]: ...


@runtime_checkable
class Elastic(Protocol):
    """A nested (MatFormer) model: ``set_granularity(g)`` switches every block to granularity ``g`` (one of
    ``s``/``m``/``l``/``xl``) or to one per layer (Mix'n'Match) in place; ``widths(g)`` gives the hidden widths it means."""

    def set_granularity(self, granularity: str | Sequence[str | int]) -> Any: ...

    def widths(self, granularity: str | Sequence[str | int]) -> list[int]: ...


@runtime_checkable
class Supernet(Protocol):
    """A Once-for-All supernet: ``set_active_subnet(ks=, e=, d=)`` switches the sub-network it runs in place (kernel and
    expansion per elastic block, depth per stage); ``get_active_subnet()`` gives that sub-network standalone."""

    def set_active_subnet(self, ks=None, e=None, d=None, **kwargs) -> Any: ...

    def get_active_subnet(self, preserve_weight: bool = True) -> nn.Module: ...
