"""Schemas of the ``regularizer`` group. Several combine: ``regularizer=[l1,l2]``.

Each option lives under its own key (``regularizer.l1.weight``), so combined options never
collide.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainlab.config.constraints import non_negative


@dataclass
class L1Config:
    """L1 penalty (lasso): weight * sum |w|; pushes weights to exactly zero."""

    weight: float = non_negative(1e-5)
    include_bias_and_norm: bool = False  # penalise biases and norm parameters too


@dataclass
class L2Config:
    """L2 penalty (ridge): weight * sum w^2 added to the loss (coupled, unlike AdamW's decay)."""

    weight: float = non_negative(1e-4)
    include_bias_and_norm: bool = False


REGULARIZER_SCHEMAS: dict[str, type] = {"l1": L1Config, "l2": L2Config}
