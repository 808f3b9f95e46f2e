"""The metric sender: a child process owns the run's metric writes.

The state machine (coalescing, flushes, retries after a failure, giving up at close) is
driven with a store that fails on demand and a clock the test moves; the process, the pipe
and the replay file run for real against a real sqlite MLflow store and the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import client_for, explain, run_cli, sqlite_uri
from trainlab.tracking.replay import read_replay_file
from trainlab.tracking.sender import Point, Sender, SenderSettings
from trainlab.tracking.writer import MetricWriter


class FlakyStore:
    """Records what it is sent; fails while ``down`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[Point]] = []
        self.down = False

    def send(self, points: list[Point]) -> None:
        if self.down:
            raise ConnectionError("store unreachable")
        self.batches.append(list(points))

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        raise AssertionError("no artifacts in these tests")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sender(store: FlakyStore, clock: Clock, **settings: Any) -> tuple[Sender, list[tuple]]:
    replies: list[tuple] = []
    sender = Sender(
        SenderSettings(uri="sqlite:///unused.db", run_id="run", **settings),
        replies.append,
        lambda: store,
        clock,
    )
    return sender, replies


def _points(start: int, count: int) -> list[tuple[str, float, int]]:
    return [("train/loss", 1.0 / step, step) for step in range(start, start + count)]


def test_points_are_coalesced_until_the_flush_interval_passes() -> None:
    store, clock = FlakyStore(), Clock()
    sender, replies = _sender(store, clock, flush_every_s=2.0)
    for seq, start in enumerate((1, 11, 21), start=1):
        sender.take(("points", seq, 5, _points(start, 10)))
        sender.step()
        clock.now += 0.5
    assert store.batches == [], "nothing is sent before the interval has passed"
    assert sender.wait_time() == pytest.approx(0.5)
    clock.now += 0.5
    sender.step()
    assert len(store.batches) == 1 and len(store.batches[0]) == 30, "one send for all three"
    assert [p[2] for p in store.batches[0]] == list(range(1, 31))
    assert replies == [("sent", 3)]


def test_a_flush_sends_at_once_and_is_acknowledged() -> None:
    store, clock = FlakyStore(), Clock()
    sender, replies = _sender(store, clock, flush_every_s=60.0)
    sender.take(("points", 1, 5, _points(1, 3)))
    sender.take(("flush", 2))
    sender.step()
    assert len(store.batches) == 1
    assert replies == [("sent", 2)]


def test_a_failing_store_keeps_the_points_and_retries_until_it_answers() -> None:
    store, clock = FlakyStore(), Clock()
    sender, replies = _sender(store, clock, flush_every_s=0.0)
    store.down = True
    sender.take(("points", 1, 5, _points(1, 5)))
    sender.step()
    assert replies[0][0] == "degraded" and "unreachable" in replies[0][1]
    sender.take(("points", 2, 6, _points(6, 5)))
    sender.step()  # still inside the retry delay: no new attempt, no second warning
    assert [r[0] for r in replies] == ["degraded"]
    assert sender.wait_time() == pytest.approx(1.0)
    clock.now += 1.0
    sender.step()  # second failure: the delay grows
    assert sender.wait_time() == pytest.approx(2.0)
    store.down = False
    clock.now += 2.0
    sender.step()
    assert [r[0] for r in replies] == ["degraded", "recovered", "sent"]
    sent = [p[2] for batch in store.batches for p in batch]
    assert sent == list(range(1, 11)), "every point, once, in order"


def test_closing_on_a_dead_store_gives_up_after_the_close_timeout() -> None:
    store, clock = FlakyStore(), Clock()
    sender, _ = _sender(store, clock, close_timeout_s=10.0)
    store.down = True
    sender.take(("points", 1, 5, _points(1, 4)))
    sender.take(("close", 2))
    sender.step()
    assert not sender.gave_up() and not sender.done()
    assert sender.wait_time() <= 10.0, "never sleeps past the give-up time"
    clock.now += 10.0
    assert sender.gave_up()
    assert len(sender.pending) == 4, "what is left goes to the replay file"


def test_a_resumed_run_does_not_send_points_the_store_already_has() -> None:
    store, clock = FlakyStore(), Clock()
    sender, _ = _sender(store, clock, logged_up_to={"train/loss": 5})
    sender.take(("points", 1, 5, [*_points(1, 8), ("val/loss", 0.5, 3)]))
    sender.take(("flush", 2))
    sender.step()
    assert [(p[0], p[2]) for p in store.batches[0]] == [
        ("train/loss", 6),
        ("train/loss", 7),
        ("train/loss", 8),
        ("val/loss", 3),
    ]


def _new_run(uri: str) -> str:
    client = client_for(uri)
    experiment = client.create_experiment("sender")
    return str(client.create_run(experiment).info.run_id)


def test_the_child_process_puts_every_point_in_the_store(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    run_id = _new_run(uri)
    writer = MetricWriter(
        SenderSettings(uri=uri, run_id=run_id, flush_every_s=30.0, replay_path=str(tmp_path / "r"))
    )
    writer.put(_points(1, 700))
    writer.put(_points(701, 700))  # more than one log_batch's worth in all
    writer.flush()  # long before the 30 s interval: the flush sends
    history = client_for(uri).get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 1401))
    writer.put([("val/loss", 0.25, 1400)])
    assert writer.close() == []
    assert client_for(uri).get_metric_history(run_id, "val/loss")[0].value == 0.25
    assert not (tmp_path / "r").exists(), "no replay file when everything was sent"


WARM_MARK = "TRAINLAB_TEST_WARM_MARK"


def mark_warm() -> None:
    """A warm-up for the sender tests: leaves a file where the test said."""
    import os

    Path(os.environ[WARM_MARK]).write_text("warm")


def test_the_child_warms_up_as_it_starts_and_a_failing_warm_up_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``warm_up`` runs in the child before any message arrives (while the training process
    still sets up); one that fails costs nothing but its head start."""
    import time

    uri = sqlite_uri(tmp_path)
    run_id = _new_run(uri)
    mark = tmp_path / "warm"
    monkeypatch.setenv(WARM_MARK, str(mark))
    warm = MetricWriter(
        SenderSettings(uri=uri, run_id=run_id, warm_up=f"{__name__}:mark_warm",
                       replay_path=str(tmp_path / "r"))
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mark.read_text() == "warm", "the child called its warm-up without being sent anything"
    assert warm.close() == []

    failing = MetricWriter(
        SenderSettings(uri=uri, run_id=run_id, warm_up="trainlab.no_such_module:warm_up",
                       replay_path=str(tmp_path / "r"))
    )  # fmt: skip
    failing.put(_points(1, 5))
    assert failing.close() == []
    history = client_for(uri).get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]


def test_points_held_in_the_training_process_keep_their_times_and_all_arrive(
    tmp_path: Path,
) -> None:
    """Points are handed to the child in groups (every flush_every_s / 2): puts from two
    threads within that interval all reach the store at the flush, each group with the time
    it was put, not the time it was handed over."""
    import threading
    import time

    uri = sqlite_uri(tmp_path)
    run_id = _new_run(uri)
    writer = MetricWriter(
        SenderSettings(uri=uri, run_id=run_id, flush_every_s=60.0, replay_path=str(tmp_path / "r"))
    )
    writer.put(_points(1, 10))
    time.sleep(0.05)
    threads = [
        threading.Thread(target=lambda start=start: writer.put(_points(start, 10)))
        for start in range(11, 211, 10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    history = client_for(uri).get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 211))
    first = {m.timestamp for m in history if m.step <= 10}
    later = {m.timestamp for m in history if m.step > 10}
    assert len(first) == 1 and max(first) < min(later), (first, later)
    assert writer.close() == []


def test_points_the_store_never_took_are_saved_and_trainlab_sync_sends_them(
    tmp_path: Path,
) -> None:
    """The child cannot open its store (a folder that cannot exist): the points go to a
    replay file when the writer closes, and ``trainlab sync --uri`` delivers them."""
    uri = sqlite_uri(tmp_path)
    run_id = _new_run(uri)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    replay = tmp_path / "unsent" / f"{run_id}.jsonl"
    writer = MetricWriter(
        SenderSettings(
            uri=f"sqlite:///{blocker}/mlflow.db",
            run_id=run_id,
            flush_every_s=0.0,
            close_timeout_s=1.0,
            replay_path=str(replay),
        )
    )
    writer.put(_points(1, 25))
    writer.flush()  # returns although nothing was sent: the store is unreachable
    assert writer.degraded
    writer.close()
    assert writer.unsent == [(str(replay), 25)]
    saved = read_replay_file(replay)
    assert [p[2] for p in saved.points] == list(range(1, 26))

    done = run_cli("sync", str(replay), "--uri", uri, cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert "25 points sent, 0 already in the store" in done.stdout
    history = client_for(uri).get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 26))
    assert not replay.exists() and replay.with_suffix(".synced").exists()

    # Syncing again sends nothing twice.
    replay.write_text(replay.with_suffix(".synced").read_text())
    again = run_cli("sync", str(replay), "--uri", uri, cwd=tmp_path)
    assert again.returncode == 0, explain(again)
    assert "0 points sent, 25 already in the store" in again.stdout


def test_sync_rejects_a_file_that_is_not_a_replay_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text(json.dumps({"hello": 1}) + "\n")
    done = run_cli("sync", str(bogus), cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "not a trainlab replay file" in done.stderr
    assert "Traceback" not in done.stderr
