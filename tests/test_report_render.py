"""The HTML report as an auditor sees it: rendered by the Allure 3 CLI, opened in headless Chromium.

The report is a JavaScript application that fetches its data over HTTP, so it is served from a loopback
server and read from the DOM after the scripts ran. Set ``CODEBLACK_UPDATE_SCREENSHOT=1`` to refresh the
README's picture ``reports/screenshot.png`` (it is written only when missing otherwise, so test runs leave
the working tree clean).
"""

from __future__ import annotations

import functools
import html
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from harness.records.report import ALLURE_CACHE, render_html
from tests.harness.test_records_session import run_drill, write_drill_project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = PROJECT_ROOT / "reports" / "screenshot.png"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or (shutil.which("npm") is None and not (ALLURE_CACHE / "node_modules/.bin/allure").exists()),
    reason="needs chromium and npm (Node.js) to render and open the Allure report",
)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def report_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    run = run_drill(write_drill_project(tmp_path_factory.mktemp("drill")))
    index = render_html(run.results, run.reports / "allure-report")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(index.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _chromium(url: str, profile: Path, *extra: str) -> str:
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_shows_scenarios_figures_and_verdict(report_url: str, tmp_path: Path) -> None:
    dom = _chromium(report_url, tmp_path / "profile", "--dump-dom")
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", dom, flags=re.S)))
    assert "The newest dump restores within the RTO" in text
    assert "The restored rows match the manifest" in text
    assert "Drill verdict NO-GO, RPO 1.5 h (objective 6 h), RTO 12 min (objective 60 min)" in text
    # The overview's environment block shows its first lines unfolded: the verdict and whether it is evidence.
    assert "drill.verdict NO-GO" in text
    assert "drill.sandbox false" in text


def test_report_screenshot(report_url: str, tmp_path: Path) -> None:
    picture = tmp_path / "report.png"
    _chromium(report_url, tmp_path / "profile", f"--screenshot={picture}", "--window-size=1400,900")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("CODEBLACK_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        shutil.copyfile(picture, SCREENSHOT)
