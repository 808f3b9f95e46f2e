"""The MLflow UI in a real browser: ``trainlab ui`` on a store holding a sweep, opened in
headless Chromium (Playwright driving the system's ``/usr/bin/chromium``); the sweep's
parent run is in the runs table, its children open under it, and the chart view draws their
metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import all_runs, cli_command, cli_env, explain, run_cli, sqlite_uri
from mlflow_server import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
UI_STARTUP_S = 240  # the UI answers in ~15 s on a quiet machine, 100 s on a loaded one
PAGE_TIMEOUT_MS = 120_000
# The run-name cell's expand button (MLflow 3.x's component id; nested runs start collapsed).
EXPAND_CHILDREN = 'button[data-component-id$="runnamecellrenderer.tsx_46"]'
CHART_CARD = '[data-testid="experiment-view-compare-runs-card"]'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (.ci/run installs it)"),
]


class UiProcess:
    """``trainlab ui`` in its own process group; the runs URL it prints."""

    def __init__(self, folder: Path, uri: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [*cli_command("ui", "--port", str(self.port), f"tracking.uri={uri}")],
            cwd=folder, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(r"(http://\S+#/experiments/\d+/runs)", line)
            if found:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def wait_url(self) -> str:
        self._ready.wait(UI_STARTUP_S)
        if self.url is None:
            self.stop()
            pytest.fail("trainlab ui printed no runs URL:\n" + "".join(self.lines[-40:]))
        return self.url

    def stop(self) -> int | None:
        """SIGTERM (what Ctrl-C does too; a background process may ignore SIGINT): the UI
        stops its server and the server's helpers."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


def test_the_ui_shows_the_sweep_its_children_and_their_charts(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train", "-m", "optimizer=sgd,adam", "trainer.max_epochs=2", f"tracking.uri={uri}",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, explain(done)
    runs = all_runs(uri)
    parent = next(r for r in runs if r.data.tags.get("trainlab.role") == "sweep")
    children = sorted(r.info.run_name for r in runs if r is not parent)
    assert children == ["optimizer=adam", "optimizer=sgd"]

    ui = UiProcess(tmp_path, uri)
    try:
        url = ui.wait_url()
        assert url.endswith(f"/#/experiments/{parent.info.experiment_id}/runs")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                # `load` and then the table: the page polls forever, so never `networkidle`.
                page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
                page.get_by_text(parent.info.run_name, exact=True).first.wait_for()
                page.locator(EXPAND_CHILDREN).first.click()
                for name in children:
                    page.get_by_text(name, exact=True).first.wait_for()
                page.locator('label:has(input[value="CHART"])').click()
                card = page.locator(CHART_CARD).filter(has_text="train/loss").first
                card.wait_for()
                # A drawn chart: plotly's SVG with one trace per visible run.
                card.locator("svg.main-svg").first.wait_for()
                assert card.locator("g.trace").count() >= len(children)
                page.screenshot(path=str(tmp_path / "ui.png"))
            finally:
                browser.close()
    finally:
        status = ui.stop()
    assert status == 0, "".join(ui.lines[-40:])
    time.sleep(1)
    leftover = subprocess.run(
        ["pgrep", "-g", str(ui.process.pid)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", "the UI's helper processes were stopped with it"
