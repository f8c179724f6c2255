"""Command line for the records: verify the hash chain, or render the HTML report.

``python -m harness.records verify [reports/drills]`` exits 1 and names the first altered, removed or
reordered record; ``python -m harness.records render [reports/allure-results] [reports/allure-report]``
renders the Allure 3 HTML report. Errors are one line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.records.chain import verify_chain
from harness.records.report import render_html


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m harness.records", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the drill records' hash chain")
    verify.add_argument("directory", nargs="?", type=Path, default=Path("reports/drills"))
    render = commands.add_parser("render", help="render the Allure HTML report with the Allure 3 CLI")
    render.add_argument("results", nargs="?", type=Path, default=Path("reports/allure-results"))
    render.add_argument("output", nargs="?", type=Path, default=Path("reports/allure-report"))
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            if not args.directory.is_dir():
                raise HarnessError(
                    f"{args.directory}: no drill records here; run the monthly drill or pass the directory"
                )
            result = verify_chain(args.directory)
            print(result)
            return 0 if result.ok else 1
        print(f"report: {render_html(args.results, args.output)}")
        return 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
