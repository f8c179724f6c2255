"""npm tools (the Allure CLI, the bench's s3rver) say what is missing instead of failing inside npm."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.services.npm import npm_tool


def test_without_node_and_npm_the_error_names_both_and_the_purpose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with neither node nor npm on it
    with pytest.raises(HarnessError) as raised:
        npm_tool("s3rver@3.7.1", "s3rver", tmp_path / "cache", purpose="the s3rver S3 stand-in")
    assert str(raised.value) == (
        "the s3rver S3 stand-in needs node and npm: install Node.js 20 or newer (for example "
        "`apt-get install nodejs npm`), then run the command again"
    )
    assert not (tmp_path / "cache").exists()


def test_an_installed_tool_is_found_without_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = tmp_path / "cache" / "node_modules" / ".bin" / "tool"
    cli.parent.mkdir(parents=True)
    cli.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert npm_tool("tool@1", "tool", tmp_path / "cache", purpose="a tool") == cli
