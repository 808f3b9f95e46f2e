"""``trainlab compare [SWEEP | --experiment NAME] [--by PARAM] [--csv F] [--plot F.png]``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trainlab.config.errors import UsageError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from trainlab.tools.compare import GroupRow

HELP = """usage: trainlab compare [SWEEP] [--experiment NAME] [--by PARAM] [--metric KEY]
                        [--mode min|max] [--csv FILE] [--plot FILE.png] [tracking.uri=URI]

A table of runs, best first by the monitored metric (trainer.monitor of the sweep; lower is
better for losses and errors, higher for accuracy-like metrics), with the parameters that
differ between them, each run's status and duration; the best row is highlighted.

SWEEP is a sweep's parent run id (printed when the sweep ends), its name (the parent run's
name, e.g. "sweep optimizer=sgd,adam optimizer.lr=0.01,0.001"), its folder
(outputs/sweeps/DATE/TIME), its sweep.name, or the id of one of its runs; without SWEEP, the
newest sweep.
A k-fold sweep (dataset.fold swept) shows one row per configuration: the mean ± standard
deviation over its folds.

options:
  --experiment NAME  every training run of an MLflow experiment instead of one sweep
  --by PARAM         the metric against one parameter (optimizer.lr, optimizer, ...): one
                     row per value with the mean ± std over its runs; with --plot, a plot
  --metric KEY       compare by another metric (val/acc, val/f1, ...)
  --mode min|max     whether lower or higher is better (default: from the metric)
  --csv FILE         also write the table as CSV
  --plot FILE.png    the validation curves of the runs overlaid (one line per run), or with
                     --by the metric against the parameter

