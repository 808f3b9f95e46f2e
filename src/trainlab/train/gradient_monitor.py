"""The gradient monitor: per-layer statistics every N steps, kept on the device.

For each weight tensor (a "layer"): gradient norm, weight norm, update-to-weight ratio
(how much the optimizer step changed it, relative to its size), and for each ReLU-family
activation the fraction of dead units (zero for every example of the batch). Written at the
end as a compact JSON artifact plus a heat-map PNG (layers x steps). Live warnings, rate
limited, come from the training doctor's own gradient detectors (exploding and vanishing
gradients, dead units) run on the samples so far, so they say what ``trainlab diagnose``
will say.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.train.heatmap import write_artifacts

log = logging.getLogger(__name__)

DEAD_UNIT_ACTIVATIONS = (nn.ReLU, nn.ReLU6)

# The live check rebuilds the doctor's history from every sample (about 10 ms): at most
# this often, so a fast run does not spend its flushes on it (a halt checks at once).
CHECK_INTERVAL_S = 2.0


class GradientMonitor:
    """Samples per-layer gradient statistics every ``every_n_steps`` optimizer steps."""

    def __init__(
        self,
        model: nn.Module,
        every_n_steps: int,
        vanishing_threshold: float,
        exploding_threshold: float,
        warn_every_n_steps: int,
    ) -> None:
        self.every_n_steps = every_n_steps
        self.vanishing_threshold = vanishing_threshold
        self.exploding_threshold = exploding_threshold
        self.warn_every_n_steps = warn_every_n_steps
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
        self.layer_names = [name.removesuffix(".weight") for name, _ in named]
        self.weights: list[torch.Tensor] = [p for _, p in named]
        self.activations = [
            (name, module)
            for name, module in model.named_modules()
            if isinstance(module, DEAD_UNIT_ACTIVATIONS)
        ]
        self.steps: list[int] = []
        self._grad_norms: list[torch.Tensor] = []
        self._weight_norms: list[torch.Tensor] = []
        self._update_ratios: list[torch.Tensor] = []
        self._dead_fractions: list[torch.Tensor] = []
        self._before: list[torch.Tensor] | None = None  # buffers, reused by every sample
        self._sampling = False  # between before_update and after_update
        self._hooks: list[Any] = []
        self._dead_now: dict[int, torch.Tensor] = {}
        self._last_warning: dict[str, int] = {}
        self._checked = 0
        self._checked_at = -math.inf  # time.monotonic() of the last check
        # Host copies of the samples already checked (grown at each check, not per step).
        self._host: dict[str, list[list[float]]] = {
            "grad_norm": [],
            "weight_norm": [],
            "update_ratio": [],
            "dead_fraction": [],
        }

    def due(self, step: int) -> bool:
        """Whether optimizer step ``step`` is sampled."""
        return self.every_n_steps > 0 and step % self.every_n_steps == 0

    def start(self) -> None:
        """Before the forward pass of a sampled step: watch the activations."""
        self._dead_now = {}
        for _, module in self.activations:
            self._hooks.append(module.register_forward_hook(self._count_dead))

    def _count_dead(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        flat = output.detach().reshape(output.shape[0], -1)
        # The first micro-batch's reading stands for the step (gradient accumulation runs
        # several forwards per step). A unit is dead when its largest output is <= 0: the
        # same as "every output <= 0", in a reduction about half as costly as all(dim=0).
        self._dead_now.setdefault(id(module), (flat.amax(dim=0) <= 0).float().mean())

    def before_update(self, step: int) -> None:
        """After backward, before the optimizer step: gradient and weight norms."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        weights = [w.detach() for w in self.weights]
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        self.steps.append(step)
        norms = torch.stack(torch._foreach_norm(grads + weights))  # one op for both
        self._grad_norms.append(norms[: len(weights)])
        self._weight_norms.append(norms[len(weights) :])
        # The weights before the update, in buffers kept from sample to sample: a fresh
        # copy each time costs new memory (page faults) for every large layer.
        if self._before is not None and _same_layout(self._before, weights):
            torch._foreach_copy_(self._before, weights)
        else:
            self._before = [w.clone() for w in weights]
        self._sampling = True
        if self._dead_now and len(self._dead_now) == len(self.activations):
            self._dead_fractions.append(
                torch.stack([self._dead_now[id(module)] for _, module in self.activations])
            )
        self._dead_now = {}

    def after_update(self) -> None:
        """After the optimizer step: the update-to-weight ratio of each layer."""
        assert self._before is not None and self._sampling
        torch._foreach_sub_(self._before, [w.detach() for w in self.weights])  # before - after
        change = torch.stack(torch._foreach_norm(self._before))
        self._update_ratios.append(change / self._weight_norms[-1].clamp_min(1e-12))
        self._sampling = False

    def check(self, at_once: bool = False) -> list[str]:
        """Warnings from the doctor's gradient detectors over every sample so far (called
        when metrics are flushed, not per step, and at most every ``CHECK_INTERVAL_S``
        seconds unless ``at_once``); at most one per kind every ``warn_every_n_steps``
        steps."""
        from trainlab.doctor.detectors import dead_units, exploding_gradients, vanishing_gradients
        from trainlab.doctor.history import GradientHistory

        if self._checked >= len(self.steps):
            return []
        now = time.monotonic()
        if not at_once and now - self._checked_at < CHECK_INTERVAL_S:
            return []
        self._checked, self._checked_at = len(self.steps), now
        for key, rows in (
            ("grad_norm", self._grad_norms),
            ("weight_norm", self._weight_norms),
            ("update_ratio", self._update_ratios),
            ("dead_fraction", self._dead_fractions),
        ):
            fresh = rows[len(self._host[key]) :]
            if fresh:
                self._host[key] += torch.stack(fresh).cpu().tolist()
        history = GradientHistory.from_summary(
            {
                "steps": self.steps[: len(self._host["grad_norm"])],
                "layers": self.layer_names,
                "grad_norm": _columns(self._host["grad_norm"]),
                "weight_norm": _columns(self._host["weight_norm"]),
                "update_ratio": _columns(self._host["update_ratio"]),
                "activations": [name for name, _ in self.activations],
                "dead_fraction": _columns(self._host["dead_fraction"]),
            }
        )
        findings = [
            exploding_gradients.from_gradients(history, self.exploding_threshold),
            vanishing_gradients.from_gradients(history, self.vanishing_threshold),
            dead_units.from_gradients(history),
        ]
        warnings: list[str] = []
        for finding in findings:
            if finding is not None:
                warnings += self._rate_limited(finding.code, self.steps[-1], finding.headline())
        for message in warnings:
            log.warning(message)
        return warnings

    def _rate_limited(self, kind: str, step: int, message: str) -> list[str]:
        last = self._last_warning.get(kind)
        if last is not None and step - last < self.warn_every_n_steps:
            return []
        self._last_warning[kind] = step
        return [message]

    def summary(self) -> dict[str, Any]:
        """Everything sampled, as plain lists: layers x steps matrices."""

        def matrix(rows: list[torch.Tensor]) -> list[list[float | None]]:
            if not rows:
                return []
            return [[_finite(v) for v in col] for col in torch.stack(rows).T.cpu().tolist()]

        return {
            "steps": self.steps,
            "layers": self.layer_names,
            "grad_norm": matrix(self._grad_norms),
            "weight_norm": matrix(self._weight_norms),
            "update_ratio": matrix(self._update_ratios),
            "activations": [name for name, _ in self.activations],
            "dead_fraction": matrix(self._dead_fractions),
        }

    def write(self, folder: Path) -> list[Path]:
        """``gradients.json`` and ``gradient_heatmap.png`` in ``folder`` (nothing if empty)."""
        if not self.steps:
            return []
        return write_artifacts(self.summary(), folder)


def _same_layout(buffers: list[torch.Tensor], tensors: list[torch.Tensor]) -> bool:
    """Whether ``buffers`` can take a copy of ``tensors`` as they are."""
    return all(
        b.shape == t.shape and b.dtype == t.dtype and b.device == t.device
        for b, t in zip(buffers, tensors, strict=True)
    )


def _columns(rows: list[list[float]]) -> list[list[float | None]]:
    """Samples x layers rows as layers x samples (the artifact's layout)."""
    return [[_finite(v) for v in column] for column in zip(*rows, strict=True)] if rows else []


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
