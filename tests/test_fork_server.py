"""The fork server the metric senders are forked from (``trainlab.fork_server``): each test
runs a real program in a subprocess (multiprocessing keeps one fork server per process, and
this one's must not be disturbed), with a real sqlite MLflow store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import cli_env, client_for, explain, run_cli, sqlite_uri


def run_python(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``folder``, output captured as text; never raises on an exit code."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


SENDER_PROGRAM = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    def parent_of(pid):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    def main():
        from trainlab import fork_server
        fork_server.start_for_senders()  # started here, in the test's folder ...
        os.chdir(sys.argv[1])  # ... and used from another, with a relative store URI
        from trainlab.tracking.mlflow_tracker import MlflowTracker
        tracker = MlflowTracker(
            uri="sqlite:///outputs/mlflow.db", experiment="e", run_name="r", tags={}
        )
        sender = tracker._writer._process.pid
        print("run", tracker.run_id)
        print("sender's parent is this process:", parent_of(sender) == os.getpid())
        for step in range(1, 2001):
            tracker.log_metrics([("train/loss", 1.0 / step, step)])
        tracker.close("FINISHED")
        print("sender cpu reported:", tracker._writer.child_cpu_s is not None)

    if __name__ == "__main__":
        main()
    """
)


def test_a_sender_forked_from_the_fork_server_writes_every_point_where_the_run_is(
    tmp_path: Path,
) -> None:
    program = tmp_path / "program.py"
    program.write_text(SENDER_PROGRAM)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_python(tmp_path, str(program), str(elsewhere))
    assert done.returncode == 0, explain(done)
    assert "sender's parent is this process: False" in done.stdout, done.stdout
    assert "sender cpu reported: True" in done.stdout, done.stdout
    run_id = done.stdout.split("run ", 1)[1].split()[0]
    assert not (tmp_path / "outputs").exists()  # the relative URI meant the run's folder
    client = client_for(sqlite_uri(elsewhere / "outputs"))
    history = client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 2001))
    assert client.get_run(run_id).info.status == "FINISHED"


PURPOSE_PROGRAM = textwrap.dedent(
    """
    import os
    from multiprocessing import forkserver
    from trainlab import fork_server

    def server_pid():
        forkserver.ensure_running()
        return forkserver._forkserver._forkserver_pid

    fork_server.start("first", ["json"])
    first = server_pid()
    fork_server.start("first", ["json"])
    print("same purpose keeps its server:", server_pid() == first)
    fork_server.start("second", ["json"])
    second = server_pid()
    print("another purpose replaces it:", second != first, fork_server.serving("second"))
    try:
        os.kill(first, 0)
        print("old server gone: False")
    except ProcessLookupError:
        print("old server gone: True")
    fork_server.stop("first")  # not the running one's purpose: a no-op
    print("still serving:", fork_server.serving("second"))
    fork_server.stop("second")
    print("stopped:", not fork_server.serving("second"))
    """
)


def test_the_fork_server_runs_for_one_purpose_at_a_time(tmp_path: Path) -> None:
    done = run_python(tmp_path, "-c", PURPOSE_PROGRAM)
    assert done.returncode == 0, explain(done)
    for line in (
        "same purpose keeps its server: True",
        "another purpose replaces it: True True",
        "old server gone: True",
        "still serving: True",
        "stopped: True",
    ):
        assert line in done.stdout, done.stdout


def test_trainlab_train_records_a_complete_run_with_its_sender_on_the_fork_server(
    tmp_path: Path,
) -> None:
    done = run_cli("train", "trainer.max_epochs=2", "trainer.progress=plain", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    client = client_for(sqlite_uri(tmp_path / "outputs"))
    (run,) = client.search_runs(["1"])
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == sorted(set(steps)) and len(steps) == steps[-1]  # every step, once
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "gradients")}
    assert "gradients/gradient_heatmap.png" in artifacts  # drawn by the sender, no torch
