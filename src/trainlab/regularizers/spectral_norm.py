"""Spectral normalisation (Miyato et al., 2018): every Linear and Conv weight is divided by its
largest singular value, estimated by power iteration each training step, so each layer is
1-Lipschitz. It bounds how fast the output can change with the input (smoother, more robust
models; the classic use is a GAN's discriminator) at the cost of some capacity.

``torch.nn.utils.parametrizations.spectral_norm``: the optimizer updates the original weight;
the singular-vector estimates are buffers saved in checkpoints.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from trainlab.regularizers.base import Regularizer, weight_layers


class SpectralNorm(Regularizer):
    name = "spectral_norm"
    needs_model = True

    def problem(self, model: nn.Module | None) -> str | None:
        if model is None or any(True for _ in weight_layers(model)):
            return None
        return "the model has no Linear or Conv layers to normalise."

    def modify_model(self, model: nn.Module) -> None:
        for layer in list(weight_layers(model)):
            spectral_norm(layer, n_power_iterations=int(self.options.n_power_iterations))
