"""A page printed to PDF by headless Chromium: the drill record as a document an auditor can file.

Chromium is the renderer the report is checked with, so what is printed is what was checked. It runs with a
throwaway profile and without any background networking (this machine's closed network refuses it, and a
report must not phone anywhere), and only ever opens a local file the harness wrote.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.services.base import run_tool

__all__ = ["CHROMIUM_FLAGS", "find_chromium", "print_pdf"]

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
_PRINT_TIMEOUT_S = 120.0


def find_chromium() -> Path:
    """The Chromium binary on PATH.

    Raises:
        HarnessError: none is installed, with how to install it.
    """
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise HarnessError("printing the drill record to PDF needs Chromium: install it (`apt-get install chromium`)")


def print_pdf(page: Path, pdf: Path) -> Path:
    """Print the local HTML ``page`` to ``pdf`` (A4, no header or footer); returns ``pdf``.

    Raises:
        HarnessError: Chromium is missing, failed, or wrote no PDF.
    """
    chromium = find_chromium()
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        run_tool([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
                  f"--print-to-pdf={pdf.resolve()}", page.resolve().as_uri()],
                 what=f"chromium --print-to-pdf {page.name}", timeout=_PRINT_TIMEOUT_S,
                 env={"HOME": profile})  # fmt: skip
    if not pdf.exists() or pdf.read_bytes()[:5] != b"%PDF-":
        raise HarnessError(f"chromium printed no PDF of {page} to {pdf}")
    return pdf
