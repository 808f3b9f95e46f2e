"""A job's data split, made once per process and reused by the later jobs that share it.

The jobs of a sweep usually train on the same data (``optimizer.lr=0.001,0.01``): the same
dataset config and seed give the same split, so the jobs that run one after another in one
process (the basic launcher, a parallel sweep's worker, a resumed sweep) load and split it
once. For a user's file that is the parse of the whole file per job; for a bundled dataset
~20-40 ms.

At most :data:`MAX_KEPT_BYTES` of splits are kept, the most recently used (a sweep over many
seeds keeps the latest few): the data of a larger file is read by each job, as without this
module. Every job gets its own copy of the arrays (the
recipe hands them to torch without a copy, and a job may change its tensors in place).
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.data import datasets
from trainlab.data.split import Split, split_and_normalize

MAX_KEPT_BYTES = 64 * 2**20  # in all; the splits of bundled and generated datasets are ~1 MB

_kept: OrderedDict[str, Split] = OrderedDict()  # least recently used first


def split_key(dataset_cfg: Any, seed: int) -> str:
    """What a split depends on: the resolved dataset config, the seed and, for a user's
    file, its size and modification time (a file rewritten between two jobs is read again)."""
    from omegaconf import DictConfig, OmegaConf

    text = (
        OmegaConf.to_yaml(dataset_cfg, resolve=True)
        if isinstance(dataset_cfg, DictConfig)
        else repr(dataset_cfg)
    )
    path = dataset_cfg.get("path") if hasattr(dataset_cfg, "get") else None
    if path:
        try:
            stat = Path(str(path)).expanduser().stat()
            text += f"\nfile: {stat.st_size} {stat.st_mtime_ns}"
        except OSError:
            text += "\nfile: missing"
    return hashlib.sha256(f"{text}\nseed: {seed}".encode()).hexdigest()


def split_bytes(split: Split) -> int:
    return sum(v.nbytes for v in vars(split).values() if isinstance(v, np.ndarray))


def split_for(dataset_cfg: Any, seed: int) -> Split:
    """The split of ``dataset_cfg`` with ``seed`` (raises what loading raises): a copy of
    the one an earlier job of this process made, or a new one (kept when it is small)."""
    key = split_key(dataset_cfg, seed)
    kept = _kept.get(key)
    if kept is not None:
        _kept.move_to_end(key)
        return copy.deepcopy(kept)
    split = split_and_normalize(datasets.load(dataset_cfg), dataset_cfg, seed)
    _keep(key, split)
    return split


def _keep(key: str, split: Split) -> None:
    size = split_bytes(split)
    if size > MAX_KEPT_BYTES:
        return
    while _kept and sum(map(split_bytes, _kept.values())) + size > MAX_KEPT_BYTES:
        _kept.popitem(last=False)
    _kept[key] = copy.deepcopy(split)


def forget() -> None:
    """Drop every kept split (tests)."""
    _kept.clear()
