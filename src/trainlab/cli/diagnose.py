"""``trainlab diagnose RUN_ID [--json]``: the training doctor's report on a recorded run."""

from __future__ import annotations

from trainlab.config.errors import UsageError

HELP = """usage: trainlab diagnose RUN_ID [--json] [tracking.uri=URI]

Reads run RUN_ID from the MLflow store (its metrics, params, the gradient monitor's
gradients/gradients.json and, for a failed run, error.txt) and reports what went wrong:
each finding with a code, a severity (error, warning, info), the evidence and the advice,
most important first. `healthy` when nothing is wrong.

Codes: lr_too_high, lr_too_low, exploding_gradients, vanishing_gradients, dead_units,
overfitting, underfitting, unnormalized_inputs, plateau, class_imbalance, healthy.

options:
  --json   print {"primary": CODE, "findings": [{"code", "severity", "evidence",
           "advice", "details"}, ...]} instead of the table

examples:
  trainlab diagnose 3f2a9c...                  the run id is in the summary table
  trainlab diagnose 3f2a9c... --json | jq .primary
  trainlab diagnose 3f2a9c... tracking.uri=http://mlflow.example:5000"""


def parse(args: list[str]) -> tuple[str, bool, list[str]]:
    as_json = False
    positional: list[str] = []
    overrides: list[str] = []
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg.startswith("-"):
            raise UsageError(
                f"unknown option {arg!r}; options: --json. See `trainlab diagnose --help`."
            )
        elif "=" in arg:
            overrides.append(arg)
        else:
            positional.append(arg)
    if len(positional) != 1:
        raise UsageError(
            "give exactly one run id, e.g. `trainlab diagnose 3f2a9c...` (it is in the "
            "summary table at the end of a run and in the MLflow UI)."
        )
    return positional[0], as_json, overrides


def run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(HELP)
        return 0 if args else 2
    run_id, as_json, overrides = parse(args)
    from trainlab.config.compose import compose_config
    from trainlab.doctor import RunHistory, diagnose
    from trainlab.doctor.report import print_report, to_json
    from trainlab.tracking.store import make_client

    uri = str(compose_config(overrides).tracking.uri)
    client = make_client(uri)
    try:
        client.get_run(run_id)
    except Exception:
        raise UsageError(
            f"there is no run {run_id!r} in the store {uri}; copy the run id from the summary "
            "table or the MLflow UI (trainlab ui), or point at the right store with "
            "tracking.uri=URI."
        ) from None
    diagnosis = diagnose(RunHistory.from_store(client, run_id))
    if as_json:
        print(to_json(diagnosis))
    else:
        print_report(diagnosis)
    return 0
