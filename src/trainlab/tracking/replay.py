"""Replay files: what could not reach the tracking store, kept on disk until it can.

When the store is unreachable at the end of a run (a server that went away, a locked
database), the metric sender writes the points it still holds to
``outputs/unsent/<run id>-<pid>.jsonl`` and the run prints the command that sends them:
``trainlab sync outputs/unsent/<file>``. A file is JSON lines: a header
``{"trainlab_replay": 1, "uri": ..., "run_id": ...}``, then one ``[name, value, step,
timestamp_ms]`` per point, ``{"artifacts": folder, "path": artifact_path}`` for files that
could not be uploaded (kept in that local folder), ``{"tags": "<json>"}``, and
``{"status": "FINISHED"}`` (the run's end, when setting it failed too).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
UNSENT_DIR = Path("outputs") / "unsent"


def replay_path_for(run_id: str) -> Path:
    """Where a run's unsent points go (absolute, so a child in another folder agrees)."""
    return (UNSENT_DIR / f"{run_id}-{os.getpid()}.jsonl").resolve()


def kept_artifacts_dir(replay_path: str | Path) -> Path:
    """Where files that could not be uploaded wait, beside the run's replay file."""
    replay = Path(replay_path)
    return replay.parent / f"{replay.stem}-artifacts"


def write_points(
    path: str | Path, uri: str, run_id: str, points: list[tuple[str, float, int, int]]
) -> Path:
    """Append ``points`` to the replay file ``path`` (created with its header if new)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    new = not target.exists()
    with target.open("a", encoding="utf-8") as file:
        if new:
            file.write(json.dumps({"trainlab_replay": FORMAT, "uri": uri, "run_id": run_id}))
            file.write("\n")
        for name, value, step, stamp in points:
            file.write(json.dumps([name, value, step, stamp]) + "\n")
    return target


def write_item(path: str | Path, uri: str, run_id: str, item: dict[str, str]) -> Path:
    """Record a status (``{"status": ...}``) or a folder of artifacts to upload
    (``{"artifacts": folder, "path": artifact_path}``) in the run's replay file."""
    target = write_points(path, uri, run_id, [])
    with target.open("a", encoding="utf-8") as file:
        file.write(json.dumps(item) + "\n")
    return target


@dataclass
class ReplayFile:
    """A parsed replay file."""

    path: Path
    uri: str
    run_id: str
    points: list[tuple[str, float, int, int]] = field(default_factory=list)
    status: str | None = None
    artifacts: list[tuple[Path, str]] = field(default_factory=list)  # (local folder, path)
    tags: dict[str, str] = field(default_factory=dict)


def read_replay_file(path: Path) -> ReplayFile:
    """Parse ``path``; raises ``ValueError`` naming the line for anything malformed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path} is empty, not a trainlab replay file")
    try:
        header: Any = json.loads(lines[0])
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line 1 is not JSON ({error})") from None
    if not isinstance(header, dict) or header.get("trainlab_replay") != FORMAT:
        raise ValueError(f"{path} is not a trainlab replay file (line 1 has no header)")
    replay = ReplayFile(path, str(header["uri"]), str(header["run_id"]))
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            # A line cut short by a crash mid-write: everything before it is still good.
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not JSON") from None
        if isinstance(item, dict) and "status" in item:
            replay.status = str(item["status"])
        elif isinstance(item, dict) and "tags" in item:
            replay.tags.update(json.loads(str(item["tags"])))
        elif isinstance(item, dict) and "artifacts" in item:
            replay.artifacts.append((Path(str(item["artifacts"])), str(item.get("path", ""))))
        elif isinstance(item, list) and len(item) == 4:
            name, value, step, stamp = item
            replay.points.append((str(name), float(value), int(step), int(stamp)))
        else:
            raise ValueError(f"{path}: line {number} is neither a point nor a status")
    return replay


def sync(replay: ReplayFile, uri: str | None = None) -> tuple[int, int]:
    """Send a replay file's points (those not already in the store), upload its kept
    artifact folders, then set its status. Returns ``(sent, already_there)``."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=uri or replay.uri)
    run = client.get_run(replay.run_id)
    present: dict[str, set[int]] = {}
    for key in {name for name, _, _, _ in replay.points}:
        if key in run.data.metrics:
            present[key] = {m.step for m in client.get_metric_history(replay.run_id, key)}
    fresh = [p for p in replay.points if p[2] not in present.get(p[0], set())]
    for start in range(0, len(fresh), 1000):
        chunk = fresh[start : start + 1000]
        client.log_batch(
            replay.run_id,
            metrics=[Metric(name, value, stamp, step) for name, value, step, stamp in chunk],
            synchronous=True,
        )
    if replay.tags:
        for key, value in replay.tags.items():
            client.set_tag(replay.run_id, key, value)
    for folder, artifact_path in dict.fromkeys(replay.artifacts):
        if folder.is_dir():
            client.log_artifacts(replay.run_id, str(folder), artifact_path or None)
    if replay.status is not None:
        client.set_terminated(replay.run_id, status=replay.status)
    return len(fresh), len(replay.points) - len(fresh)
