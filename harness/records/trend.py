"""RPO and RTO per drill across the chain, drawn against the objectives.

One drill says whether this month is fine; the trend says whether recovery is drifting towards the limit
before it crosses it. The chart is a small SVG written directly: text that any browser, Markdown viewer or
Allure shows, that needs no display, and that costs a drill nothing to draw (a plotting library took longer
to import than the whole pre-deploy gate takes to check its migrations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

from harness.records.record import DrillRecord, Measure

__all__ = ["TREND_SUFFIX", "plot_trend"]

TREND_SUFFIX = "-trend.svg"
"""What a record's chart is named after its stem."""

_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_PANEL_W, _PANEL_H, _GAP = 520, 340, 40
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 40, 58
_MEASURED, _LIMIT, _OVER = "#1f77b4", "#d62728", "#d62728"


@dataclass(frozen=True)
class _Series:
    """One measure per drill, in a unit, with its objective beside each value."""

    name: str
    unit: str
    labels: list[tuple[str, str]]
    values: list[float]
    objectives: list[float]


def _measure_of(record: DrillRecord, name: str) -> Measure | None:
    """``record``'s measure ``name``; of a drill of several databases, the RPO nearest its objective stands for it.

    Such a drill measures an RPO per database (``RPO <database>``, see ``database_rows``): the chart shows the
    database that limits the recovery.
    """
    found = record.measure(name)
    if found is not None or name != "RPO":
        return found
    each = [m for m in (record.measure(f"RPO {database}") for database in record.database_rows) if m is not None]
    return max(each, key=lambda m: m.value / m.objective, default=None)


def _series(records: list[DrillRecord], name: str, unit: str) -> _Series:
    labels, values, objectives = [], [], []
    for record in records:
        measure = _measure_of(record, name)
        if measure is None or measure.unit not in _SECONDS:
            continue
        scale = _SECONDS[measure.unit] / _SECONDS[unit]
        labels.append((record.started_at.strftime("%Y-%m-%d"), record.started_at.strftime("%H:%M")))
        values.append(measure.value * scale)
        objectives.append(measure.objective * scale)
    return _Series(name, unit, labels, values, objectives)


def _nice_top(highest: float) -> tuple[float, float]:
    """An axis top at or above ``highest`` (with headroom) and a tick step of 1, 2 or 5 times a power of ten."""
    if highest <= 0:
        return 1.0, 0.2
    raw = highest * 1.15 / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(highest * 1.15 / step), step


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"


def _panel(series: _Series, x0: float) -> list[str]:
    """One panel: axes, ticks, the objective as a dashed step line, the measured values as a marked line."""
    width, height = _PANEL_W - _LEFT - _RIGHT, _PANEL_H - _TOP - _BOTTOM
    left, top = x0 + _LEFT, _TOP
    count = len(series.values)
    ymax, step = _nice_top(max([*series.values, *series.objectives], default=0.0))

    def x(index: float) -> float:
        return left + width * (index + 0.5) / max(count, 1)

    def y(value: float) -> float:
        return top + height * (1 - value / ymax)

    out = [
        f'<text x="{left + width / 2:.1f}" y="{top - 16}" text-anchor="middle" font-size="14">'
        f"{series.name} per drill ({series.unit})</text>",
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#444"/>',
    ]
    tick = 0.0
    while tick <= ymax + step / 1000:
        out.append(f'<line x1="{left - 4}" x2="{left + width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{_number(tick)}</text>')  # fmt: skip
        tick += step
    for index, (day, clock) in enumerate(series.labels):
        out.append(f'<text x="{x(index):.1f}" y="{top + height + 18}" text-anchor="middle" font-size="10">'
                   f'{escape(day)}<tspan x="{x(index):.1f}" dy="13">{escape(clock)}</tspan></text>')  # fmt: skip
    if not count:
        out.append(f'<text x="{left + width / 2:.1f}" y="{top + height / 2:.1f}" text-anchor="middle" '
                   f'font-size="12" fill="#666">no {series.name} measured yet</text>')  # fmt: skip
        return out
    # The objective in force at each drill, drawn as steps half-way between drills (it may change over time).
    steps = [f"{x(-0.5):.1f},{y(series.objectives[0]):.1f}"]
    for index, objective in enumerate(series.objectives):
        steps += [f"{x(index - 0.5):.1f},{y(objective):.1f}", f"{x(index + 0.5):.1f},{y(objective):.1f}"]
    out.append(f'<polyline points="{" ".join(steps)}" fill="none" stroke="{_LIMIT}" stroke-dasharray="6 4"/>')
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(series.values))
    out.append(f'<polyline points="{points}" fill="none" stroke="{_MEASURED}" stroke-width="2"/>')
    for index, (value, objective) in enumerate(zip(series.values, series.objectives, strict=True)):
        colour = _OVER if value > objective else "#000"
        out.append(f'<circle cx="{x(index):.1f}" cy="{y(value):.1f}" r="4" fill="{_MEASURED}"/>'
                   f'<text x="{x(index):.1f}" y="{y(value) - 9:.1f}" text-anchor="middle" font-size="11" '
                   f'fill="{colour}">{value:.2f}</text>')  # fmt: skip
    legend_y = top + 14
    out.append(f'<line x1="{left + 8}" x2="{left + 30}" y1="{legend_y}" y2="{legend_y}" stroke="{_MEASURED}" '
               f'stroke-width="2"/><text x="{left + 36}" y="{legend_y + 4}" font-size="11">measured '
               f'{series.name}</text><line x1="{left + 8}" x2="{left + 30}" y1="{legend_y + 16}" '
               f'y2="{legend_y + 16}" stroke="{_LIMIT}" stroke-dasharray="6 4"/><text x="{left + 36}" '
               f'y="{legend_y + 20}" font-size="11">objective</text>')  # fmt: skip
    return out


def plot_trend(records: list[DrillRecord], path: Path) -> Path:
    """Draw RPO (hours) and RTO (minutes) per drill with their objective lines into an SVG at ``path``.

    A value above its objective is labelled in red, so a missed objective stands out in the chart too.
    """
    panels = [_series(records, "RPO", "h"), _series(records, "RTO", "min")]
    width = 2 * _PANEL_W + _GAP
    body = [line for i, series in enumerate(panels) for line in _panel(series, i * (_PANEL_W + _GAP))]
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_PANEL_H}" '
        f'viewBox="0 0 {width} {_PANEL_H}" font-family="DejaVu Sans, Arial, sans-serif">\n'
        f"<title>RPO and RTO per drill against their objectives</title>\n"
        f'<rect width="100%" height="100%" fill="#fff"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
    return path
