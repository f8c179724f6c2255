"""The drill's clocks: named phases, RTO from the incident to health green, RPO from the restored data."""

from harness.measure.cutover import cut_over_verdict
from harness.measure.objectives import (
    Measure,
    NewestData,
    newest_data,
    redis_heartbeat,
    redis_rpo,
    rpo_measure,
    rto_measure,
)
from harness.measure.stopwatch import Stopwatch

__all__ = [
    "Measure",
    "NewestData",
    "Stopwatch",
    "cut_over_verdict",
    "newest_data",
    "redis_heartbeat",
    "redis_rpo",
    "rpo_measure",
    "rto_measure",
]
