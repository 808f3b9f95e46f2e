"""What every regularizer is: a small object built from its options that may touch the model
(once, before the optimizer is built), the loss (a penalty), the training batch (a transform)
or the step (a hook run after each optimizer step). Each part it does not touch stays None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from trainlab.data.datasets import DatasetInfo

# (features, targets) -> (features, targets), applied to training batches only.
BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
AfterStep = Callable[[], None]


@dataclass(frozen=True)
class RegularizerContext:
    """What a regularizer may need besides its options: the task and the data's shape."""

    task: str  # "classification" or "regression"
    num_classes: int  # 0 for regression
    input_shape: tuple[int, ...]  # one example: (features,), (channels, H, W) or (time, features)

    @classmethod
    def of(cls, info: DatasetInfo) -> RegularizerContext:
        """The context of a dataset described by ``info``."""
        return cls(info.task, info.num_classes, tuple(info.input_shape))


class WeightPenalty:
    """A term added to the loss: ``weight * sum(norm(p) ** power)`` over ``parameters``
    (L1: power 1, L2: squared norms). Subclasses combine norms differently (elastic net)."""

    def __init__(self, name: str, parameters: list[torch.Tensor], weight: float, power: int):
        self.name = name
        self.parameters = parameters
        self.weight = weight
        self.power = power

    def __call__(self) -> torch.Tensor:
        if self.power == 1:
            return self.weight * torch.stack(torch._foreach_norm(self.parameters, 1)).sum()
        return self.weight * torch.stack(torch._foreach_norm(self.parameters, 2)).square().sum()


class Regularizer:
    """Base class: override the parts the regularizer touches; the rest stay no-ops."""

    name: ClassVar[str]
    # Validation builds the model only for regularizers that look at it.
    needs_model: ClassVar[bool] = False

    def __init__(self, options: Any, context: RegularizerContext) -> None:
        self.options = options
        self.context = context

    def problem(self, model: nn.Module | None) -> str | None:
        """Why this regularizer cannot work with this task or ``model`` (None: it can). Called
        by validation before anything runs; ``model`` is None when it could not be built."""
        return None

    def modify_model(self, model: nn.Module) -> None:
        """Change the model in place (layers, parametrizations), before the optimizer exists."""

    def penalty(self, model: nn.Module) -> WeightPenalty | None:
        """A term for the loss, computed every step."""
        return None

    def batch_transform(self) -> BatchTransform | None:
        """A change to every training batch (never to the validation split)."""
        return None

    def after_step(self, model: nn.Module) -> AfterStep | None:
        """A hook run after every optimizer step (weight constraints)."""
        return None


def penalised_parameters(model: nn.Module, include_bias_and_norm: bool) -> list[torch.Tensor]:
    """The trainable parameters a weight penalty applies to. Biases and normalisation
    parameters (fewer than two dimensions) are left alone unless asked: penalising them
    restricts the model without reducing over-fitting."""
    return [
        p for p in model.parameters() if p.requires_grad and (p.ndim >= 2 or include_bias_and_norm)
    ]


def weight_layers(model: nn.Module) -> Iterator[nn.Module]:
    """Every Linear and Conv layer of ``model``, except the projections that
    ``nn.MultiheadAttention`` reads as raw tensors (changing those is not supported by it)."""
    inside_attention = {
        id(child)
        for module in model.modules()
        if isinstance(module, nn.MultiheadAttention)
        for child in module.modules()
    }
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.modules.conv._ConvNd) and (
            id(module) not in inside_attention
        ):
            yield module


def base_weight(layer: nn.Module) -> torch.Tensor:
    """The trainable weight tensor of a layer: its ``weight``, or the original tensor behind a
    parametrization (spectral norm, DropConnect)."""
    if parametrize.is_parametrized(layer, "weight"):
        original: torch.Tensor = layer.parametrizations.weight.original  # type: ignore[union-attr,assignment]
        return original
    weight: torch.Tensor = layer.weight  # type: ignore[assignment]
    return weight


def soft_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Targets as floats: class indices become one-hot rows (``(N, C)``, which
    ``CrossEntropyLoss`` and the focal loss accept as probabilities); float targets (binary
    probabilities, regression values, probability rows) are returned unchanged."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.one_hot(targets, num_classes).float()
    return targets
