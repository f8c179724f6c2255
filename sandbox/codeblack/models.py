"""The schema of the backend, and the single source of truth that the migrations must build.

The drift gate compares ``Base.metadata`` with what ``alembic upgrade head`` builds, so every index, server
default, type and nullability here is mirrored exactly in ``sandbox/migrations/versions``. Types follow what
a migration linter expects of a healthy schema: ``bigint`` identity keys, ``text`` rather than ``varchar(n)``
and ``timestamptz``. A naming convention makes constraint and index names deterministic so that a downgrade
can drop exactly what an upgrade created.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    MetaData,
    Numeric,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Application",
    "Base",
    "BlacklistEntry",
    "ConfigChange",
    "ConfigChangeHistory",
    "ConfigEntry",
    "Heartbeat",
    "Order",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_NOW = text("now()")


class Base(DeclarativeBase):
    """Declarative base whose metadata the migrations' autogenerate comparison uses."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Application(Base):
    """A credit application: the root of the business data a restore must bring back."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    applicant_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'submitted'"))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW, index=True)


class Order(Base):
    """A payout order for an application; ``currency`` arrived last, in ``b6e8dcb19a40``."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    application_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("applications.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(Text, server_default=text("'EUR'"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'created'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW, index=True)


class BlacklistEntry(Base):
    """An identifier (email, phone or device) that risk checks refuse."""

    __tablename__ = "blacklist_entries"
    __table_args__ = (
        CheckConstraint("kind IN ('email', 'phone', 'device')", name="kind"),
        UniqueConstraint("kind", "value"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


class ConfigEntry(Base):
    """A runtime setting; values of sensitive entries stay NULL because they live in the environment."""

    __tablename__ = "config_entries"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    critical: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    sensitive: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)
    updated_by: Mapped[str | None] = mapped_column(Text)


class ConfigChange(Base):
    """A proposed change of a critical key, waiting for a second, different approver."""

    __tablename__ = "config_changes"
    __table_args__ = (CheckConstraint("status IN ('pending', 'approved', 'rejected', 'applied')", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    config_key: Mapped[str] = mapped_column(Text, ForeignKey("config_entries.key"), index=True)
    new_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    proposed_by: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(Text)


class ConfigChangeHistory(Base):
    """One audit row per event of a config change; kept without a key FK so it outlives removed keys."""

    __tablename__ = "config_change_history"
    __table_args__ = (
        CheckConstraint(
            "action IN ('proposed', 'approved', 'rejected', 'applied', 'refused')",
            name="action",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    change_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("config_changes.id"), index=True)
    config_key: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW, index=True)


class Heartbeat(Base):
    """A liveness mark written by the app, so a restore shows how recent the newest data is."""

    __tablename__ = "heartbeats"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW, index=True)
