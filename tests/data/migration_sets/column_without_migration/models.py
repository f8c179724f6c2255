"""The sandbox's models plus orders.note, which no migration adds (schema drift)."""

import sqlalchemy as sa

from sandbox.codeblack.models import NAMING_CONVENTION, Base

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
for table in Base.metadata.sorted_tables:
    table.to_metadata(metadata)
metadata.tables["orders"].append_column(sa.Column("note", sa.Text(), nullable=True))
