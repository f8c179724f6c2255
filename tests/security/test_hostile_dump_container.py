"""A dump restored in a container: the container's tools read its directory, and must not change it.

``pg_restore`` runs in the container by ``docker exec`` as the harness's uid (root, when the drill runs as root,
with every capability dropped). Root owns the dump's directory, so only the mount keeps a crafted archive (or
whatever runs in the container) from rewriting the dump the drill verified: it is mounted read-only.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.services.docker import ContainerPostgres, docker_available, image_majors

IMAGE = "codeblack-drills/postgres:{major}"


def test_the_dumps_directory_is_read_only_to_the_containers_tools(tmp_path: Path) -> None:
    if not docker_available() or not image_majors(IMAGE):
        pytest.skip("needs a Docker engine with the project's PostgreSQL images (scripts/images)")
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "nightly.dump").write_bytes(b"PGDMP")
    server = ContainerPostgres.create("rodump", image=min(image_majors(IMAGE).values()), files=dump)
    try:
        as_tool = ["docker", "exec", "-u", f"{os.geteuid()}:{os.getegid()}", server.container.get_container_id()]
        done = subprocess.run([*as_tool, "sh", "-c", f"echo forged > {dump}/nightly.dump; touch {dump}/planted"],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    finally:
        server.stop()
    assert "Read-only file system" in done.stderr, done.stderr
    assert (dump / "nightly.dump").read_bytes() == b"PGDMP"
    assert sorted(path.name for path in dump.iterdir()) == ["nightly.dump"]
