"""The MLflow implementation of :class:`~trainlab.tracking.base.Tracker`, on MlflowClient.

One run per training job. Metrics go through a :class:`MetricWriter` (a child process owns
their store writes); params in batches of 100; checkpoints are written straight into the run's
artifact folder when the store is local, and uploaded at the end otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.environment import temporary_environ
from trainlab.tracking.replay import kept_artifacts_dir, replay_path_for, write_item
from trainlab.tracking.sender import SenderSettings
from trainlab.tracking.store import ensure_experiment, local_artifact_dir, make_client
from trainlab.tracking.writer import MetricWriter

log = logging.getLogger(__name__)

MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000


class MlflowTracker:
    """A live MLflow run."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        flush_every_s: float = 1.0,
        warm_up: str = "",
    ) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        self.uri = uri
        self.client = make_client(uri)
        self.experiment_id = ensure_experiment(self.client, uri, experiment)
        all_tags = dict(tags)
        if parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        self._start(run, flush_every_s, warm_up=warm_up)

    @classmethod
    def reopen(
        cls, uri: str, run_id: str, flush_every_s: float = 1.0, warm_up: str = ""
    ) -> MlflowTracker:
        """Continue an existing run (resume): back to RUNNING, same run id. Points already in
        the store (logged before an interruption) are not sent twice."""
        tracker = cls.__new__(cls)
        tracker.uri = uri
        tracker.client = make_client(uri)
        run = tracker.client.get_run(run_id)
        tracker.experiment_id = run.info.experiment_id
        tracker.client.update_run(run_id, status="RUNNING")
        logged_up_to = {
            key: max(point.step for point in tracker.client.get_metric_history(run_id, key))
            for key in run.data.metrics
        }
        tracker._start(run, flush_every_s, logged_up_to, warm_up)
        return tracker

    def _start(
        self,
        run: Any,
        flush_every_s: float,
        logged_up_to: dict[str, int] | None = None,
        warm_up: str = "",
    ) -> None:
        """``warm_up``: "module:function" the metric sender calls when it starts (see
        :class:`~trainlab.tracking.sender.SenderSettings`)."""
        self.run_id: str = run.info.run_id
        self.run_name: str = run.info.run_name
        self._artifact_dir = local_artifact_dir(run.info.artifact_uri)
        # For a remote artifact store, checkpoints live here until uploaded at the end (and
        # stay findable by `trainlab resume` if the process dies first).
        self._staging = Path("outputs") / "checkpoints" / self.run_id
        # A resumed run does not send again what the interrupted process already sent.
        self._writer = MetricWriter(
            SenderSettings(
                uri=self.uri,
                run_id=self.run_id,
                flush_every_s=flush_every_s,
                logged_up_to=logged_up_to or {},
                replay_path=str(replay_path_for(self.run_id)),
                warm_up=warm_up,
                artifact_dir=str(self._artifact_dir or ""),
                working_dir=os.getcwd(),
            )
        )
        self._closed = False
        self._kept: set[tuple[Path, str]] = set()

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: list[tuple[str, float, int]]) -> None:
        self._writer.put(metrics)

    # Tags and files logged while the run trains or ends: a store that went away costs a
    # warning, never the run; what it did not take waits in the replay file.

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, v) for k, v in tags.items()]
        if not self._try(self.client.log_batch, self.run_id, tags=batch):
            write_item(self._replay, self.uri, self.run_id, {"tags": json.dumps(tags)})
            self._writer.unsent.append((self._replay, 0))

    def log_text(self, text: str, artifact_file: str) -> None:
        if not self._try(self.client.log_text, self.run_id, text, artifact_file):
            kept = kept_artifacts_dir(self._replay) / "files"
            (kept / artifact_file).parent.mkdir(parents=True, exist_ok=True)
            (kept / artifact_file).write_text(text)
            self._keep(kept, "")

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if not self._try(self.client.log_artifact, self.run_id, str(path), artifact_path):
            kept = kept_artifacts_dir(self._replay) / "files"
            target = kept / (artifact_path or "") / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            self._keep(kept, "")

    @property
    def _replay(self) -> str:
        return self._writer.settings.replay_path

    def _keep(self, folder: Path, artifact_path: str) -> None:
        """Upload ``folder`` with ``trainlab sync`` (recorded once per folder)."""
        if (folder, artifact_path) in self._kept:
            return
        self._kept.add((folder, artifact_path))
        item = {"artifacts": str(folder), "path": artifact_path}
        write_item(self._replay, self.uri, self.run_id, item)
        self._writer.unsent.append((self._replay, 0))

    def log_rendered(self, function: str, data: Any, artifact_path: str) -> None:
        """Artifacts drawn by ``function(data, folder)`` ("module:function"): in the metric
        sender process when it runs (the training process does not wait for matplotlib)."""
        if self._writer.render(function, data, artifact_path):
            return
        import tempfile

        from trainlab.tracking.sender import render

        with tempfile.TemporaryDirectory(prefix="trainlab-render-") as folder:
            render(function, data, Path(folder))
            self.client.log_artifacts(self.run_id, folder, artifact_path)

    def checkpoint_dir(self) -> Path:
        folder = (self._artifact_dir or self._staging) / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def flush(self) -> None:
        self._writer.flush()

    def request_flush(self) -> Callable[[], None]:
        return self._writer.request_flush()

    def close(self, status: str, error: str | None = None) -> None:
        """Send what is left and end the run. When the store is unreachable, nothing is
        lost: metrics, files and the status go to the run's replay file, and a warning
        names the ``trainlab sync`` command that delivers them later."""
        if self._closed:
            return
        self._closed = True
        problems = self._writer.close()
        with _fail_fast():
            if error:
                self.log_text(error, "error.txt")
            if problems:
                self.log_text("\n".join(problems), "tracking_errors.txt")
            uploaded = True
            staged = self._staging / "checkpoints"
            if self._artifact_dir is None and staged.is_dir():
                uploaded = self._try(
                    self.client.log_artifacts, self.run_id, str(staged), "checkpoints"
                )
                if not uploaded:
                    self._keep(staged, "checkpoints")
            if uploaded and status == "FINISHED":
                shutil.rmtree(self._staging, ignore_errors=True)
            if not self._try(self.client.set_terminated, self.run_id, status=status):
                write_item(self._replay, self.uri, self.run_id, {"status": status})
                self._writer.unsent.append((self._replay, 0))
        counts: dict[str, int] = {}
        for path, count in self._writer.unsent:
            counts[path] = counts.get(path, 0) + count
        for path, count in counts.items():
            what = f"{count} metric points" if count else "files or the run's status"
            log.warning(
                "%s and what else could not reach the tracking store %s were saved to %s; "
                "deliver them with: trainlab sync %s",
                what,
                self.uri,
                path,
                path,
            )

    def _try(self, call: Any, *args: Any, **kwargs: Any) -> bool:
        """One store call at close; False (and a warning) instead of an exception."""
        try:
            call(*args, **kwargs)
        except Exception as error:
            log.warning(
                "the tracking store did not take %s: %s: %s",
                getattr(call, "__name__", "a call"),
                type(error).__name__,
                str(error).splitlines()[0][:200] if str(error) else "",
            )
            return False
        return True


def _fail_fast() -> contextlib.AbstractContextManager[None]:
    """MLflow retries an HTTP call for minutes before it gives up; at the end of a run one
    quick attempt is enough, since what fails is saved for ``trainlab sync``."""
    return temporary_environ(
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    )
