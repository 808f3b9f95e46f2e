"""Schema of the ``trainer`` group: how long, how big, where, and how results are kept."""

from __future__ import annotations

from dataclasses import dataclass

from trainlab.config.constraints import at_least, non_negative, one_of


@dataclass
class TrainerConfig:
    """The training loop's settings."""

    max_epochs: int = at_least(1, 20)
    batch_size: int = at_least(1, 64)
    eval_batch_size: int = at_least(1, 1024)
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    monitor: str = "val/loss"  # metric that picks the best checkpoint
    mode: str = one_of("auto", "auto", "min", "max")  # auto: min for losses and errors
    # Per-step metrics stay on the device and are sent every this many steps (and at epoch end):
    # larger is cheaper, smaller shows curves sooner.
    log_every_n_steps: int = at_least(1, 50)
    threads: int = non_negative(0)  # torch CPU threads; 0 = all cores, shared fairly in a sweep
    checkpoint: bool = True  # write checkpoints/last.pt and best.pt
    progress: str = one_of("auto", "auto", "rich", "plain", "none")  # auto: rich on a terminal
