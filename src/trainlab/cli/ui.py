"""``trainlab ui``: the MLflow UI on the configured store, stopped cleanly on Ctrl-C.

``mlflow ui`` starts helper processes that outlive it if only it is killed, so it runs in a
process group of its own and the whole group is stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request

from trainlab.config.errors import UsageError

HELP = """usage: trainlab ui [--port PORT] [--host HOST] [OVERRIDES]

Serves the MLflow UI on the store of the config (tracking.uri; default the local
sqlite file outputs/mlflow.db) and prints the URL of the experiment's runs table.
Ctrl-C stops it and every process it started."""


def _option(args: list[str], name: str, default: str) -> tuple[str, list[str]]:
    if name in args:
        index = args.index(name)
        if index + 1 >= len(args):
            raise UsageError(f"{name} needs a value. {HELP.splitlines()[0]}")
        value = args[index + 1]
        return value, args[:index] + args[index + 2 :]
    return default, args


def run(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(HELP)
        return 0
    port, args = _option(args, "--port", "5000")
    host, args = _option(args, "--host", "127.0.0.1")
    from trainlab.config.compose import compose_config
    from trainlab.tracking.store import ensure_experiment, make_client, runs_url, sqlite_path

    cfg = compose_config(args)
    uri = str(cfg.tracking.uri)
    if uri.startswith("http"):
        raise UsageError(f"tracking.uri={uri} is already a server; open {uri} in a browser.")
    database = sqlite_path(uri)
    if database is not None and not database.exists():
        raise UsageError(
            f"there is no store at {database} yet; train a run first "
            "(`trainlab train`) or point tracking.uri at your store."
        )
    experiment_id = ensure_experiment(make_client(uri), uri, str(cfg.tracking.experiment))
    base = f"http://{host}:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        # One worker is plenty for one person's browser, and starts in a quarter of the
        # time of the default four (each imports MLflow's server) on a small machine.
        "--workers",
        "1",
    ]
    server = subprocess.Popen(command, start_new_session=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop the server's group on SIGTERM too
    try:
        print(f"Starting the MLflow UI on {uri} ...", flush=True)
        if _wait_until_up(base, server):
            print(
                f"Runs of experiment {cfg.tracking.experiment!r}: "
                f"{runs_url(base, experiment_id)}\nCtrl-C stops the UI.",
                flush=True,
            )
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_group(server)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_until_up(base: str, server: subprocess.Popen[bytes], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None and server.returncode is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
