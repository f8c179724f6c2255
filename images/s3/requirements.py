"""Print moto[server]'s closure as uv.lock pins it: one ``name==version`` line each, with its wheels' hashes.

The S3 image runs the moto the local provider runs (same version, same dependencies), so ``scripts/images``
installs exactly these lines, hashes required, for the image's Python; a change of the lock changes the
lines, and so the image's recipe hash. Markers are evaluated for CPython 3.11 on x86_64 Linux (Debian
bookworm's python3).

Usage: python images/s3/requirements.py uv.lock
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from packaging.markers import Marker, default_environment

ENVIRONMENT = {
    **default_environment(),
    "implementation_name": "cpython",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.2",
    "python_version": "3.11",
    "sys_platform": "linux",
}


def closure(lock: dict[str, Any], root: str, extras: set[str]) -> list[dict[str, Any]]:
    """The locked packages ``root[extras]`` needs on the image's platform, root included, sorted by name.

    A package locked in two versions (one per Python range) is named with its version by its dependants.
    """
    versions: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], []).append(package)

    def locked(dep: dict[str, Any]) -> dict[str, Any]:
        found = [
            package for package in versions[dep["name"]] if dep.get("version", package["version"]) == package["version"]
        ]
        if len(found) != 1:
            raise SystemExit(f"uv.lock: {dep['name']} is locked in {len(found)} versions that fit; name one")
        return found[0]

    wanted: dict[tuple[str, str], set[str]] = {}
    todo = [(locked({"name": root}), extras)]
    while todo:
        package, asked = todo.pop()
        key = (package["name"], package["version"])
        if key in wanted and asked <= wanted[key]:
            continue
        wanted.setdefault(key, set()).update(asked)
        deps = list(package.get("dependencies", []))
        for extra in asked:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        todo += [(locked(dep), set(dep.get("extra", []))) for dep in deps
                 if "marker" not in dep or Marker(dep["marker"]).evaluate(ENVIRONMENT)]  # fmt: skip
    return [locked({"name": name, "version": version}) for name, version in sorted(wanted)]


def main(lock_path: str) -> None:
    """Print the requirement lines of moto[server]."""
    lock = tomllib.loads(Path(lock_path).read_text())
    for package in closure(lock, "moto", {"server"}):
        hashes = " ".join(f"--hash={wheel['hash']}" for wheel in package.get("wheels", []))
        print(f"{package['name']}=={package['version']} {hashes}")


if __name__ == "__main__":
    main(*sys.argv[1:])
