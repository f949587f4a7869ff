"""Server-rendered charts: the geometry is computed here, the SVG markup is in the template."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDTH = 760
LABEL_WIDTH = 170
ROW_HEIGHT = 64
BAR_AREA = 44  # the tallest bar, in px
TOP = 28  # room for the week labels


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    hours: float
    meets: bool
    label: str  # for screen readers and tooltips


@dataclass
class Row:
    name: str
    y: float
    minimum_y: float | None
    minimum_hours: float
    at_risk: bool
    bars: list[Bar] = field(default_factory=list)


@dataclass
class WeeklyChart:
    width: int
    height: int
    label_width: int
    weeks: list[tuple[str, float]]  # (ISO week, x of its centre)
    rows: list[Row]
    minimum_hours: float


def weekly_hours_chart(weeks: list[dict[str, Any]], names: dict[str, str], at_risk: set[str]) -> WeeklyChart:
    """One row per patient, one bar per ISO week (hours attended), a dashed line at the minimum;
    `at_risk` are the patients the risk card flags (reports.at_risk), marked on their row."""
    week_ids = sorted({w["week"] for w in weeks})
    patient_ids = sorted({w["patient_id"] for w in weeks}, key=lambda p: (names.get(p) or p).lower())
    by_key = {(w["patient_id"], w["week"]): w for w in weeks}
    top_hours = max([w["attended_seconds"] / 3600 for w in weeks] + [w["minimum_seconds"] / 3600 for w in weeks]
                    + [1.0])
    scale = BAR_AREA / (top_hours * 1.1)
    column = (WIDTH - LABEL_WIDTH - 50) / max(1, len(week_ids))  # 50: room for the minimum's label
    bar_width = min(48.0, column * 0.6)
    centres = [(week, LABEL_WIDTH + column * (i + 0.5)) for i, week in enumerate(week_ids)]
    rows = []
    minimum_hours = 0.0
    for index, patient_id in enumerate(patient_ids):
        base = TOP + ROW_HEIGHT * index + BAR_AREA + 8
        mine = [by_key.get((patient_id, week)) for week in week_ids]
        minimum = max((w["minimum_seconds"] for w in mine if w), default=0) / 3600
        minimum_hours = max(minimum_hours, minimum)
        row = Row(
            name=names.get(patient_id, patient_id),
            y=base,
            minimum_y=base - minimum * scale if minimum else None,
            minimum_hours=minimum,
            at_risk=patient_id in at_risk,
        )
        for (week, centre), item in zip(centres, mine, strict=True):
            hours = item["attended_seconds"] / 3600 if item else 0.0
            height = max(hours * scale, 1.0)
            meets = bool(item and item["meets_minimum"])
            row.bars.append(Bar(
                x=round(centre - bar_width / 2, 1), y=round(base - height, 1), width=round(bar_width, 1),
                height=round(height, 1), hours=round(hours, 1), meets=meets,
                label=f"{row.name}, week {week}: {hours:.1f} hours"
                      + (f" of {minimum:.0f} required" if minimum else ""),
            ))
        rows.append(row)
    height = TOP + ROW_HEIGHT * max(1, len(rows)) + 4
    return WeeklyChart(WIDTH, height, LABEL_WIDTH, [(w, round(x, 1)) for w, x in centres], rows, minimum_hours)
