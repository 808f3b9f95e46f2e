"""Sweeps beyond a grid: Bayesian search with pruning (Optuna), sweeps that resume by name,
and jobs that survive a cluster's preemption. The Hydra plugins that use this live in
``src/hydra_plugins/trainlab_plugins`` (Hydra finds plugins only in that namespace)."""
