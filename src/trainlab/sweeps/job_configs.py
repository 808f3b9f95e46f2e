"""Each job's config of a sweep, as Hydra's ``load_sweep_config`` composes it, faster.

A launcher composes one config per job (``ConfigLoader.load_sweep_config``). Hydra does the
whole composition every time: the defaults tree, every group's config merged with its
schema, the Hydra node (~0.12 s per job on 2 cores; a 100-job sweep spends 12 s of one core
on it while its first jobs train). The jobs of a sweep usually differ only in values
(``optimizer.lr=0.001,0.01``), so here the config of the first job with a given set of
config-group choices and value keys is composed by Hydra; each later job with the same
choices and keys is a copy of it with its own values applied by Hydra's own code for that
step (``ConfigLoaderImpl._apply_overrides_to_config``) and its own ``hydra.overrides.task``
and ``hydra.job.override_dirname``, the two parts of the Hydra node that depend on a job's
overrides. Anything else (a new group choice, a delete or add override, a Hydra override,
a value that does not apply) goes through ``load_sweep_config``. ``tests/test_job_configs.py``
checks that both give equal configs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from trainlab.config.compose import is_hydra_override, split_value_overrides


class JobConfigs:
    def __init__(self, loader: Any, master_config: DictConfig) -> None:
        self.loader = loader
        self.master_config = master_config
        self._templates: dict[tuple[tuple[str, ...], tuple[str, ...]], DictConfig] = {}

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The config of the job with these overrides, equal to ``load_sweep_config``'s."""
        overrides = list(overrides)
        if any(is_hydra_override(o) for o in overrides):
            return self._composed(overrides, None)  # Hydra overrides go to the Hydra node
        split = split_value_overrides(self.loader, overrides)
        if split is None:
            return self._composed(overrides, None)
        groups, values = split
        key = (tuple(str(o.input_line) for o in groups), tuple(str(o.key_or_group) for o in values))
        template = self._templates.get(key)
        if template is None:
            return self._composed(overrides, key)
        cfg = copy.deepcopy(template)
        try:
            self._apply(cfg, overrides, groups, values)
        except Exception:  # Hydra reports it with every detail
            return self._composed(overrides, None)
        return cfg

    def _composed(
        self, overrides: list[str], key: tuple[tuple[str, ...], tuple[str, ...]] | None
    ) -> DictConfig:
        cfg = self.loader.load_sweep_config(self.master_config, overrides)
        if key is not None:
            self._templates[key] = copy.deepcopy(cfg)
        return cfg

    def _apply(
        self, cfg: DictConfig, overrides: list[str], groups: list[Any], values: list[Any]
    ) -> None:
        """The job's values, and the two parts of the Hydra node that depend on its
        overrides, on a copy of its template (every override here is a job override)."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname

        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        dirname = cfg.hydra.job.config.override_dirname
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = list(overrides)
            cfg.hydra.job.override_dirname = get_overrides_dirname(  # sorts its items
                overrides=groups + values,
                kv_sep=dirname.kv_sep,
                item_sep=dirname.item_sep,
                exclude_keys=dirname.exclude_keys,
            )
        OmegaConf.copy_cache(from_config=self.master_config, to_config=cfg)
