"""Multi-process data-parallel training (``trainer.strategy=ddp`` under ``torchrun``).

torchrun starts one process per device and tells each its place in environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Every process
builds the same run from the same config; the model is wrapped in torch's
DistributedDataParallel, each rank trains on its shard of every global batch, and only rank 0
talks to MLflow and writes checkpoints.

Everything the ranks must agree on is decided from numbers they share: the per-step metrics and
a pending stop signal are all-reduced at the loop's flushes (every ``log_every_n_steps`` steps
and at epoch ends), never per step, and validation outputs are gathered once per epoch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from trainlab.config.errors import Problem

# What torchrun sets in every process it starts.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_EXAMPLE = "torchrun --standalone --nproc_per_node=2 -m trainlab train trainer.strategy=ddp"


@dataclass(frozen=True)
class Launch:
    """Where this process stands: its rank among ``world_size`` processes (one process:
    rank 0 of 1, not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False  # a process group is (to be) started

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that talks to MLflow, writes checkpoints and prints."""
        return self.rank == 0


SINGLE_PROCESS = Launch()


def _launched_by_torchrun(env: Mapping[str, str]) -> bool:
    return all(name in env for name in LAUNCH_VARIABLES)


def world_size_of(env: Mapping[str, str] = os.environ) -> int:
    """How many processes torchrun started (1 outside torchrun)."""
    try:
        return int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launch_problems(cfg: Any, env: Mapping[str, str] = os.environ) -> list[Problem]:
    """What is wrong with how this job was launched for ``trainer.strategy`` (one paragraph
    each); empty when it can start."""
    strategy = str(cfg.trainer.strategy)
    world = world_size_of(env)
    by_torchrun = _launched_by_torchrun(env)
    key = "trainer.strategy"
    if strategy == "ddp" and not by_torchrun:
        missing = [name for name in LAUNCH_VARIABLES if name not in env]
        return [
            Problem(
                key,
                "ddp trains in several processes started by torchrun, which tells each its "
                f"rank in environment variables; {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set, so this process was not "
                f"started by torchrun. Launch it with `{LAUNCH_EXAMPLE} ...` (one process per "
                "GPU, or per share of the CPU cores), or train in this one process with "
                "trainer.strategy=auto (or single).",
            )
        ]
    if strategy == "single" and world > 1:
        return [
            Problem(
                key,
                f"single trains in one process, but torchrun started {world} (WORLD_SIZE="
                f"{world}): each would train the whole run and record it separately. Use "
                "trainer.strategy=ddp (or auto) under torchrun, or run `trainlab train` "
                "without torchrun.",
            )
        ]
    if not (strategy == "ddp" or (strategy == "auto" and world > 1)):
        return []
    problems: list[Problem] = []
    batch = int(cfg.trainer.batch_size)
    if batch % world:
        lower, upper = batch // world * world, (batch // world + 1) * world
        problems.append(
            Problem(
                "trainer.batch_size",
                f"{batch} is the global batch, split evenly over the {world} processes "
                f"(each takes batch_size / {world}), but {batch} is not a multiple of {world}; "
                f"use trainer.batch_size={lower or upper} or {upper}.",
            )
        )
    if str(cfg.optimizer.lr) == "auto":
        problems.append(
            Problem(
                "optimizer.lr",
                "auto runs the learning-rate range test, which is not run under ddp (every "
                "process would run and record its own); run `trainlab lr-find OVERRIDES` "
                "first and train with its suggestion, optimizer.lr=<number>.",
            )
        )
    if str(cfg.trainer.device) == "mps":
        problems.append(
            Problem(
                "trainer.device",
                "mps has no distributed backend; ddp trains on CUDA (nccl) or the CPU (gloo).",
            )
        )
    return problems


def resolve_launch(cfg: Any, env: Mapping[str, str] = os.environ) -> Launch:
    """This process's :class:`Launch` for a config that passed :func:`launch_problems`."""
    strategy = str(cfg.trainer.strategy)
    world = world_size_of(env)
    if strategy == "single" or (strategy == "auto" and world <= 1):
        return SINGLE_PROCESS
    return Launch(
        rank=int(env["RANK"]),
        world_size=world,
        local_rank=int(env["LOCAL_RANK"]),
        distributed=True,
    )


def device_for(requested: str, launch: Launch) -> torch.device | None:
    """The device of this rank: ``cuda:LOCAL_RANK`` when the run trains on CUDA; None to
    let the usual choice (``trainer.device``) decide."""
    if not launch.distributed:
        return None
    wants_cuda = requested.startswith("cuda") or (requested == "auto" and torch.cuda.is_available())
    return torch.device("cuda", launch.local_rank) if wants_cuda else torch.device("cpu")


def start_process_group(launch: Launch, device: torch.device) -> None:
    """Join the other ranks: nccl on CUDA, gloo on the CPU."""
    if not launch.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # A rank that dies leaves the others waiting in a collective: give up after 10 minutes
    # (torchrun stops the survivors long before, with SIGTERM then SIGKILL).
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=10))


def stop_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def backend_name() -> str:
    return str(dist.get_backend()) if dist.is_initialized() else "none"


class Collective:
    """The few things the ranks compute together. Called at flush points only (every
    ``log_every_n_steps`` steps, epoch ends), which every rank reaches at the same step."""

    def __init__(self, launch: Launch, device: torch.device | None = None) -> None:
        self.rank = launch.rank
        self.world_size = launch.world_size
        # nccl moves CUDA tensors only: small flags and scores travel on the run's device.
        self.device = device or torch.device("cpu")

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of ``values`` over the ranks (a new tensor)."""
        total = values.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def stop_signal(self, local: int | None) -> int | None:
        """The signal any rank has received (the largest number), or None: all ranks stop
        together, at the same step, or none does."""
        flag = torch.tensor([local or 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        signum = int(flag.item())
        return signum or None

    def all_finite(self, value: torch.Tensor) -> bool:
        """Whether ``value`` is finite on every rank (``trainer.on_nonfinite=skip``, which
        syncs every step anyway)."""
        bad = (~torch.isfinite(value.detach())).any().to(torch.int64).reshape(1)
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return not bool(bad.item())

    def broadcast(self, value: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``value`` on every rank (a tensor on ``value``'s device)."""
        shared = value.to(self.device).contiguous()
        dist.broadcast(shared, src=0)
        return shared.to(value.device)

    def gather_rows(self, shard: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """Every rank's ``shard`` (rank r holds ``sizes[r]`` rows) concatenated in rank order."""
        longest = max(sizes)
        padded = shard.new_zeros((longest, *shard.shape[1:]))
        padded[: len(shard)] = shard
        pieces = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(pieces, padded.contiguous())
        return torch.cat([piece[:size] for piece, size in zip(pieces, sizes, strict=True)])


def shard_sizes(count: int, world_size: int) -> list[int]:
    """How ``torch.tensor_split`` cuts ``count`` rows into ``world_size`` shards."""
    return [
        count // world_size + (1 if rank < count % world_size else 0) for rank in range(world_size)
    ]


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of a rank's own random numbers (dropout, noise): different per rank so the
    ranks' shards get independent masks, as the rows of one batch do in a single process."""
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2**63)
