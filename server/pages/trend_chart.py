"""A patient's scores over time as an SVG (one per instrument), with the instrument's bands behind
the line: the geometry is computed here, the markup is in patient_measures.html."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from server.measures.instruments import INSTRUMENTS
from server.measures.store import Measure

WIDTH = 760
HEIGHT = 220
LEFT = 40
RIGHT = 130  # room for the band names
TOP = 12
BOTTOM = 36  # room for the dates


@dataclass
class Point:
    x: float
    y: float
    label: str  # for screen readers and tooltips


@dataclass
class BandRect:
    y: float
    height: float
    name: str
    css: str


@dataclass
class Trend:
    instrument: str
    width: int
    height: int
    bands: list[BandRect]
    points: list[Point] = field(default_factory=list)
    dates: list[tuple[float, str]] = field(default_factory=list)  # (x, label)
    ticks: list[tuple[float, int]] = field(default_factory=list)  # (y, score)
    summary: str = ""

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x},{p.y}" for p in self.points)


def trend_charts(measures: list[Measure], zone: ZoneInfo) -> list[Trend]:
    """One chart per instrument the patient has answered, oldest answer on the left."""
    charts = []
    for name, instrument in INSTRUMENTS.items():
        mine = [m for m in measures if m.instrument == name]
        if not mine:
            continue
        top = instrument.max_score
        plot_h = HEIGHT - TOP - BOTTOM

        def y(score: float, top: int = top, plot_h: int = plot_h) -> float:
            return round(TOP + plot_h * (1 - score / top), 1)

        bands = []
        for band in instrument.bands:
            upper = min(band.high + 1, top)  # bands meet: "mild" runs from 5 up to where "moderate" starts
            bands.append(BandRect(y(upper), round(y(band.low) - y(upper), 1), band.name, band.name.replace(" ", "-")))
        step = (WIDTH - LEFT - RIGHT) / max(1, len(mine) - 1) if len(mine) > 1 else 0
        chart = Trend(name, WIDTH, HEIGHT, bands, ticks=[(y(s), s) for s in (0, 5, 10, 15, 20, 27) if s <= top])
        for index, m in enumerate(mine):
            x = round(LEFT + (step * index if len(mine) > 1 else (WIDTH - LEFT - RIGHT) / 2), 1)
            day = datetime.fromtimestamp(m.at_ms / 1000, tz=zone).strftime("%-d %b")
            chart.points.append(Point(x, y(m.score), f"{day}: {name} {m.score} ({m.band})"))
            chart.dates.append((x, day))
        first, last = mine[0], mine[-1]
        chart.summary = (f"{name} scores over time, {len(mine)} answers: first {first.score} ({first.band}), "
                         f"latest {last.score} ({last.band}).")
        charts.append(chart)
    return charts
