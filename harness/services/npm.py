"""Command-line tools from the npm registry, installed once under a cache directory the first time they are needed.

The Allure 3 CLI (the HTML report) and the benchmark's streaming S3 stand-in come this way: pinned by the
caller, installed with the ordinary npm client, kept out of the project's Python environment.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.errors import HarnessError
from harness.services.base import run_tool

__all__ = ["npm_tool"]

_INSTALL_TIMEOUT_S = 300.0


def npm_tool(package: str, binary: str, cache: Path, *, purpose: str) -> Path:
    """The executable ``binary`` of the npm ``package`` (``name@version``), installed under ``cache`` if missing.

    ``purpose`` starts the error when node or npm is missing (e.g. "rendering the HTML report").

    Raises:
        HarnessError: node or npm is missing, or the install failed.
    """
    cli = cache / "node_modules" / ".bin" / binary
    if cli.exists():
        return cli
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise HarnessError(
            f"{purpose} needs {' and '.join(missing)}: install Node.js 20 or newer "
            "(for example `apt-get install nodejs npm`), then run the command again"
        )
    cache.mkdir(parents=True, exist_ok=True)
    run_tool(["npm", "install", "--no-audit", "--no-fund", "--prefix", cache, package],
             what=f"npm install {package} into {cache}", timeout=_INSTALL_TIMEOUT_S, inherit_env=True)  # fmt: skip
    if not cli.exists():
        raise HarnessError(f"npm installed {package} into {cache} but {cli} is missing; delete {cache} and retry")
    return cli
