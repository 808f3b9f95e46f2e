"""Every optimizer of the registry, built from its real config file: it trains, it honours the
parameter groups, and its weight decay is what ``OptimizerInfo.decoupled_decay`` says.

Parametrised over ``OPTIMIZERS``, so a new entry is tested the day it is registered.
"""

from __future__ import annotations

from functools import cache

import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from helpers import config_groups
from trainlab.config.schema.optimizer import OPTIMIZER_SCHEMAS
from trainlab.optim import OPTIMIZERS, build_optimizer, parameter_groups

NAMES = sorted(OPTIMIZERS)


@cache
def _composed(name: str) -> DictConfig:
    from trainlab.config.compose import compose_config

    return compose_config([f"optimizer={name}"])


def optimizer_cfg(name: str, **values: object) -> DictConfig:
    """The optimizer node of ``optimizer=name`` as ``conf/`` composes it, with ``values`` set."""
    cfg = _composed(name).optimizer.copy()
    for key, value in values.items():
        cfg[key] = value
    return cfg


def small_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 1))


def test_registry_schemas_and_config_files_agree() -> None:
    assert set(OPTIMIZERS) == set(OPTIMIZER_SCHEMAS) == set(config_groups()["optimizer"])
    for name, info in OPTIMIZERS.items():
        assert info.name == name


@pytest.mark.parametrize("name", NAMES)
def test_each_optimizer_makes_the_loss_decrease(name: str) -> None:
    torch.manual_seed(0)
    features = torch.randn(64, 8)
    targets = torch.tanh(features @ torch.randn(8, 1))
    model = small_model()
    optimizer = build_optimizer(optimizer_cfg(name), model)
    losses = []
    for _ in range(100):
        loss = nn.functional.mse_loss(model(features), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.9 * losses[0], f"{name}: {losses[0]:.4f} -> {losses[-1]:.4f}"


@pytest.mark.parametrize("name", NAMES)
def test_the_built_class_comes_from_the_declared_package(name: str) -> None:
    optimizer = build_optimizer(optimizer_cfg(name), small_model())
    package = OPTIMIZERS[name].package.replace("-", "_")
    assert type(optimizer).__module__.split(".")[0] == package
    assert type(optimizer).__name__.lower() == name


@pytest.mark.parametrize("decay_bias_and_norm", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_spares_biases_and_norms_unless_asked(
    name: str, decay_bias_and_norm: bool
) -> None:
    model = small_model()
    with torch.no_grad():  # every parameter non-zero, so decay would show on each
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter))
    cfg = optimizer_cfg(name, weight_decay=0.1, decay_bias_and_norm=decay_bias_and_norm)
    optimizer = build_optimizer(cfg, model)

    decays = {
        id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]
    }
    for parameter_name, parameter in model.named_parameters():
        exempt = parameter.ndim < 2 and not decay_bias_and_norm
        assert decays[id(parameter)] == (0.0 if exempt else 0.1), parameter_name

    # With zero gradients only weight decay can move a parameter.
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    for parameter_name, parameter in model.named_parameters():
        moved = not torch.equal(parameter.detach(), before[parameter_name])
        exempt = parameter.ndim < 2 and not decay_bias_and_norm
        assert moved != exempt, f"{name}: {parameter_name} moved={moved}, exempt={exempt}"


