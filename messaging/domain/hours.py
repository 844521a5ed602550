"""Staff working hours: the weekly schedule, its JSON form, and when someone is working.

A schedule gives, per weekday, up to four periods of local minutes `[start, end)` with
`0 <= start < end <= 1440` (1440 is "24:00", the end of the day). A period belongs to the local
date it starts on; on the school's closed days nobody works.

Local times become instants in the school's zone, exactly across DST changes:

    - a local time that does not exist (the spring-forward gap) becomes the first instant after
      the gap, so a period 02:30-04:00 on that day starts when the clocks jump to 03:00;
    - a local time that occurs twice (fall back) means its first occurrence (`fold=0`).

The clock and the zone are passed in; nothing here reads the time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_PERIODS_PER_DAY = 4
LOOKAHEAD_DAYS = 400
DAY_MINUTES = 1440

Period = tuple[int, int]
DayPeriods = tuple[Period, ...]

_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    """Working periods per weekday, as sorted, non-overlapping (start, end) local minutes."""

    mon: DayPeriods = ()
    tue: DayPeriods = ()
    wed: DayPeriods = ()
    thu: DayPeriods = ()
    fri: DayPeriods = ()
    sat: DayPeriods = ()
    sun: DayPeriods = ()

    def __post_init__(self) -> None:
        for name in DAYS:
            problem = _day_problem(getattr(self, name))
            if problem:
                raise ValueError(f"{name}: {problem}")

    def on(self, weekday: int) -> DayPeriods:
        """The periods of `weekday` (0 is Monday, as `date.weekday()`)."""
        periods: DayPeriods = getattr(self, DAYS[weekday])
        return periods

    @property
    def empty(self) -> bool:
        return not any(self.on(d) for d in range(7))


def _day_problem(periods: DayPeriods) -> str | None:
    if len(periods) > MAX_PERIODS_PER_DAY:
        return f"at most {MAX_PERIODS_PER_DAY} periods a day"
    for start, end in periods:
        if not 0 <= start < end <= DAY_MINUTES:
            return f"period ({start}, {end}) is not within one day with start before end"
    for (_, end), (start, _) in pairwise(periods):
        if start < end:
            return "periods must be sorted and must not overlap"
    return None


_WEEKDAY_8_TO_4: DayPeriods = ((8 * 60, 16 * 60),)
DEFAULT_SCHEDULE = WeeklySchedule(
    mon=_WEEKDAY_8_TO_4,
    tue=_WEEKDAY_8_TO_4,
    wed=_WEEKDAY_8_TO_4,
    thu=_WEEKDAY_8_TO_4,
    fri=_WEEKDAY_8_TO_4,
)
"""The school default: Monday to Friday, 08:00 to 16:00."""


# --- JSON form ----------------------------------------------------------------------------------


def _format(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def schedule_to_json(schedule: WeeklySchedule) -> dict[str, list[list[str]]]:
    """The schedule as `{"mon": [["08:00", "16:00"]], ...}`, every day present."""
    return {
        name: [[_format(s), _format(e)] for s, e in schedule.on(i)] for i, name in enumerate(DAYS)
    }


def _parse_time(value: object) -> int | None:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        return None
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _parse_period(value: object) -> tuple[Period | None, str | None]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None, 'must be a pair of times ["HH:MM", "HH:MM"]'
    start, end = (_parse_time(v) for v in value)
    if start == DAY_MINUTES:
        return None, "24:00 can only end a period"
    if start is None:
        return None, f"start {value[0]!r} is not a time HH:MM from 00:00 to 23:59"
    if end is None:
        return None, f"end {value[1]!r} is not a time HH:MM from 00:00 to 24:00"
    if end <= start:
        return None, f"end {value[1]} must be after start {value[0]}"
    return (start, end), None


def _parse_day(value: object, path: str) -> tuple[DayPeriods, list[tuple[str, str]]]:
    if not isinstance(value, list | tuple):
        return (), [(path, 'must be a list of periods like [["08:00", "16:00"]]')]
    problems: list[tuple[str, str]] = []
    if len(value) > MAX_PERIODS_PER_DAY:
        problems.append((path, f"at most {MAX_PERIODS_PER_DAY} periods a day"))
    parsed: list[tuple[Period, int]] = []
    for i, item in enumerate(value):
        period, problem = _parse_period(item)
        if problem:
            problems.append((f"{path}[{i}]", problem))
        elif period:
            parsed.append((period, i))
    parsed.sort()
    for (earlier, j), (later, i) in pairwise(parsed):
        if later[0] < earlier[1]:
            problems.append((f"{path}[{i}]", f"overlaps {path}[{j}]"))
    return tuple(p for p, _ in parsed), problems


def parse_schedule(obj: object, path: str) -> tuple[WeeklySchedule | None, list[tuple[str, str]]]:
    """Parse `{"mon": [["07:30", "16:00"], ...], ...}`: the schedule, or every (path, problem).

    Days left out have no working period; periods may come in any order and are sorted. With
    an empty `path` (a request body of its own) problems are at `mon[0]` and the like.
    """
    if not isinstance(obj, Mapping):
        return None, [(path, "must be an object with days mon..sun")]
    days: dict[str, DayPeriods] = {}
    problems: list[tuple[str, str]] = []
    for key, value in obj.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in DAYS:
            problems.append((where, "unknown day; expected one of " + ", ".join(DAYS)))
            continue
        days[key], found = _parse_day(value, where)
        problems.extend(found)
    if problems:
        return None, problems
    return WeeklySchedule(**days), []


# --- when someone is working --------------------------------------------------------------------


def _instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of local `day` + `minute` (1440: next midnight), gap and fold resolved."""
    if minute == DAY_MINUTES:
        day, minute = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 maps before the jump and fold=0 after it; find the jump to the second.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _periods(
    schedule: WeeklySchedule, closed_days: frozenset[date], zone: ZoneInfo, day: date
) -> list[tuple[datetime, datetime]]:
    if day in closed_days:
        return []
    spans = (
        (_instant(day, s, zone), _instant(day, e, zone)) for s, e in schedule.on(day.weekday())
    )
    return [(s, e) for s, e in spans if s < e]


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def is_working(
    schedule: WeeklySchedule, closed_days: frozenset[date], zone: ZoneInfo, now: datetime
) -> bool:
    """Whether the instant `now` (timezone-aware) falls in a working period."""
    _require_aware(now)
    today = now.astimezone(zone).date()
    # A period of yesterday may end after midnight only when it ends at 24:00.
    for day in (today - timedelta(days=1), today):
        if any(s <= now < e for s, e in _periods(schedule, closed_days, zone, day)):
            return True
    return False


def next_working_start(
    schedule: WeeklySchedule, closed_days: frozenset[date], zone: ZoneInfo, now: datetime
) -> datetime | None:
    """The first instant >= `now` at which one is working, in UTC; None if none within 400 days."""
    _require_aware(now)
    if schedule.empty:
        return None
    now = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    for offset in range(-1, LOOKAHEAD_DAYS + 1):
        for start, end in _periods(schedule, closed_days, zone, today + timedelta(days=offset)):
            if end <= now:
                continue
            return max(start, now)
    return None
