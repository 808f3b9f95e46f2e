"""Every schedule of the registry, built from its real config file, gives the learning rates
of a reference: torch's own scheduler constructed by hand with the same arguments, or the
published closed form. The warm-up is checked to compose with every schedule, and every
schedule to resume from its state dict (through a ``weights_only`` checkpoint).

The run: 10 epochs x 10 optimizer steps = 100 steps, optimizer.lr = 0.1.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import torch
from omegaconf import DictConfig
from torch.optim import lr_scheduler

from helpers import config_groups
from trainlab.config.schema.scheduler import SCHEDULER_SCHEMAS
from trainlab.optim.schedulers import SCHEDULERS, LRSchedule, RunLength, build_schedule

LR = 0.1
EPOCHS = 10
STEPS_PER_EPOCH = 10
TOTAL = EPOCHS * STEPS_PER_EPOCH
RUN = RunLength(STEPS_PER_EPOCH, EPOCHS)
# The validation metric plateau sees at each epoch's end: improves, stalls, improves, stalls.
METRICS = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
WARMUP_START = 0.01  # the schema's default warmup_start_factor
# What some options need so that their schedule does something within the 10 epochs.
SHORT_RUN = {"step": ["scheduler.step_size=3"], "multistep": ["scheduler.milestones=[3,6]"]}


@cache
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    from trainlab.config.compose import compose_config

    return compose_config([*overrides, f"trainer.max_epochs={EPOCHS}", f"optimizer.lr={LR}"])


def composed(name: str, *overrides: str) -> DictConfig:
    """The config of ``scheduler=name OVERRIDES`` as ``conf/`` composes (and validates) it."""
    return _composed((f"scheduler={name}", "optimizer=sgd", *overrides))


def fresh_optimizer() -> torch.optim.Optimizer:
    """SGD with momentum (so onecycle and cyclic can cycle it) on one weight."""
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2, 2))], lr=LR, momentum=0.9)


def trainlab_lrs(cfg: DictConfig) -> list[float]:
    """The rate of each of the 100 steps, driven exactly as the training loop drives it."""
    optimizer = fresh_optimizer()
    schedule = build_schedule(cfg.scheduler, optimizer, RUN, cfg.trainer)
    return drive(optimizer, schedule, RUN.total_steps)


def drive(optimizer: torch.optim.Optimizer, schedule: LRSchedule, steps: int) -> list[float]:
    lrs = []
    for step in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_batch()
        if (step + 1) % STEPS_PER_EPOCH == 0:
            epoch = (step + 1) // STEPS_PER_EPOCH
            schedule.after_epoch({"val/loss": METRICS[epoch - 1]})
    return lrs


def torch_lrs(
    make: Callable[[torch.optim.Optimizer], Any], per: str, metrics: list[float] | None = None
) -> list[float]:
    """The rates of torch's scheduler ``make(optimizer)``, stepped per ``epoch`` or ``step``."""
    optimizer = fresh_optimizer()
    scheduler = make(optimizer)
    lrs = []
    for epoch in range(EPOCHS):
        for _ in range(STEPS_PER_EPOCH):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if per == "step":
                scheduler.step()
        if per == "epoch":
            scheduler.step(*([] if metrics is None else [metrics[epoch]]))
    return lrs


def per_step(epoch_values: list[float]) -> list[float]:
    """A per-epoch sequence as the rate of each step."""
    return [value for value in epoch_values for _ in range(STEPS_PER_EPOCH)]


def warmup_ramp(target: float, steps: int) -> list[float]:
    """Linear warm-up from target x start factor, reaching target at ``steps``."""
    return [target * (WARMUP_START + (1 - WARMUP_START) * t / steps) for t in range(steps)]


def warmup_cosine_formula(warmup: int, eta_min: float) -> list[float]:
    """Warm-up + cosine closed form (as in HF ``get_cosine_schedule_with_warmup``)."""
    rest = TOTAL - warmup
    cosine = [
        eta_min + (LR - eta_min) * (1 + math.cos(math.pi * t / rest)) / 2 for t in range(rest)
    ]
    return warmup_ramp(LR, warmup) + cosine


