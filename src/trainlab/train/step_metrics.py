"""Per-step metrics kept on the device and turned into numbers once per flush.

Recording a step appends tensor references to lists: no ``.item()``, no host sync, no store
write. ``drain`` stacks them, computes the global gradient norms of all buffered steps at
once, and syncs once for all the steps since the last drain; the same numbers tell whether
a step went non-finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Drained:
    """One flush: the points, and the first step whose loss or gradient norm was not finite
    (with that step's per-parameter gradient norms, to name the layer)."""

    points: list[tuple[str, float, int]]
    nonfinite_step: int | None = None
    nonfinite_parameter_norms: torch.Tensor | None = None


class StepMetrics:
    """Buffers ``train/loss``, ``train/grad_norm``, ``train/penalty`` (tensors; the penalty
    only for runs with regularizers) and ``train/lr`` (floats).

    A step's gradient norm is given either as the global norm (a 0-d tensor) or, cheaper in
    the hot loop, as its per-parameter norms, from which the global norm is computed at the
    drain for all buffered steps in one op.

    ``reduce_losses`` (a data-parallel run: the mean over the ranks) combines the buffered
    losses of every rank at the drain, one collective per flush; the gradient norms are
    those of the already averaged gradients, the same on every rank."""

    def __init__(
        self,
        norm_type: float = 2.0,
        reduce_losses: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.norm_type = norm_type
        self.reduce_losses = reduce_losses
        self._steps: list[int] = []
        self._losses: list[torch.Tensor] = []
        self._grad_norms: list[torch.Tensor | None] = []
        self._lrs: list[float] = []
        self._penalties: list[torch.Tensor] = []
        self._parameter_norms: list[list[torch.Tensor] | torch.Tensor | None] = []

    def record(
        self,
        step: int,
        loss: torch.Tensor,
        grad_norm: torch.Tensor | None,
        lr: float,
        penalty: torch.Tensor | None = None,
        parameter_norms: list[torch.Tensor] | torch.Tensor | None = None,
    ) -> None:
        self._steps.append(step)
        self._losses.append(loss)
        self._grad_norms.append(grad_norm)
        self._lrs.append(lr)
        if penalty is not None:
            self._penalties.append(penalty)
        self._parameter_norms.append(parameter_norms)

    def __len__(self) -> int:
        return len(self._steps)

    def drain(self) -> list[tuple[str, float, int]]:
        """Every buffered point as ``(name, value, step)``, with one host sync; then empty."""
        return self.drain_checked().points

    def drain_checked(self) -> Drained:
        """:meth:`drain`, plus the first non-finite step found in the same numbers."""
        if not self._steps:
            return Drained([])
        steps = self._steps
        losses_row = torch.stack(self._losses).float()
        if self.reduce_losses is not None:
            losses_row = self.reduce_losses(losses_row)
        rows = [losses_row, self._global_norms().float()]
        if self._penalties:
            rows.append(torch.stack(self._penalties).float())
        values = torch.stack(rows).cpu().tolist()
        losses, grad_norms = values[0], values[1]
        drained = Drained(
            [("train/loss", v, s) for v, s in zip(losses, steps, strict=True)]
            + [("train/grad_norm", v, s) for v, s in zip(grad_norms, steps, strict=True)]
            + [("train/lr", v, s) for v, s in zip(self._lrs, steps, strict=True)]
        )
        if self._penalties:
            drained.points += [
                ("train/penalty", v, s) for v, s in zip(values[2], steps, strict=True)
            ]
        for index, (loss, norm) in enumerate(zip(losses, grad_norms, strict=True)):
            if not (math.isfinite(loss) and math.isfinite(norm)):
                drained.nonfinite_step = steps[index]
                norms = self._parameter_norms[index]
                drained.nonfinite_parameter_norms = (
                    torch.stack(norms) if isinstance(norms, list) else norms
                )
                break
        self._steps, self._losses, self._grad_norms, self._lrs = [], [], [], []
        self._penalties, self._parameter_norms = [], []
        return drained

    def _global_norms(self) -> torch.Tensor:
        """The global gradient norm of every buffered step, as one tensor."""
        given = self._grad_norms
        if all(norm is not None for norm in given):
            return torch.stack(given)  # type: ignore[arg-type]
        per_step = self._parameter_norms
        sizes = {len(norms) if isinstance(norms, list) else -1 for norms in per_step}
        if len(sizes) == 1 and next(iter(sizes)) > 0:  # the usual case: one op for all steps
            flat = torch.stack([norm for norms in per_step for norm in norms])  # type: ignore[union-attr]
            by_step = flat.reshape(len(per_step), -1)
            return torch.linalg.vector_norm(by_step, self.norm_type, dim=1)
        totals = []
        for norm, norms in zip(given, per_step, strict=True):
            if norm is None:
                stacked = torch.stack(norms) if isinstance(norms, list) else norms
                norm = (
                    self._losses[0].new_zeros(())
                    if stacked is None
                    else torch.linalg.vector_norm(stacked, self.norm_type)
                )
            totals.append(norm)
        return torch.stack(totals)
