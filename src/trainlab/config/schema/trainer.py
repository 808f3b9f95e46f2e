"""Schema of the ``trainer`` group: how long, how big, where, and how results are kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainlab.config.constraints import at_least, non_negative, one_of, positive


@dataclass
class EarlyStoppingConfig:
    """Stop when the monitored metric has not improved for ``patience`` epochs."""

    enabled: bool = False
    monitor: str | None = None  # None: trainer.monitor
    mode: str = one_of("auto", "auto", "min", "max")
    patience: int = non_negative(10)  # epochs without improvement before stopping
    min_delta: float = non_negative(0.0)  # smaller changes do not count as improvement
    restore_best: bool = True  # end with the best epoch's weights, not the last


@dataclass
class GradientMonitorConfig:
    """Per-layer gradient statistics every ``every_n_steps`` steps (0 = off)."""

    every_n_steps: int = non_negative(25)
    vanishing_threshold: float = positive(1e-7)  # a layer's gradient norm below this vanishes
    exploding_threshold: float = positive(1e3)  # a total gradient norm above this explodes
    warn_every_n_steps: int = at_least(1, 200)  # at most one live warning per kind this often


@dataclass
class TrainerConfig:
    """The training loop's settings."""

    max_epochs: int = at_least(1, 20)
    batch_size: int = at_least(1, 64)
    eval_batch_size: int = at_least(1, 1024)
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    # auto: ddp when torchrun started several processes, else single; ddp: one process per
    # device under torchrun (DistributedDataParallel), trainer.batch_size is the global batch.
    strategy: str = one_of("auto", "auto", "single", "ddp")
    monitor: str = "val/loss"  # metric that picks the best checkpoint
    mode: str = one_of("auto", "auto", "min", "max")  # auto: min for losses and errors
    # Per-step metrics stay on the device and are sent every this many steps (and at epoch end):
    # larger is cheaper, smaller shows curves sooner.
    log_every_n_steps: int = at_least(1, 50)
    threads: int = non_negative(0)  # torch CPU threads; 0 = all cores, shared fairly in a sweep
    checkpoint: bool = True  # write checkpoints/last.pt and best.pt
    progress: str = one_of("auto", "auto", "rich", "plain", "none")  # auto: rich on a terminal
    # Gradient management.
    clip_grad_norm: float | None = positive(None, optional=True)  # max global norm; None = off
    clip_grad_norm_type: float = positive(2.0)
    clip_grad_value: float | None = positive(None, optional=True)  # max |g| per element
    accumulate_grad_batches: int = at_least(1, 1)  # micro-batches per optimizer step
    precision: str = one_of("fp32", "fp32", "bf16", "fp16")  # fp16 needs CUDA
    compile: bool = False  # torch.compile the model (slow start, faster steps on big models)
    deterministic: bool = False  # deterministic algorithms (slower on GPU)
    on_nonfinite: str = one_of("halt", "halt", "skip")  # NaN/inf loss or gradient
    max_consecutive_skips: int = at_least(1, 10)  # with skip: halt after this many in a row
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    gradient_monitor: GradientMonitorConfig = field(default_factory=GradientMonitorConfig)
    # Extra mid-epoch checkpoints (last.pt) every this many steps; 0 = only at epoch ends.
    checkpoint_every_n_steps: int = non_negative(0)
    # Epoch-end checkpoints are skipped while the last one is younger than this (the end of
    # training, interrupts and checkpoint_every_n_steps always write). 0: every epoch.
    checkpoint_min_interval_s: float = non_negative(5.0)
    keep_last_checkpoints: int = at_least(1, 2)  # last.pt plus this many older ones
    # Debugging.
    limit_train_batches: int = non_negative(0)  # train on the first N batches only (0 = all)
    detect_anomaly: bool = False  # autograd anomaly detection: slow, names the failing op
    overfit_check: bool = False  # at the end, say whether the training loss reached ~0
