"""A real ``mlflow server`` for tests: started in its own process group on a free loopback
port, waited for on ``/health``, and stopped with its whole group (its helper processes
outlive the parent otherwise)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 180  # the server takes ~15 s on a quiet machine, far more on a busy one


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MlflowServer:
    """``mlflow server`` on ``backend_uri`` with artifacts served from ``artifacts``."""

    def __init__(self, backend_uri: str, artifacts: Path, port: int | None = None) -> None:
        self.backend_uri = backend_uri
        self.artifacts = artifacts
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = artifacts.parent / f"mlflow-server-{self.port}.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", str(self.artifacts),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip
        environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mlflow server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        pytest.fail(f"mlflow server did not answer in {STARTUP_TIMEOUT_S} s")

    def stop(self, at_once: bool = False) -> None:
        """Stop the whole process group; ``at_once`` kills it (an outage, not a shutdown)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL if at_once else signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with_kill = getattr(signal, "SIGKILL", signal.SIGTERM)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, with_kill)
        self.process = None