# (scheduler, overrides, reference): every option of the registry appears at least once.
CASES: list[Any] = [
    pytest.param("none", [], lambda: [LR] * TOTAL, id="none"),
    pytest.param("constant", [], lambda: [LR] * TOTAL, id="constant"),
    pytest.param(
        "step",
        ["scheduler.step_size=3"],
        lambda: torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.1), "epoch"),
        id="step-per-epoch",
    ),
    pytest.param(
        "step",
        ["scheduler.step_size=3", "scheduler.interval=step", "scheduler.gamma=0.5"],
        lambda: torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=30, gamma=0.5), "step"),
        id="step-per-step",
    ),
    pytest.param(
        "multistep",
        ["scheduler.milestones=[3,7]"],
        lambda: torch_lrs(lambda o: lr_scheduler.MultiStepLR(o, [3, 7], gamma=0.1), "epoch"),
        id="multistep-per-epoch",
    ),
    pytest.param(
        "multistep",
        ["scheduler.milestones=[2,5]", "scheduler.interval=step"],
        lambda: torch_lrs(lambda o: lr_scheduler.MultiStepLR(o, [20, 50], gamma=0.1), "step"),
        id="multistep-per-step",
    ),
    pytest.param(
        "exponential",
        [],
        lambda: torch_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), "epoch"),
        id="exponential-per-epoch",
    ),
    pytest.param(
        "exponential",
        ["scheduler.interval=step"],
        lambda: [LR * 0.9 ** (t / STEPS_PER_EPOCH) for t in range(TOTAL)],  # gamma per epoch
        id="exponential-per-step",
    ),
    pytest.param(
        "cosine",
        ["scheduler.eta_min=0.001"],
        lambda: torch_lrs(
            lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001), "epoch"
        ),
        id="cosine-per-epoch",
    ),
    pytest.param(
        "cosine",
        ["scheduler.interval=step"],
        lambda: [LR * (1 + math.cos(math.pi * t / TOTAL)) / 2 for t in range(TOTAL)],
        id="cosine-per-step",
    ),
    pytest.param(
        "cosine_warm_restarts",
        ["scheduler.cycle_epochs=2", "scheduler.cycle_multiplier=2"],
        lambda: torch_lrs(
            lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=20, T_mult=2), "step"
        ),
        id="cosine_warm_restarts",
    ),
    pytest.param(
        "warmup_cosine",
        ["scheduler.warmup_epochs=1.5", "scheduler.eta_min=0.001"],
        lambda: warmup_cosine_formula(warmup=15, eta_min=0.001),
        id="warmup_cosine",
    ),
    pytest.param(
        "onecycle",
        [],
        lambda: torch_lrs(lambda o: lr_scheduler.OneCycleLR(o, max_lr=LR, total_steps=100), "step"),
        id="onecycle",
    ),
    pytest.param(
        "onecycle",
        ["scheduler.max_lr=0.5", "scheduler.anneal_strategy=linear", "scheduler.three_phase=true"],
        lambda: torch_lrs(
            lambda o: lr_scheduler.OneCycleLR(
                o, max_lr=0.5, total_steps=100, anneal_strategy="linear", three_phase=True
            ),
            "step",
        ),
        id="onecycle-three-phase",
    ),
    pytest.param(
        "plateau",
        ["scheduler.patience=1"],
        lambda: torch_lrs(
            lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="min", factor=0.1, patience=1),
            "epoch",
            METRICS,
        ),
        id="plateau",
    ),
    *[
        pytest.param(
            "cyclic",
            ["scheduler.up_epochs=1.5", "scheduler.down_epochs=1", f"scheduler.mode={mode}"],
            lambda mode=mode: torch_lrs(
                lambda o: lr_scheduler.CyclicLR(
                    o,
                    base_lr=LR / 4,  # base_lr null: max_lr / 4
                    max_lr=LR,  # max_lr null: optimizer.lr
                    step_size_up=15,
                    step_size_down=10,
                    mode=mode,
                    gamma=0.9 ** (1 / STEPS_PER_EPOCH),  # 0.9 per epoch
                ),
                "step",
            ),
            id=f"cyclic-{mode}",
        )
        for mode in ("triangular", "triangular2", "exp_range")
    ],
    pytest.param(
        "polynomial",
        ["scheduler.power=2.0"],
        lambda: per_step([LR * (1 - epoch / EPOCHS) ** 2 for epoch in range(EPOCHS)]),
        id="polynomial-per-epoch",
    ),
    pytest.param(
        "polynomial",
        ["scheduler.power=0.5", "scheduler.interval=step"],
        lambda: torch_lrs(
            lambda o: lr_scheduler.PolynomialLR(o, total_iters=100, power=0.5), "step"
        ),
        id="polynomial-per-step",
    ),
]