def _trajectory(name: str, weight_decay: float, mode: str) -> torch.Tensor:
    """Ten steps of ``name`` on one weight matrix with fixed gradients (enough for RAdam to
    leave its un-rectified, SGD-like start).

    mode ``builtin``: the optimizer's own weight decay; ``coupled``: no decay in the optimizer,
    ``weight_decay * w`` added to the gradient by hand (L2); ``decoupled``: no decay in the
    optimizer, the weights shrunk by ``lr * weight_decay`` before each step (Loshchilov &
    Hutter's definition, AdamW)."""
    torch.manual_seed(3)
    weight = nn.Parameter(torch.randn(4, 4))
    gradients = [0.01 * torch.randn(4, 4) for _ in range(10)]
    holder = nn.Module()
    holder.weight = weight
    builtin = mode == "builtin"
    cfg = optimizer_cfg(name, weight_decay=weight_decay if builtin else 0.0)
    optimizer = build_optimizer(cfg, holder)
    for gradient in gradients:
        grad = gradient.clone()
        if mode == "coupled":
            grad += weight_decay * weight.detach()
        if mode == "decoupled":
            with torch.no_grad():
                weight.mul_(1 - cfg.lr * weight_decay)
        weight.grad = grad
        optimizer.step()
    return weight.detach().clone()


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_is_coupled_or_decoupled_as_registered(name: str) -> None:
    decay = 0.5
    builtin = _trajectory(name, decay, "builtin")
    coupled = _trajectory(name, decay, "coupled")
    decoupled = _trajectory(name, decay, "decoupled")
    # The two references must differ, or the test could not tell them apart.
    assert not torch.allclose(coupled, decoupled, rtol=0, atol=1e-6)
    expected, other = (
        (decoupled, coupled) if OPTIMIZERS[name].decoupled_decay else (coupled, decoupled)
    )
    torch.testing.assert_close(builtin, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(builtin, other, rtol=0, atol=1e-6)


def test_parameter_groups_leave_out_frozen_parameters() -> None:
    model = small_model()
    model[0].weight.requires_grad_(False)
    groups = parameter_groups(model, 0.1, decay_bias_and_norm=False)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert id(model[0].weight) not in grouped
    assert len(grouped) == sum(1 for p in model.parameters() if p.requires_grad)


def test_an_unknown_name_lists_the_known_ones() -> None:
    cfg = optimizer_cfg("adam")
    cfg.name = "adamx"
    with pytest.raises(ValueError, match="known: adabound, adadelta"):
        build_optimizer(cfg, small_model())


@pytest.mark.parametrize("name", NAMES)
def test_no_weight_decay_means_none_in_one_group(name: str) -> None:
    """Without weight decay there is one group, and its decay is 0 (AdamW's default is not)."""
    optimizer = build_optimizer(optimizer_cfg(name, weight_decay=0.0), small_model())
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad"])
@pytest.mark.parametrize(
    ("implementation", "kernel"),
    [("auto", "fused"), ("fused", "fused"), ("foreach", "foreach"), ("for_loop", "for_loop")],
)
def test_the_implementation_picks_torchs_kernel(
    name: str, implementation: str, kernel: str
) -> None:
    from trainlab.optim.optimizers import optimizer_kernel

    optimizer = build_optimizer(optimizer_cfg(name, implementation=implementation), small_model())
    assert optimizer_kernel(optimizer) == kernel  # on the CPU torch has fused kernels for all four


def test_auto_falls_back_where_torch_has_no_fused_kernel_and_fused_says_why() -> None:
    from trainlab.config.errors import ConfigError
    from trainlab.optim.optimizers import optimizer_kernel

    on_meta = nn.Linear(3, 2, device="meta")  # a device without fused kernels
    assert optimizer_kernel(build_optimizer(optimizer_cfg("adam"), on_meta)) == "default"
    with pytest.raises(ConfigError, match=r"optimizer\.implementation"):
        build_optimizer(optimizer_cfg("adam", implementation="fused"), on_meta)


def test_fused_and_default_kernels_take_the_same_steps_to_rounding() -> None:
    torch.manual_seed(0)
    inputs, targets = torch.randn(32, 8), torch.randn(32, 1)
    final = []
    for implementation in ("fused", "for_loop"):
        torch.manual_seed(1)
        model = nn.Linear(8, 1)
        optimizer = build_optimizer(optimizer_cfg("adam", implementation=implementation), model)
        for _ in range(20):
            loss = nn.functional.mse_loss(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        final.append(model.weight.detach().clone())
    assert torch.allclose(final[0], final[1], atol=1e-5)
