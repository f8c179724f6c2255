"""RPO and RTO per drill across the chain, drawn against the objectives.

One drill says whether this month is fine; the trend says whether recovery is drifting towards the limit
before it crosses it. Drawn on matplotlib's Agg canvas without pyplot, so it needs no display, keeps no global
figure state and works on a headless CI runner.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.records.record import DrillRecord

__all__ = ["plot_trend"]

_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}


def _series(records: list[DrillRecord], name: str, unit: str) -> tuple[list[str], list[float], list[float]]:
    labels, values, objectives = [], [], []
    for record in records:
        measure = record.measure(name)
        if measure is None or measure.unit not in _SECONDS:
            continue
        scale = _SECONDS[measure.unit] / _SECONDS[unit]
        labels.append(record.started_at.strftime("%Y-%m-%d\n%H:%M"))
        values.append(measure.value * scale)
        objectives.append(measure.objective * scale)
    return labels, values, objectives


def plot_trend(records: list[DrillRecord], path: Path) -> Path:
    """Draw RPO (hours) and RTO (minutes) per drill with their objective lines into a PNG at ``path``."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for axis, name, unit in ((axes[0], "RPO", "h"), (axes[1], "RTO", "min")):
        labels, values, objectives = _series(records, name, unit)
        positions = list(range(len(labels)))
        axis.plot(positions, values, marker="o", label=f"measured {name}")
        axis.step(positions, objectives, where="mid", color="red", linestyle="--", label="objective")
        for x, value, objective in zip(positions, values, objectives, strict=True):
            axis.annotate(f"{value:.2f}", (x, value), textcoords="offset points", xytext=(0, 6),
                          ha="center", color="black" if value <= objective else "red")  # fmt: skip
        axis.set_xticks(positions, labels, fontsize=7)
        axis.set_title(f"{name} per drill ({unit})")
        axis.set_ylabel(unit)
        axis.margins(x=0.08, y=0.15)
        axis.set_ylim(bottom=0)
        axis.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
