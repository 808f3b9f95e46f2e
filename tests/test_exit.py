"""``trainlab.cli.main.exit_now``: the exit code kept, atexit handlers run, and a live
non-daemon thread joined (the ordinary exit) rather than cut off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
from trainlab.cli.main import exit_now

folder = Path(sys.argv[1])
atexit.register(lambda: (folder / "atexit").write_text("ran"))
print("buffered output", end="")  # no newline: still in stdout's buffer at the exit
if sys.argv[2] == "thread":
    def late() -> None:
        time.sleep(0.3)
        (folder / "thread").write_text("finished")
    threading.Thread(target=late).start()
exit_now(int(sys.argv[3]))
"""


def run(tmp_path: Path, mode: str, code: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), mode, str(code)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_code_is_kept_and_atexit_handlers_and_buffers_run(tmp_path: Path) -> None:
    done = run(tmp_path, "plain", 3)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered output"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_live_non_daemon_thread_is_joined_first(tmp_path: Path) -> None:
    done = run(tmp_path, "thread", 0)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread").read_text() == "finished"
    assert (tmp_path / "atexit").read_text() == "ran"