def test_registry_schemas_and_config_files_agree() -> None:
    assert set(SCHEDULERS) == set(SCHEDULER_SCHEMAS) == set(config_groups()["scheduler"])


def test_every_scheduler_has_a_reference_case() -> None:
    covered = {case.values[0] for case in CASES}
    missing = sorted(set(SCHEDULERS) - covered)
    assert not missing, f"add a reference case for {missing} to CASES"


@pytest.mark.parametrize(("name", "overrides", "reference"), CASES)
def test_the_schedule_equals_its_reference(
    name: str, overrides: list[str], reference: Callable[[], list[float]]
) -> None:
    cfg = composed(name, *overrides)
    assert cfg.scheduler.name == name
    assert trainlab_lrs(cfg) == pytest.approx(reference(), rel=1e-9, abs=1e-15)


def test_a_warm_up_before_step_decay_follows_the_closed_form() -> None:
    cfg = composed(
        "step", "scheduler.step_size=3", "scheduler.interval=step", "scheduler.warmup_epochs=2"
    )
    # 20 warm-up steps, then x0.1 every 30 steps counted from the warm-up's end.
    expected = warmup_ramp(LR, 20) + [LR * 0.1 ** ((t - 20) // 30) for t in range(20, TOTAL)]
    assert trainlab_lrs(cfg) == pytest.approx(expected, rel=1e-9)


def test_cosine_with_a_warm_up_is_warmup_cosine() -> None:
    warmed = composed("cosine", "scheduler.interval=step", "scheduler.warmup_epochs=1.5")
    preset = composed("warmup_cosine", "scheduler.warmup_epochs=1.5")
    assert trainlab_lrs(warmed) == pytest.approx(trainlab_lrs(preset), rel=1e-12)
    assert trainlab_lrs(warmed) == pytest.approx(warmup_cosine_formula(15, 0.0), rel=1e-9)


def test_a_warm_up_before_onecycle_rises_to_its_start_then_runs_the_cycle() -> None:
    cfg = composed("onecycle", "scheduler.warmup_epochs=2")
    optimizer = fresh_optimizer()
    cycle = lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=80)
    rates = []
    for _ in range(80):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        cycle.step()
    assert trainlab_lrs(cfg) == pytest.approx(warmup_ramp(LR / 25, 20) + rates, rel=1e-9)


def test_plateau_warms_up_per_step_and_then_watches_the_metric() -> None:
    cfg = composed("plateau", "scheduler.patience=1", "scheduler.warmup_epochs=1.5")
    # The warm-up ends inside epoch 2; plateau sees the metric from epoch 2's end on.
    optimizer = fresh_optimizer()
    plateau = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=1)
    after: list[float] = []
    for epoch in range(1, EPOCHS):
        after += [optimizer.param_groups[0]["lr"]] * STEPS_PER_EPOCH
        plateau.step(METRICS[epoch])
    expected = warmup_ramp(LR, 15) + [LR] * 5 + after[STEPS_PER_EPOCH:]  # epochs 3..10
    assert trainlab_lrs(cfg) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_the_warm_up_composes_with_every_schedule(name: str) -> None:
    interval = [] if name == "plateau" else ["scheduler.interval=step"]
    extra = [*interval, *SHORT_RUN.get(name, [])]
    plain = trainlab_lrs(composed(name, *extra, "scheduler.warmup_epochs=0"))
    warmed = trainlab_lrs(composed(name, *extra, "scheduler.warmup_epochs=2"))
    start = plain[0]  # the schedule's own first rate (cyclic: base_lr; onecycle: max_lr/25)
    assert warmed[:20] == pytest.approx(warmup_ramp(start, 20), rel=1e-9)
    assert warmed[20] == pytest.approx(start, rel=1e-9)
    assert all(math.isfinite(lr) and lr > 0 for lr in warmed)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_schedule_resumes_from_a_weights_only_checkpoint(name: str) -> None:
    cfg = composed(name, "scheduler.warmup_epochs=1", *SHORT_RUN.get(name, []))
    optimizer = fresh_optimizer()
    schedule = build_schedule(cfg.scheduler, optimizer, RUN, cfg.trainer)
    uninterrupted = drive(optimizer, schedule, TOTAL)

    optimizer = fresh_optimizer()
    schedule = build_schedule(cfg.scheduler, optimizer, RUN, cfg.trainer)
    first = drive(optimizer, schedule, 40)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    optimizer = fresh_optimizer()
    schedule = build_schedule(cfg.scheduler, optimizer, RUN, cfg.trainer)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["scheduler"])
    rest = []
    for step in range(40, TOTAL):
        rest.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_batch()
        if (step + 1) % STEPS_PER_EPOCH == 0:
            schedule.after_epoch({"val/loss": METRICS[(step + 1) // STEPS_PER_EPOCH - 1]})
    assert first + rest == pytest.approx(uninterrupted, rel=1e-12)


def test_run_length_counts_optimizer_steps_after_accumulation() -> None:
    assert RunLength.from_batches(23, 5).total_steps == 115
    assert RunLength.from_batches(23, 5, accumulate_grad_batches=4).steps_per_epoch == 6
    assert RunLength.from_batches(24, 5, accumulate_grad_batches=4).steps_per_epoch == 6


def test_an_unknown_name_lists_the_known_ones() -> None:
    cfg = composed("cosine").copy()
    cfg.scheduler.name = "cosin"
    with pytest.raises(ValueError, match="known: constant, cosine"):
        build_schedule(cfg.scheduler, fresh_optimizer(), RUN, cfg.trainer)


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["scheduler=onecycle", "scheduler.interval=epoch"], "scheduler.interval", "interval=step"),
        (["scheduler=cyclic", "scheduler.interval=epoch"], "scheduler.interval", "interval=step"),
        (["scheduler=plateau", "scheduler.interval=step"], "scheduler.interval", "interval=epoch"),
        (["scheduler=multistep", "scheduler.milestones=[5,12]"], "scheduler.milestones", "never"),
        (["scheduler=multistep", "scheduler.milestones=[5,3]"], "scheduler.milestones", "increase"),
        (
            ["scheduler=multistep", "scheduler.milestones=[5,8]", "scheduler.warmup_epochs=2"],
            "scheduler.milestones",
            "after the warm-up",
        ),
        (["scheduler=cyclic", "scheduler.base_lr=0.5"], "scheduler.base_lr", "max_lr"),
        (
            ["scheduler=cyclic", "scheduler.max_lr=0.01", "scheduler.base_lr=0.01"],
            "scheduler.base_lr",
            "upside down",
        ),
        (["scheduler=onecycle", "optimizer=adagrad"], "scheduler.cycle_momentum", "=false"),
        (["scheduler=cosine", "scheduler.warmup_epochs=10"], "scheduler.warmup_epochs", "whole"),
        (["scheduler=cosine", "scheduler.warmup_epochs=0.5"], "scheduler.warmup_epochs", "step"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_combinations_that_cannot_work_are_reported(
    overrides: list[str], key: str, words: str
) -> None:
    from trainlab.config.compose import compose_config
    from trainlab.config.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        compose_config([*overrides, f"trainer.max_epochs={EPOCHS}", f"optimizer.lr={LR}"])
    messages = {problem.key: problem.message for problem in caught.value.problems}
    assert key in messages, messages
    assert words in messages[key]


@pytest.mark.parametrize(
    "overrides",
    [
        ["scheduler=onecycle", "optimizer=adagrad", "scheduler.cycle_momentum=false"],
        ["scheduler=multistep", "scheduler.milestones=[5,7]", "scheduler.warmup_epochs=2"],
        ["scheduler=plateau", "scheduler.warmup_epochs=0.5"],  # plateau warms up per step
        ["scheduler=cosine", "scheduler.warmup_epochs=0.5", "scheduler.interval=step"],
    ],
    ids=" ".join,
)
def test_workable_combinations_pass(overrides: list[str]) -> None:
    from trainlab.config.compose import compose_config

    compose_config([*overrides, f"trainer.max_epochs={EPOCHS}"])
