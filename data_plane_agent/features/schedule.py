"""Materialization schedules: `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` or a 5-field cron line.

Only what schedules need: whether a schedule fires at some minute in a time window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
MAX_LOOKBACK = timedelta(days=1)


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be at least 1")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = int(first), int(last)
        else:
            start = end = int(body)
            if step_text:
                end = high
        if not low <= start <= end <= high:
            raise ValueError(f"{part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class Schedule:
    """A parsed schedule; `fires_between(after, until)` says whether a run is due."""

    def __init__(self, text: str) -> None:
        line = ALIASES.get(text.strip().lower(), text.strip())
        parts = line.split()
        if len(parts) != 5:
            raise ValueError(f"schedule {text!r} is neither @hourly/@daily/... nor a 5-field cron line")
        try:
            fields = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True)]
        except ValueError as exc:
            raise ValueError(f"schedule {text!r}: {exc}") from exc
        self.text = text
        self.minutes, self.hours, self.days, self.months, weekdays = fields
        self.weekdays = frozenset(d % 7 for d in weekdays)  # cron allows 7 for Sunday
        self._any_day, self._any_weekday = parts[2] == "*", parts[4] == "*"

    def matches(self, moment: datetime) -> bool:
        if moment.minute not in self.minutes or moment.hour not in self.hours or moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self._any_day or self._any_weekday:  # cron: both restricted means either may match
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def fires_between(self, after: datetime, until: datetime) -> bool:
        """Whether the schedule fires at a whole minute in (after, until] (looking back at most a day)."""
        after = max(after.astimezone(UTC), until.astimezone(UTC) - MAX_LOOKBACK)
        moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while moment <= until:
            if self.matches(moment):
                return True
            moment += timedelta(minutes=1)
        return False
