"""Text from the bucket reaches the drill record (object keys, manifest fields, error messages it quotes).

The record is handed over as a standalone page and printed to PDF by Chromium on the drill's host. Markdown
in such text, an image pointing at a server, would make that Chromium fetch it: the drill would reach a server
it did not create (and tell it when the drill ran). The page forbids every fetch and script (a
Content-Security-Policy); its own images are inlined. A real HTTP server on loopback shows nothing is fetched.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from harness.records.html import markdown_page
from harness.records.pdf import find_chromium, print_pdf


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads ``seen``."""


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_an_object_key_holding_a_remote_image_fetches_nothing_when_the_record_is_printed(
    tmp_path: Path, listener: tuple[int, list[str]]
) -> None:
    try:
        find_chromium()
    except Exception:
        pytest.skip("needs Chromium")
    port, seen = listener
    key = f"db/nightly-![x](http://127.0.0.1:{port}/leak.png)-<script>fetch('http://127.0.0.1:{port}/js')</script>"
    page = tmp_path / "record.html"
    page.write_text(markdown_page(f"# Drill\n\n| Dump | Result |\n| --- | --- |\n| {key} | restored |\n", "Drill"))

    print_pdf(page, tmp_path / "record.pdf")

    assert (tmp_path / "record.pdf").stat().st_size > 0
    assert seen == [], f"printing the record fetched {seen} from a server named in an object key"
