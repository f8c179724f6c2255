"""The RTO projected to production's size: what the drill's restore would take on the real database.

A drill restores whatever dump it is given; on a CI runner that is often a small copy, and "RTO 2 minutes" on
12 MB says nothing about 2 TB. The phases whose work grows with the data (download, ``pg_restore``, the
integrity checks) are scaled by production's size over the size of the database the drill restored; the
others (provisioning a server, starting the app) are taken as measured. The projection is linear, which is
optimistic for index builds that grow faster than the data and pessimistic for a faster network or disk in
production: the record states its basis, so a reader can judge it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.config import Objectives
from harness.measure.objectives import Measure
from harness.records.record import format_number

__all__ = ["SCALING_PHASES", "ProductionSize", "combined_size", "production_size", "project_rto"]

SCALING_PHASES = ("download", "restore", "checks")
"""The phases whose work grows with the data; the rest (provisioning, app start) do not."""

_GB = 1024**3


@dataclass(frozen=True)
class ProductionSize:
    """Production's database size in bytes and where the figure comes from."""

    bytes: int
    basis: str


def production_size(
    declared_gb: float, manifest_bytes: int | None, key: str = "[database] production_size_gb"
) -> ProductionSize | None:
    """Production's size: ``production_size_gb`` when declared (at ``key``), else the dump manifest's.

    The manifest's ``database_size`` is ``pg_database_size`` read in the dump's own snapshot by
    ``codeblack-drills backup postgres``; ``None`` when neither says.
    """
    if declared_gb > 0:
        return ProductionSize(round(declared_gb * _GB), key)
    if manifest_bytes:
        return ProductionSize(manifest_bytes, "pg_database_size in the dump's manifest")
    return None


def combined_size(sizes: Mapping[str, ProductionSize], of: int = 1) -> ProductionSize:
    """Several databases restored in one drill, projected together: their sizes summed, each one's basis named.

    The phases measured cover every database's restore, so they scale by the sum of production's sizes over
    the sum of the restored ones. ``of``: how many databases the drill has; when this process restored fewer
    (a pytest-xdist worker's share), the basis says so.
    """
    if len(sizes) == 1 and of <= 1:
        return next(iter(sizes.values()))
    basis = "; ".join(f"{name} {_size(size.bytes)} ({size.basis})" for name, size in sizes.items())
    counted = f"{len(sizes)} of {of} databases" if len(sizes) < of else f"{len(sizes)} databases"
    return ProductionSize(sum(size.bytes for size in sizes.values()), f"{counted}: {basis}")


def _size(count: float) -> str:
    for unit, scale in (("TB", 1024**4), ("GB", _GB), ("MB", 1024**2), ("KB", 1024)):
        if count >= scale:
            return f"{format_number(count / scale)} {unit}"
    return f"{int(count)} B"


def project_rto(
    rto_minutes: float,
    phases: Mapping[str, float],
    restored_bytes: int,
    production: ProductionSize,
    objectives: Objectives,
) -> Measure:
    """``RTO projected``: the measured RTO plus the scaling phases' extra time at production's size, in minutes.

    A production smaller than the restored copy is not scaled down: the drill's own RTO stands.
    """
    factor = max(production.bytes / max(restored_bytes, 1), 1.0)
    scaling = {name: phases[name] for name in SCALING_PHASES if name in phases}
    extra_s = sum(scaling.values()) * (factor - 1)
    projected = rto_minutes + extra_s / 60
    scaled = " + ".join(f"{name} {format_number(s)} s" for name, s in scaling.items()) or "no scaling phase measured"
    detail = (
        f"production {_size(production.bytes)} ({production.basis}) / restored {_size(restored_bytes)} = "
        f"x{format_number(factor)}; {scaled} scaled by it, the other phases as measured "
        f"(RTO {format_number(rto_minutes)} min at the drill's size; linear projection)"
    )
    return Measure("RTO projected", projected, objectives.rto_minutes, "min", detail)
