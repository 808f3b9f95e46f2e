"""The MLflow implementation of :class:`~trainlab.tracking.base.Tracker`, on MlflowClient.

One run per training job. Metrics go through a :class:`MetricWriter` (a child process owns
their store writes); params in batches of 100; checkpoints are written straight into the run's
artifact folder when the store is local, and uploaded at the end otherwise.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from trainlab.tracking.replay import replay_path_for
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
        preload: tuple[str, ...] = (),
    ) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        self.uri = uri
        self.client = make_client(uri)
        self.experiment_id = ensure_experiment(self.client, uri, experiment)
        all_tags = dict(tags)
        if parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
        self._start(run, flush_every_s, preload=preload)

    @classmethod
    def reopen(
        cls, uri: str, run_id: str, flush_every_s: float = 1.0, preload: tuple[str, ...] = ()
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
        tracker._start(run, flush_every_s, logged_up_to, preload)
        return tracker

    def _start(
        self,
        run: Any,
        flush_every_s: float,
        logged_up_to: dict[str, int] | None = None,
        preload: tuple[str, ...] = (),
    ) -> None:
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
                preload=preload,
            )
        )
        self._closed = False

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: list[tuple[str, float, int]]) -> None:
        self._writer.put(metrics)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

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

    def close(self, status: str, error: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        problems = self._writer.close()
        if error:
            self.log_text(error, "error.txt")
        for path, count in self._writer.unsent:
            log.warning(
                "%d metric points could not reach the tracking store and were saved to %s; "
                "send them with: trainlab sync %s",
                count,
                path,
                path,
            )
        if problems:
            self.log_text("\n".join(map(str, problems)), "tracking_errors.txt")
        if self._artifact_dir is None and (self._staging / "checkpoints").is_dir():
            self.client.log_artifacts(
                self.run_id, str(self._staging / "checkpoints"), "checkpoints"
            )
            if status == "FINISHED":
                shutil.rmtree(self._staging, ignore_errors=True)
        self.client.set_terminated(self.run_id, status=status)