examples:
  trainlab compare                                    the newest sweep
  trainlab compare 3f2a9c... --plot curves.png        a sweep by its parent run id
  trainlab compare --experiment compare_optimizers --csv runs.csv
  trainlab compare --by optimizer.lr --plot lr.png    the metric against the learning rate"""

# A resumable sweep's name (``sweep.name``), the tag its parent run carries.
SWEEP_NAME_TAG = "trainlab.sweep_name"
VALUE_OPTIONS = ("--experiment", "--by", "--metric", "--mode", "--csv", "--plot")


@dataclass
class Request:
    sweep: str | None = None
    experiment: str | None = None
    by: str | None = None
    metric: str | None = None
    mode: str | None = None
    csv: Path | None = None
    plot: Path | None = None
    overrides: list[str] = field(default_factory=list)


def parse(args: list[str]) -> Request:
    request = Request()
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, _, inline = arg.partition("=")
        if name in VALUE_OPTIONS:
            if not inline:
                index += 1
                if index >= len(args):
                    raise UsageError(f"{name} needs a value. See `trainlab compare --help`.")
                inline = args[index]
            setattr(request, name[2:], Path(inline) if name in ("--csv", "--plot") else inline)
        elif arg.startswith("-"):
            raise UsageError(
                f"unknown option {arg!r}; options: {', '.join(VALUE_OPTIONS)}. "
                "See `trainlab compare --help`."
            )
        elif arg.startswith(("tracking.", "+tracking.")) and "=" in arg:
            request.overrides.append(arg)
        else:
            positional.append(arg)
        index += 1
    if len(positional) > 1:
        raise UsageError(
            f"give at most one sweep, not {len(positional)} ({', '.join(map(repr, positional))});"
            ' quote a sweep name that has spaces: trainlab compare "sweep optimizer=sgd,adam".'
        )
    request.sweep = positional[0] if positional else None
    if request.sweep and request.experiment:
        raise UsageError("give a sweep or --experiment NAME, not both.")
    if request.mode not in (None, "min", "max"):
        raise UsageError(f"--mode is min or max, not {request.mode!r}.")
    if request.plot is not None and request.plot.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UsageError(f"--plot writes a .png (or .pdf, .svg) file, not {request.plot}.")
    return request


def run(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(HELP)
        return 0
    request = parse(args)
    from trainlab.config.compose import compose_config
    from trainlab.tracking.store import make_client, sqlite_path

    uri = str(compose_config(request.overrides).tracking.uri)
    database = sqlite_path(uri)
    if database is not None and not database.exists():
        raise UsageError(
            f"there is no MLflow store at {database}: train a sweep first "
            "(`trainlab train -m optimizer.lr=0.01,0.001`) or point at your store with "
            "tracking.uri=URI."
        )
    client = make_client(uri)
    if request.experiment is not None:
        runs, title, monitor, mode = _experiment(client, uri, request.experiment)
    else:
        runs, title, monitor, mode = _sweep(client, uri, request.sweep)
    compare(client, request, runs, title, monitor, mode)
    return 0


def compare(
    client: MlflowClient, request: Request, runs: list[Run], title: str, monitor: str, mode: str
) -> None:
    """Rank, print, and write the CSV and the plot that were asked for."""
    from trainlab.config.suggest import did_you_mean
    from trainlab.display.compare_table import group_table, print_table, run_table
    from trainlab.metrics import mode_for
    from trainlab.tools import compare as tools

    metric = request.metric or monitor
    # The sweep's trainer.mode is about its monitor; another metric goes by its own nature.
    direction = request.mode or mode_for(metric, mode if metric == monitor else "auto")
    logged = {key for run in runs for key in run.data.metrics}
    if metric not in logged and f"best/{metric}" not in logged:
        shown = sorted(k for k in logged if not k.startswith(("best/", "lr_find/")))
        raise UsageError(
            f"no run here logged the metric {metric!r}.{did_you_mean(metric, shown)} "
            f"Metrics these runs logged: {', '.join(shown)}."
        )
    values = {
        run.info.run_id: tools.best_from_history(client, run.info.run_id, metric, direction)
        for run in runs
        if f"best/{metric}" not in run.data.metrics
    }
    rows = tools.rank_runs(
        runs, metric, direction, values, prefer_params=request.experiment is not None
    )
    keys = list(rows[0].params) if rows else []
    kfold = tools.is_kfold(runs, keys)
    title = f"{title}: {len(rows)} runs, best {metric} first ({direction}imised)"
    groups = None
    if request.by is not None:
        known = tools.known_settings(runs)
        if request.by not in known:
            raise UsageError(
                f"the runs have no parameter {request.by!r}.{did_you_mean(request.by, known)} "
                f"Parameters that differ between them: {', '.join(keys) or 'none'}; any key of "
                "the config works too (optimizer.lr, model.hidden_sizes, ...)."
            )
        groups = tools.by_param(rows, runs, request.by, metric, direction)
        header, body = group_table(groups, metric, what="runs")
        best = _best_group(groups, direction)
        print_table(f"{title}; by {request.by}", header, body, best)
    elif kfold:
        groups = tools.group_folds(rows, direction, metric)
        folds = {len(g.runs) for g in groups}
        header, body = group_table(groups, metric)
        print_table(f"{title}; mean ± std over {'/'.join(map(str, sorted(folds)))} folds per "
                    "configuration", header, body, best=0 if groups else None)  # fmt: skip
    else:
        header, body = run_table(rows, metric)
        print_table(title, header, body, best=0 if rows and rows[0].value is not None else None)
    if request.csv is not None:
        if groups is not None:
            tools.write_groups_csv(request.csv, metric, groups)
        else:
            tools.write_rows_csv(request.csv, metric, rows)
        print(f"Saved {request.csv}")
    if request.plot is not None:
        from trainlab.tools.compare_plot import plot_by_param, plot_curves

        if request.by is not None and groups is not None:
            plot_by_param(groups, request.by, metric, title, request.plot)
        else:
            plot_curves(client, rows, metric, title, request.plot)
        print(f"Saved {request.plot}")


def _best_group(groups: list[GroupRow], direction: str) -> int | None:
    scored = [
        (g.mean if direction == "min" else -g.mean, i)
        for i, g in enumerate(groups)
        if g.mean is not None
    ]
    return min(scored)[1] if scored else None


def _experiment(client: MlflowClient, uri: str, name: str) -> tuple[list[Run], str, str, str]:
    from trainlab.config.suggest import did_you_mean
    from trainlab.tools.compare import experiment_runs

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = [e.name for e in client.search_experiments()]
        raise UsageError(
            f"there is no experiment {name!r} in the store {uri}.{did_you_mean(name, names)} "
            f"Experiments there: {', '.join(names) or 'none'}."
        )
    runs = experiment_runs(client, experiment.experiment_id)
    if not runs:
        raise UsageError(f"experiment {name!r} has no training runs yet in the store {uri}.")
    monitor = _most_common(r.data.params.get("trainer.monitor") for r in runs) or "val/loss"
    mode = _most_common(r.data.params.get("trainer.mode") for r in runs) or "auto"
    return runs, f"experiment {name}", monitor, mode


def _most_common(values: Iterable[str | None]) -> str | None:
    counts: dict[str, int] = {}
    for value in values:
        if value:
            counts[value] = counts.get(value, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


def _sweep(
    client: MlflowClient, uri: str, reference: str | None
) -> tuple[list[Run], str, str, str]:
    from trainlab.tools.compare import child_runs

    parent = find_sweep(client, uri, reference)
    runs = child_runs(client, parent.info.run_id)
    if not runs:
        raise UsageError(
            f"the sweep {parent.info.run_name!r} ({parent.info.run_id}) has no child runs yet."
        )
    monitor = parent.data.tags.get("trainlab.monitor", "val/loss")
    mode = parent.data.tags.get("trainlab.mode", "auto")
    return runs, f"{parent.info.run_name} ({parent.info.run_id})", monitor, mode


def find_sweep(client: MlflowClient, uri: str, reference: str | None) -> Run:
    """A sweep's parent run from its id, name, folder, or one of its children's ids; the
    newest sweep when ``reference`` is None."""
    from mlflow.entities import ViewType

    from trainlab.tracking.sweep_callback import SWEEP_TAG, parent_run_id

    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiments:
        raise UsageError(f"the store {uri} has no experiments yet; train a sweep first.")

    def sweeps(extra: str = "") -> list[Run]:
        query = "tags.`trainlab.role` = 'sweep'" + (f" and {extra}" if extra else "")
        return list(client.search_runs(experiments, query, order_by=["attributes.start_time DESC"]))

    if reference is None:
        found = sweeps()
        if not found:
            raise UsageError(
                f"there is no sweep in the store {uri}; run one with `trainlab train -m "
                "optimizer.lr=0.01,0.001`, or compare the runs of an experiment with "
                "--experiment NAME."
            )
        return found[0]
    if Path(reference).is_dir():
        marker = parent_run_id(reference)
        if marker:
            reference = marker
    run = _get_run(client, reference)
    if run is not None:
        if run.data.tags.get("trainlab.role") == "sweep":
            return run
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            return client.get_run(parent)
    quoted = reference.replace("'", "\\'")
    for name in dict.fromkeys((quoted, f"sweep {quoted}")):
        for query in (
            f"tags.`{SWEEP_TAG}` = '{name}'",
            f"tags.`{SWEEP_NAME_TAG}` = '{name}'",
            f"attributes.run_name = '{name}'",
        ):
            found = sweeps(query)
            if found:
                return found[0]
    known = [r.info.run_name for r in sweeps()[:5]]
    listing = f" Newest sweeps there: {'; '.join(known)}." if known else " It has no sweeps."
    raise UsageError(
        f"there is no sweep {reference!r} in the store {uri}. Give a sweep's parent run id "
        "(printed when the sweep ends), its name (the parent run's name in the MLflow UI), its "
        "folder (outputs/sweeps/DATE/TIME), or nothing for the newest sweep; --experiment "
        f"NAME compares every run of an experiment.{listing}"
    )


def _get_run(client: MlflowClient, run_id: str) -> Run | None:
    if not run_id.isalnum():
        return None
    try:
        return client.get_run(run_id)
    except Exception:  # MlflowException for an unknown id; a malformed id raises others
        return None
