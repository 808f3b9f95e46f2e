"""An in-memory batcher: one permutation per epoch and index slicing, no per-sample collate.

For data that fits in memory this is several times faster than a DataLoader, whose per-sample
``__getitem__`` and ``collate`` dominate the step time of a small model.

The order of an epoch is a function of (seed, epoch) alone, so a resumed run sees the same
batches, and so every rank of a data-parallel run can cut its own shard out of the same global
batch without talking to the others.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class InMemoryBatcher:
    """Yields ``(features, targets)`` batches of a tensor dataset already on its device.

    With ``world_size > 1`` each global batch (``batch_size`` rows) is cut into
    ``world_size`` contiguous shards and this batcher yields shard ``rank``.

    ``pool`` (set per epoch by a curriculum) restricts the epoch to those rows: the epoch
    keeps its length (``len(self)`` batches) and draws its rows from the pool, each pass
    over the pool in a fresh random order."""

    def __init__(
        self,
        features: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        limit_batches: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(features) != len(targets):
            raise ValueError(f"{len(features)} feature rows but {len(targets)} targets")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of the {world_size} ranks")
        self.features = features
        self.targets = targets
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.limit_batches = limit_batches  # 0: all; N: the same first N batches each epoch
        self.rank = rank
        self.world_size = world_size
        self.pool: torch.Tensor | None = None  # rows this epoch draws from (None: all)

    def __len__(self) -> int:
        count, size = len(self.targets), self.batch_size
        batches = (count + size - 1) // size
        # A last batch too small to share joins the batch before: a lone example (batch norm
        # needs 2), or, with more than two ranks, fewer rows than ranks (each needs one).
        if count > size and 0 < count % size < max(2, self.world_size):
            batches -= 1
        return min(batches, self.limit_batches) if self.limit_batches else batches

    def order(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch``: a function of (seed, epoch, pool) alone, so it is
        reproducible and a resumed run sees the same batches."""
        count = len(self.targets)
        device = self.features.device
        if not self.shuffle or self.limit_batches:  # a fixed subset: the same batches each time
            return torch.arange(count, device=device)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.pool is None:
            return torch.randperm(count, generator=generator).to(device)
        pool = self.pool.cpu()
        passes = -(-count // len(pool))  # enough passes over the pool to fill the epoch
        drawn = [pool[torch.randperm(len(pool), generator=generator)] for _ in range(passes)]
        return torch.cat(drawn)[:count].to(device)

    def global_bounds(self, number: int, total: int) -> tuple[int, int]:
        """Rows ``[start, stop)`` of the epoch's order that make global batch ``number``."""
        start = number * self.batch_size
        batches = len(self)
        # The last batch takes whatever is left (the rows of a too-small last batch).
        stop = start + self.batch_size if number < batches - 1 else total
        if self.limit_batches:
            stop = min(stop, start + self.batch_size)
        return start, stop

    def loss_scale(self, number: int) -> float:
        """The factor that makes this rank's mean loss count by its share of global batch
        ``number``: DistributedDataParallel averages the ranks' gradients, which is the
        gradient of the global batch's mean only when the shards are equal. 1.0 in one
        process and for every batch that splits evenly."""
        if self.world_size == 1:
            return 1.0
        start, stop = self.global_bounds(number, len(self.targets))
        rows = stop - start
        if rows % self.world_size == 0:
            return 1.0
        mine = rows // self.world_size + (1 if self.rank < rows % self.world_size else 0)
        return mine * self.world_size / rows

    def epoch(
        self, epoch: int, start_batch: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch``, beginning at ``start_batch`` (for resuming mid-epoch)."""
        order = self.order(epoch)
        for number in range(start_batch, len(self)):
            start, stop = self.global_bounds(number, len(order))
            index = order[start:stop]
            if self.world_size > 1:
                index = torch.tensor_split(index, self.world_size)[self.rank]
            yield self.features[index], self.targets[index]
