"""trainlab's Hydra plugins: the Optuna sweeper (hydra/sweeper=trainlab_optuna) and the
submitit launchers behind hydra/launcher=slurm, slurm_gpu and slurm_local. Hydra imports
every module here at start-up, so they import nothing heavy at module level."""
