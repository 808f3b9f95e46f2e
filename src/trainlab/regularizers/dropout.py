"""Dropout on the hidden activations, whatever the model's own setting.

Existing dropout layers (``nn.Dropout``, ``Dropout2d``, alpha dropout, a multi-layer RNN's
dropout between layers) get the configured rate; an activation layer that has no dropout after
it gets one (it is wrapped as ``Sequential(activation, Dropout(p))``, so the indices of the
other layers, and with them the checkpoint keys, stay as they are). So
``regularizer.dropout.p`` overrides ``model.dropout``.

Only activation *modules* can be found: a model that calls ``F.relu`` in its ``forward`` gets
dropout only where it has dropout layers of its own (a transformer block's dropout layers are
set; the attention weights' own dropout rate is left as the model has it).
"""

from __future__ import annotations

from torch import nn

from trainlab.regularizers.base import Regularizer

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardswish,
    nn.Hardtanh,
)


class ActivationDropout(nn.Sequential):
    """An activation followed by the dropout the regularizer added."""


def _is_dropout(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.dropout._DropoutNd)


def _uncovered_activations(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, child name) of every activation layer not already followed by dropout.

    In a ``Sequential`` the next layer tells; another parent that holds dropout layers of its
    own (a transformer block) is taken to place them itself."""
    found = []
    for parent in model.modules():
        if isinstance(parent, ActivationDropout):
            continue
        children = list(parent.named_children())
        parent_has_dropout = any(_is_dropout(child) for _, child in children)
        for index, (name, child) in enumerate(children):
            if not isinstance(child, ACTIVATION_TYPES):
                continue
            if isinstance(parent, nn.Sequential):
                following = children[index + 1][1] if index + 1 < len(children) else None
                if following is not None and _is_dropout(following):
                    continue
            elif parent_has_dropout:
                continue
            found.append((parent, name))
    return found


def _layered_rnns(model: nn.Module) -> list[nn.RNNBase]:
    return [m for m in model.modules() if isinstance(m, nn.RNNBase) and m.num_layers > 1]


class Dropout(Regularizer):
    name = "dropout"
    needs_model = True

    def problem(self, model: nn.Module | None) -> str | None:
        if model is None:
            return None
        has_dropout = any(_is_dropout(m) for m in model.modules()) or _layered_rnns(model)
        if has_dropout or _uncovered_activations(model):
            return None
        return (
            "the model has no hidden activation layers or dropout layers to act on (a linear "
            "model has no hidden units); use a model with hidden layers (model=mlp) or "
            "another regularizer (l2, input_noise)."
        )

    def modify_model(self, model: nn.Module) -> None:
        p = float(self.options.p)
        uncovered = _uncovered_activations(model)  # before changing anything
        for module in model.modules():
            if _is_dropout(module):
                module.p = p  # type: ignore[assignment]
        for rnn in _layered_rnns(model):
            rnn.dropout = p
        for parent, name in uncovered:
            activation = getattr(parent, name)
            setattr(parent, name, ActivationDropout(activation, nn.Dropout(p)))
