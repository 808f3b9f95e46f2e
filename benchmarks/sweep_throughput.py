"""Sweep throughput: the same sweep with the sequential launcher and with the parallel one.

Runs ``trainlab train -m optimizer.lr=<N values>`` (digits MLP, ``--epochs`` epochs per job)
through the real CLI, each into a fresh sqlite store in a temporary folder:

* ``sequential``  Hydra's basic launcher: one job after another in one process (torch with
                  its default threads, all cores; ``--sequential-threads 1`` for one);
* ``parallel``    ``hydra/launcher=parallel hydra.launcher.n_jobs=K``: K worker processes
                  forked from a fork server that imported torch and MLflow once, each job
                  with cores // K torch threads.

It prints each sweep's wall time (from the command's start to its exit, imports, store
creation and the final table included) and their ratio; the span from the first job's run
start to the last job's run end (the sweep's jobs running, without the start-up both
launchers share: the command's imports, the store and the parent run) and its ratio, the
throughput a longer sweep approaches; the load average before and after,
and where the time goes: the mean time a job's MLflow run was open (run created -> closed:
record_config, training, the end-of-run diagnosis) and the rest of the wall time, the fixed
cost of the sweep (imports, worker start-up, composing each job's config, the parent run).
Each repetition runs both launchers back to back, in alternating order; the ratio of each
pair and their median are printed. A figure, not a test: nothing here passes or fails on time.

    python benchmarks/sweep_throughput.py                  # 8 jobs x 30 epochs, 2 parallel
    python benchmarks/sweep_throughput.py --jobs 8 --epochs 40 --n-jobs 2 --repeats 2
    make bench-sweep
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LEARNING_RATES = ("0.0005", "0.001", "0.002", "0.003", "0.005", "0.007", "0.01", "0.02")


@dataclass
class Result:
    launcher: str
    wall_s: float
    run_s: list[float]  # each child's MLflow run duration
    span_s: float  # first child's run start -> last child's run end

    @property
    def fixed_s(self) -> float:
        """Wall time not spent inside the jobs' runs, per worker lane."""
        return self.wall_s - sum(self.run_s) / self.lanes

    lanes: int = 1


def sweep(
    folder: Path,
    launcher: str,
    jobs: int,
    epochs: int,
    n_jobs: int,
    sequential_threads: int,
    extra: list[str] | None = None,
) -> Result:
    uri = f"sqlite:///{folder / f'{launcher}-{time.monotonic_ns()}.db'}"
    rates = [LEARNING_RATES[i % len(LEARNING_RATES)] + "0" * (i // len(LEARNING_RATES))
             for i in range(jobs)]  # fmt: skip
    command = [
        sys.executable, "-m", "trainlab", "train", "-m",
        f"optimizer.lr={','.join(rates)}", f"trainer.max_epochs={epochs}",
        "trainer.progress=none", f"tracking.uri={uri}",
    ]  # fmt: skip
    command += extra or []
    if launcher == "parallel":
        command += ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}"]
    elif sequential_threads:
        command += [f"trainer.threads={sequential_threads}"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=folder, env=environment, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{launcher} sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    durations, span = run_times(uri, jobs)
    return Result(launcher, wall, durations, span, n_jobs if launcher == "parallel" else 1)


def run_times(uri: str, jobs: int) -> tuple[list[float], float]:
    """Each child run's duration, and the span from the first start to the last end."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("trainlab")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    finished = [r for r in children if r.info.status == "FINISHED"]
    if len(finished) != jobs:
        raise SystemExit(f"expected {jobs} FINISHED child runs, found {len(finished)}")
    durations = [(r.info.end_time - r.info.start_time) / 1000 for r in finished]
    span = max(r.info.end_time for r in finished) - min(r.info.start_time for r in finished)
    return durations, span / 1000


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs in the sweep (8)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per job (30)")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel jobs at once (2)")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of sweeps (1)")
    parser.add_argument(
        "--sequential-threads",
        type=int,
        default=0,
        help="torch threads of the sequential sweep; 0 (default): torch's default, all cores."
        " 1 compares like with like: each job on one core either way, so the ratio is the "
        "parallelism alone",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="an extra override for every job of both sweeps (repeatable), e.g. "
        "--override trainer.checkpoint=false",
    )
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    print(
        f"sweep: {args.jobs} jobs x {args.epochs} epochs (digits, mlp, adam); parallel: "
        f"{args.n_jobs} jobs at once, {max(1, cores // args.n_jobs)} torch thread(s) each; "
        f"{cores} cores; sequential: "
        f"{args.sequential_threads or 'default'} torch thread(s); load average before: {load()}",
        flush=True,
    )
    ratios: list[float] = []
    span_ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="trainlab-sweep-bench-") as tmp:
        folder = Path(tmp)
        for repeat in range(args.repeats):
            order = ["sequential", "parallel"]
            if repeat % 2:
                order.reverse()  # drift of the machine's speed hits both sides alike
            results = {}
            for launcher in order:
                result = sweep(
                    folder,
                    launcher,
                    args.jobs,
                    args.epochs,
                    args.n_jobs,
                    args.sequential_threads,
                    args.override,
                )
                results[launcher] = result
                print(
                    f"  {launcher:<10}  wall {result.wall_s:7.1f} s   run open "
                    f"{statistics.fmean(result.run_s):5.1f} s/job (sum "
                    f"{sum(result.run_s):6.1f} s)   jobs span {result.span_s:5.1f} s   "
                    f"fixed {result.fixed_s:5.1f} s   "
                    f"load {load()}",
                    flush=True,
                )
            ratio = results["sequential"].wall_s / results["parallel"].wall_s
            span_ratio = results["sequential"].span_s / results["parallel"].span_s
            ratios.append(ratio)
            span_ratios.append(span_ratio)
            print(
                f"  repetition {repeat + 1}: parallel is {ratio:.2f}x the sequential throughput"
                f" (wall), {span_ratio:.2f}x while the jobs run (span)"
            )
    for label, values in (("wall", ratios), ("jobs span", span_ratios)):
        low, high, median = min(values), max(values), statistics.median(values)
        print(
            f"throughput ratio by {label} (sequential / parallel): median {median:.2f}x"
            f" [{low:.2f}-{high:.2f}] over {len(values)} pair(s); target >= 1.6x"
        )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
