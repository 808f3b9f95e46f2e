"""The convolutional network for images ``(channels, height, width)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainlab.models.layers import activation, has_shift, sequential

# Pooling stops once the feature maps are this small: a deep stack stays valid on small images
# (8x8 digits), and instance norm needs more than one value per map.
SMALLEST_POOLED_SIZE = 2


def image_norm(kind: str, channels: int, groups: int) -> nn.Module | None:
    """A normalisation of ``(N, C, H, W)`` feature maps, or None for ``none``."""
    if kind == "none":
        return None
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {kind!r}; known: none, batch, group, instance")


def pooling(kind: str) -> nn.Module | None:
    """A 2x2 downsampling layer, or None for ``none``."""
    if kind == "none":
        return None
    if kind == "max":
        return nn.MaxPool2d(2)
    if kind == "avg":
        return nn.AvgPool2d(2)
    raise ValueError(f"unknown pooling {kind!r}; known: max, avg, none")


class ConvNet(nn.Module):
    """Conv blocks (conv -> norm -> activation -> spatial dropout -> 2x2 pool), then a global
    average pool and a linear head, so the head does not depend on the image size."""

    def __init__(self, cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"model=cnn needs images shaped (channels, height, width), got {input_shape}"
            )
        self.input_shape = tuple(input_shape)
        channels, height, width = input_shape
        blocks: list[nn.Module] = []
        for out_channels in map(int, cfg.channels):
            pool = pooling(cfg.pool) if min(height, width) >= 2 * SMALLEST_POOLED_SIZE else None
            blocks.append(
                sequential(
                    nn.Conv2d(
                        channels,
                        out_channels,
                        int(cfg.kernel_size),
                        padding="same",
                        bias=not has_shift(cfg.norm),
                    ),
                    image_norm(cfg.norm, out_channels, int(cfg.norm_groups)),
                    activation(cfg.activation),
                    # Dropout2d zeroes whole channels: neighbouring pixels are correlated, so
                    # zeroing single values would hardly regularise.
                    nn.Dropout2d(cfg.dropout) if cfg.dropout > 0 else None,
                    pool,
                )
            )
            if pool is not None:
                height, width = height // 2, width // 2
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_outputs)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Accept flattened rows too, as long as each has the right number of values.
        images = images.reshape(images.shape[0], *self.input_shape)
        return self.head(self.features(images))


def build_cnn(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """A convolutional network for images of ``input_shape`` = (channels, height, width)."""
    return ConvNet(cfg, input_shape, num_outputs)
