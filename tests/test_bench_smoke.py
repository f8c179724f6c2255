"""The benchmark still runs end to end at its smallest size (timings are not asserted: benchmarks are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.config import PROJECT_ROOT


def test_the_benchmark_runs_at_its_smallest_size(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--out", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "smoke.json").read_text())
    restore = results["restore"][0]
    assert restore["harness"]["phases"].keys() >= {"download", "provision", "restore"}
    assert restore["bare"]["seconds"] > 0
    assert len(restore["harness"]["own_seconds"]) == 1  # the drill's own cost: the restore less its pg_restore
    assert results["listing"]["objects"] == 500
    migrations = results["migrations"]
    assert migrations["pytest_alembic"]["summary"].startswith("4 passed"), migrations
    assert migrations["gate"]["summary"].startswith("3 passed"), migrations
    assert migrations["ratio"] is not None
    markdown = (tmp_path / "smoke.md").read_text()
    assert "harness restore" in markdown
    assert "the drill's own cost beside it" in markdown
    assert "pytest-alembic's built-in tests" in markdown


def test_the_scale_benchmark_runs_through_the_streaming_s3_stand_in(tmp_path: Path) -> None:
    """``--s3 s3rver`` (the 5 GB figure's stand-in): backup and both restores go through it, moto's files stay."""
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--only", "scale", "--sizes", "2", "--s3", "s3rver", "--out", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "scale-s3rver.json").read_text())
    assert results["s3"] == "s3rver"
    size = results["scale"][0]
    assert size["local"]["phases"].keys() >= {"download", "provision", "restore"}
    assert size["existing"]["phases"].keys() >= {"download", "restore"}
    assert size["bare_tuned"]["seconds"] > 0
    assert size["s3_peak_rss_mb"] > 0
    assert not (tmp_path / "scale.json").exists()
    assert "S3 stand-in s3rver" in (tmp_path / "scale-s3rver.md").read_text()
