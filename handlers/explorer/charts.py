"""Charts drawn on the server as SVG shapes (the templates write the elements): no script,
no chart library, nothing fetched by the page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT, LABEL_ROOM = 600, 160, 18
MAX_SLOTS = 400


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


def slots(since: datetime, until: datetime, bucket: str) -> list[str]:
    """Every hour or day of [since, until) as the store labels them, so empty ones show as
    gaps rather than vanish (none when there would be more than MAX_SLOTS)."""
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        start = start.replace(hour=0)
    if (until - start) / step > MAX_SLOTS:
        return []
    labels, moment = [], start
    while moment < until:
        labels.append(moment.strftime("%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"))
        moment += step
    return labels


def columns(series: dict[str, int], labels: list[str]) -> list[Bar]:
    """Vertical bars for `series` over `labels` (or the series' own keys), in a WIDTH x HEIGHT
    box with LABEL_ROOM left at the bottom."""
    keys = labels or list(series)
    if not keys:
        return []
    top = max([series.get(key, 0) for key in keys] + [1])
    room = HEIGHT - LABEL_ROOM
    width = WIDTH / len(keys)
    bars = []
    for index, key in enumerate(keys):
        value = series.get(key, 0)
        height = room * value / top
        bars.append(Bar(x=round(index * width, 2), y=round(room - height, 2),
                        width=round(max(width - 1, 0.5), 2), height=round(height, 2),
                        label=key, value=value))
    return bars


def share(value: int, whole: int) -> float:
    """Percentage with one decimal, 0 for an empty whole."""
    return round(100 * value / whole, 1) if whole else 0.0
