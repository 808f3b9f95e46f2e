"""Gradient measurement, clipping and the non-finite check, all on the device.

One ``_foreach_norm`` gives every parameter's gradient norm; the global norm, the clipping
coefficient and the "was it clipped" flag are computed from it without a host sync.
"""

from __future__ import annotations

import math

import torch


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient (``trainer.on_nonfinite``)."""


class GradientMeasure:
    """One step's gradient figures, as tensors on the device. The global norm is computed
    only when something needs it this step (clipping, skip mode); otherwise the per-parameter
    norms are kept and the global norms of many steps are computed at once at the next flush
    (:class:`~trainlab.train.step_metrics.StepMetrics`): one op per step instead of three."""

    def __init__(
        self,
        parameter_norms: list[torch.Tensor],
        norm_type: float,
        clipped: torch.Tensor | None = None,
        total_norm: torch.Tensor | None = None,
    ) -> None:
        self.parameter_norm_list = parameter_norms  # one 0-d tensor per parameter
        self.norm_type = norm_type
        self.clipped = clipped  # bool: clipping changed the gradient (None: no clipping)
        self._total = total_norm

    @property
    def total_norm(self) -> torch.Tensor:
        """The global norm before clipping."""
        if self._total is None:
            self._total = total_norm_of(self.parameter_norm_list, self.norm_type)
        return self._total

    @property
    def computed_total(self) -> torch.Tensor | None:
        """The global norm if this step already needed it, else None."""
        return self._total

    @property
    def parameter_norms(self) -> torch.Tensor:
        """(number of parameters with a gradient,)"""
        return torch.stack(self.parameter_norm_list)


def total_norm_of(parameter_norms: list[torch.Tensor], norm_type: float) -> torch.Tensor:
    if not parameter_norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(parameter_norms), norm_type)


def measure_and_clip(
    grads: list[torch.Tensor],
    max_norm: float | None = None,
    norm_type: float = 2.0,
    clip_value: float | None = None,
    need_total: bool = False,
) -> GradientMeasure:
    """Measure ``grads`` and clip them in place (by global norm and/or by value)."""
    if not grads:
        zero = torch.zeros(())
        return GradientMeasure([zero], norm_type, None, zero)
    norms = list(torch._foreach_norm(grads, norm_type))
    total: torch.Tensor | None = None
    if need_total or max_norm is not None or clip_value is not None:
        total = total_norm_of(norms, norm_type)
    clipped: torch.Tensor | None = None
    if max_norm is not None:
        assert total is not None
        # As torch.nn.utils.clip_grad_norm_: scale by max_norm / total when total exceeds it.
        coefficient = (max_norm / (total + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(grads, coefficient)
        clipped = total > max_norm
    if clip_value is not None:
        largest = torch.stack(torch._foreach_norm(grads, math.inf)).max()
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)
        by_value = largest > clip_value
        clipped = by_value if clipped is None else clipped | by_value
    return GradientMeasure(norms, norm_type, clipped, total)


def describe_nonfinite(
    step: int,
    parameter_norms: torch.Tensor | None,
    parameter_names: list[str],
    last_finite_loss: float | None,
) -> str:
    """The halt message: the first bad step, the first layer whose gradient went bad, and the
    last finite loss."""
    layer = "unknown"
    if parameter_norms is not None:
        bad = (~torch.isfinite(parameter_norms)).nonzero().flatten().tolist()
        if bad and bad[0] < len(parameter_names):
            layer = parameter_names[bad[0]]
        elif not bad:
            layer = "none (the loss itself was not finite)"
    last = "none" if last_finite_loss is None else f"{last_finite_loss:.6g}"
    return (
        f"training diverged: the first non-finite loss or gradient was at step {step}; first "
        f"layer with a non-finite gradient: {layer}; last finite loss: {last}. Try a lower "
        "optimizer.lr, trainer.clip_grad_norm=1.0, or trainer.on_nonfinite=skip."
    )
