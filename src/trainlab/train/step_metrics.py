"""Per-step metrics kept on the device and turned into numbers once per flush.

Recording a step appends tensor references to lists: no ``.item()``, no host sync, no store
write. ``drain`` stacks them and syncs once for all the steps since the last drain.
"""

from __future__ import annotations

import torch


class StepMetrics:
    """Buffers ``train/loss``, ``train/grad_norm`` (tensors) and ``train/lr`` (floats)."""

    def __init__(self) -> None:
        self._steps: list[int] = []
        self._losses: list[torch.Tensor] = []
        self._grad_norms: list[torch.Tensor] = []
        self._lrs: list[float] = []

    def record(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor, lr: float) -> None:
        self._steps.append(step)
        self._losses.append(loss)
        self._grad_norms.append(grad_norm)
        self._lrs.append(lr)

    def __len__(self) -> int:
        return len(self._steps)

    def drain(self) -> list[tuple[str, float, int]]:
        """Every buffered point as ``(name, value, step)``, with one host sync; then empty."""
        if not self._steps:
            return []
        values = torch.stack([torch.stack(self._losses), torch.stack(self._grad_norms)])
        losses, grad_norms = values.float().cpu().tolist()
        points = [("train/loss", v, s) for v, s in zip(losses, self._steps, strict=True)]
        points += [("train/grad_norm", v, s) for v, s in zip(grad_norms, self._steps, strict=True)]
        points += [("train/lr", v, s) for v, s in zip(self._lrs, self._steps, strict=True)]
        self._steps, self._losses, self._grad_norms, self._lrs = [], [], [], []
        return points
