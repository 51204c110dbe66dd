"""Budget periods on UTC calendar boundaries (pure): a day starts at 00:00 UTC, a week on
Monday 00:00 UTC, a month on its first day 00:00 UTC. A period is [start, end) in Unix seconds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["daily", "weekly", "monthly"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly")


@dataclass(frozen=True, slots=True)
class Window:
    period: Period
    start: int  # Unix seconds, inclusive
    end: int  # Unix seconds, exclusive: when the budget resets

    def reset_rfc3339(self) -> str:
        return rfc3339(self.end)


def window(period: Period, now: float) -> Window:
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        start, end = day, day + timedelta(days=1)
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return Window(period, int(start.timestamp()), int(end.timestamp()))


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
