"""Per-step metrics kept on the device and turned into numbers once per flush.

Recording a step appends tensor references to lists: no ``.item()``, no host sync, no store
write. ``drain`` stacks them and syncs once for all the steps since the last drain.
"""

from __future__ import annotations

import torch


class StepMetrics:
    """Buffers ``train/loss``, ``train/grad_norm``, ``train/penalty`` (tensors; the penalty
    only for runs with regularizers) and ``train/lr`` (floats)."""

    def __init__(self) -> None:
        self._steps: list[int] = []
        self._losses: list[torch.Tensor] = []
        self._grad_norms: list[torch.Tensor] = []
        self._lrs: list[float] = []
        self._penalties: list[torch.Tensor] = []
        self._parameter_norms: list[torch.Tensor | None] = []

    def record(
        self,
        step: int,
        loss: torch.Tensor,
        grad_norm: torch.Tensor,
        lr: float,
        penalty: torch.Tensor | None = None,
        parameter_norms: torch.Tensor | None = None,
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

    def first_nonfinite(self) -> tuple[int | None, torch.Tensor | None]:
        """The first buffered step whose loss or gradient norm is NaN/inf (one host sync),
        with that step's per-parameter gradient norms; ``(None, None)`` if all are finite."""
        if not self._steps:
            return None, None
        finite = torch.isfinite(torch.stack(self._losses) + torch.stack(self._grad_norms))
        if bool(finite.all()):
            return None, None
        index = int((~finite).nonzero()[0, 0])
        return self._steps[index], self._parameter_norms[index]

    def drain(self) -> list[tuple[str, float, int]]:
        """Every buffered point as ``(name, value, step)``, with one host sync; then empty."""
        if not self._steps:
            return []
        rows = [torch.stack(self._losses), torch.stack(self._grad_norms)]
        if self._penalties:
            rows.append(torch.stack(self._penalties))
        values = torch.stack([row.float() for row in rows]).cpu().tolist()
        losses, grad_norms = values[0], values[1]
        points = [("train/loss", v, s) for v, s in zip(losses, self._steps, strict=True)]
        points += [("train/grad_norm", v, s) for v, s in zip(grad_norms, self._steps, strict=True)]
        points += [("train/lr", v, s) for v, s in zip(self._lrs, self._steps, strict=True)]
        if self._penalties:
            points += [("train/penalty", v, s) for v, s in zip(values[2], self._steps, strict=True)]
        self._steps, self._losses, self._grad_norms, self._lrs = [], [], [], []
        self._penalties, self._parameter_norms = [], []
        return points
