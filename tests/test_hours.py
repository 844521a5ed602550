"""Working hours: parsing schedules, and when a staff member is working, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.domain.hours import (
    DEFAULT_SCHEDULE,
    WeeklySchedule,
    is_working,
    next_working_start,
    parse_schedule,
    schedule_to_json,
)

TORONTO = ZoneInfo("America/Toronto")
NONE: frozenset[date] = frozenset()


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, fold: int = 0) -> datetime:
    """A Toronto wall-clock time as a UTC instant (fold=1: the second pass of a repeated hour)."""
    return datetime(y, mo, d, h, mi, tzinfo=TORONTO, fold=fold).astimezone(UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def days(first: date, last: date) -> frozenset[date]:
    return frozenset(first + timedelta(n) for n in range((last - first).days + 1))


# --- parse_schedule -----------------------------------------------------------------------------

WORKDAY = [["07:30", "15:30"]]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({}, WeeklySchedule()),
        ({"mon": [], "sun": []}, WeeklySchedule()),
        (
            {"mon": WORKDAY, "fri": [["07:30", "12:00"]]},
            WeeklySchedule(mon=((450, 930),), fri=((450, 720),)),
        ),
        ({"sat": [["00:00", "24:00"]]}, WeeklySchedule(sat=((0, 1440),))),
        (
            {"tue": [["13:00", "16:00"], ["08:00", "12:00"]]},
            WeeklySchedule(tue=((480, 720), (780, 960))),
        ),
        (
            {"wed": [["08:00", "12:00"], ["12:00", "16:00"]]},
            WeeklySchedule(wed=((480, 720), (720, 960))),
        ),
        (
            {
                "thu": [
                    ["06:00", "07:00"],
                    ["08:00", "09:00"],
                    ["10:00", "11:00"],
                    ["23:59", "24:00"],
                ]
            },
            WeeklySchedule(thu=((360, 420), (480, 540), (600, 660), (1439, 1440))),
        ),
        ({"sun": [("09:00", "09:01")]}, WeeklySchedule(sun=((540, 541),))),
        (
            {d: [["08:00", "16:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
            DEFAULT_SCHEDULE,
        ),
    ],
)
def test_parse_schedule_accepts_valid_schedules(obj: object, expected: WeeklySchedule) -> None:
    """Valid schedules parse, with periods sorted and missing days empty."""
    assert parse_schedule(obj, "wh") == (expected, [])


@pytest.mark.parametrize(
    ("obj", "problems"),
    [
        ([], [("wh", "must be an object with days mon..sun")]),
        (None, [("wh", "must be an object with days mon..sun")]),
        (
            {"monday": WORKDAY},
            [("wh.monday", "unknown day; expected one of mon, tue, wed, thu, fri, sat, sun")],
        ),
        (
            {"mon": "08:00-16:00"},
            [("wh.mon", 'must be a list of periods like [["08:00", "16:00"]]')],
        ),
        (
            {"mon": {"start": "08:00"}},
            [("wh.mon", 'must be a list of periods like [["08:00", "16:00"]]')],
        ),
        ({"mon": [["08:00"]]}, [("wh.mon[0]", 'must be a pair of times ["HH:MM", "HH:MM"]')]),
        (
            {"mon": ["08:00", "16:00"]},
            [
                ("wh.mon[0]", 'must be a pair of times ["HH:MM", "HH:MM"]'),
                ("wh.mon[1]", 'must be a pair of times ["HH:MM", "HH:MM"]'),
            ],
        ),
        (
            {"mon": [[480, 960]]},
            [("wh.mon[0]", "start 480 is not a time HH:MM from 00:00 to 23:59")],
        ),
        (
            {"mon": [["8:00", "16:00"]]},
            [("wh.mon[0]", "start '8:00' is not a time HH:MM from 00:00 to 23:59")],
        ),
        (
            {"mon": [["08:00", "24:30"]]},
            [("wh.mon[0]", "end '24:30' is not a time HH:MM from 00:00 to 24:00")],
        ),
        (
            {"mon": [["08:00", "16:60"]]},
            [("wh.mon[0]", "end '16:60' is not a time HH:MM from 00:00 to 24:00")],
        ),
        (
            {"mon": [["08:00", "٠٩:٠٠"]]},
            [("wh.mon[0]", "end '٠٩:٠٠' is not a time HH:MM from 00:00 to 24:00")],
        ),
        ({"mon": [["24:00", "24:00"]]}, [("wh.mon[0]", "24:00 can only end a period")]),
        ({"mon": [["16:00", "08:00"]]}, [("wh.mon[0]", "end 08:00 must be after start 16:00")]),
        ({"mon": [["08:00", "08:00"]]}, [("wh.mon[0]", "end 08:00 must be after start 08:00")]),
        ({"mon": [["08:00", "12:00"], ["11:00", "13:00"]]}, [("wh.mon[1]", "overlaps wh.mon[0]")]),
        ({"mon": [["11:00", "13:00"], ["08:00", "12:00"]]}, [("wh.mon[0]", "overlaps wh.mon[1]")]),
        ({"mon": [["08:00", "09:00"]] * 2}, [("wh.mon[1]", "overlaps wh.mon[0]")]),
        (
            {"mon": [[f"0{h}:00", f"0{h}:30"] for h in range(5)]},
            [("wh.mon", "at most 4 periods a day")],
        ),
        (
            {"mon": [["09:00", "08:00"]], "tue": "x", "xyz": [], "fri": [["07:00", "25:00"]]},
            [
                ("wh.mon[0]", "end 08:00 must be after start 09:00"),
                ("wh.tue", 'must be a list of periods like [["08:00", "16:00"]]'),
                ("wh.xyz", "unknown day; expected one of mon, tue, wed, thu, fri, sat, sun"),
                ("wh.fri[0]", "end '25:00' is not a time HH:MM from 00:00 to 24:00"),
            ],
        ),
    ],
)
def test_parse_schedule_lists_every_problem_with_its_path(
    obj: object, problems: list[tuple[str, str]]
) -> None:
    """Each bad day or period is reported at its own path, and nothing is returned."""
    assert parse_schedule(obj, "wh") == (None, problems)


def test_parse_schedule_paths_start_at_the_day_without_a_prefix() -> None:
    """A schedule parsed on its own (PUT /api/me/working-hours) reports paths like `mon[0]`."""
    assert parse_schedule({"mon": [["9:00", "10:00"]], "x": []}, "") == (
        None,
        [
            ("mon[0]", "start '9:00' is not a time HH:MM from 00:00 to 23:59"),
            ("x", "unknown day; expected one of mon, tue, wed, thu, fri, sat, sun"),
        ],
    )


@pytest.mark.parametrize(
    "days_",
    [
        {"mon": ((600, 500),)},
        {"mon": ((0, 1441),)},
        {"mon": ((-1, 10),)},
        {"mon": ((100, 200), (150, 300))},
        {"mon": ((300, 400), (100, 200))},
        {"mon": ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))},
    ],
)
def test_weekly_schedule_refuses_invalid_periods(
    days_: dict[str, tuple[tuple[int, int], ...]],
) -> None:
    """A schedule built in code holds the same invariants as a parsed one."""
    with pytest.raises(ValueError, match="mon"):
        WeeklySchedule(**days_)


def test_schedule_to_json_writes_every_day_and_24_00() -> None:
    """The JSON form lists all seven days and writes the end of the day as 24:00."""
    schedule = WeeklySchedule(mon=((450, 720), (780, 1440)))
    assert schedule_to_json(schedule) == {
        "mon": [["07:30", "12:00"], ["13:00", "24:00"]],
        "tue": [],
        "wed": [],
        "thu": [],
        "fri": [],
        "sat": [],
        "sun": [],
    }


# --- is_working and next_working_start around the calendar's edges ------------------------------

SUNDAY_0230_0400 = WeeklySchedule(sun=((150, 240),))
SUNDAY_0210_0250 = WeeklySchedule(sun=((130, 170),))
SUNDAY_0100_0230 = WeeklySchedule(sun=((60, 150),))
SUNDAY_0130_0300 = WeeklySchedule(sun=((90, 180),))
SUNDAY_0000_0130 = WeeklySchedule(sun=((0, 90),))
SUNDAY_0100_0200 = WeeklySchedule(sun=((60, 120),))
LATE_SUNDAY_EARLY_MONDAY = WeeklySchedule(sun=((1320, 1440),), mon=((0, 60),))
WINTER_BREAK = days(date(2026, 12, 21), date(2027, 1, 1))
SUMMER = days(date(2027, 6, 24), date(2027, 8, 27))


@pytest.mark.parametrize(
    ("schedule", "closed", "now", "expected"),
    [
        # an ordinary week, and a weekend that crosses the spring change
        (DEFAULT_SCHEDULE, NONE, local(2026, 3, 9, 7), utc(2026, 3, 9, 12)),
        (DEFAULT_SCHEDULE, NONE, local(2026, 3, 6, 17), utc(2026, 3, 9, 12)),
        (DEFAULT_SCHEDULE, NONE, local(2026, 3, 6, 9, 30), local(2026, 3, 6, 9, 30)),
        (DEFAULT_SCHEDULE, NONE, local(2026, 3, 6, 16), utc(2026, 3, 9, 12)),
        (DEFAULT_SCHEDULE, NONE, local(2026, 10, 30, 16), utc(2026, 11, 2, 13)),
        # spring forward, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC)
        (SUNDAY_0230_0400, NONE, local(2026, 3, 8), utc(2026, 3, 8, 7)),
        (SUNDAY_0230_0400, NONE, local(2026, 3, 7, 12), utc(2026, 3, 8, 7)),
        (SUNDAY_0210_0250, NONE, local(2026, 3, 7, 12), local(2026, 3, 15, 2, 10)),
        (SUNDAY_0100_0230, NONE, utc(2026, 3, 8, 7), local(2026, 3, 15, 1)),
        # fall back, 2026-11-01: 02:00 EDT returns to 01:00 EST (06:00 UTC)
        (SUNDAY_0130_0300, NONE, local(2026, 11, 1), utc(2026, 11, 1, 5, 30)),
        (SUNDAY_0130_0300, NONE, local(2026, 11, 1, 1, 15, fold=1), utc(2026, 11, 1, 6, 15)),
        (SUNDAY_0000_0130, NONE, utc(2026, 11, 1, 6), local(2026, 11, 8)),
        (SUNDAY_0100_0200, NONE, utc(2026, 11, 1, 4, 59), utc(2026, 11, 1, 5)),
        # midnight, and 24:00 followed by a closed day
        (LATE_SUNDAY_EARLY_MONDAY, NONE, local(2026, 6, 7, 21), local(2026, 6, 7, 22)),
        (LATE_SUNDAY_EARLY_MONDAY, NONE, local(2026, 6, 8, 0), local(2026, 6, 8, 0)),
        (LATE_SUNDAY_EARLY_MONDAY, NONE, local(2026, 6, 8, 1), local(2026, 6, 14, 22)),
        (
            LATE_SUNDAY_EARLY_MONDAY,
            frozenset({date(2026, 6, 8)}),
            local(2026, 6, 8, 0),
            local(2026, 6, 14, 22),
        ),
        # New Year, the winter break and the summer
        (DEFAULT_SCHEDULE, WINTER_BREAK, local(2026, 12, 18, 17), utc(2027, 1, 4, 13)),
        (DEFAULT_SCHEDULE, WINTER_BREAK, local(2026, 12, 31, 23, 59), utc(2027, 1, 4, 13)),
        (DEFAULT_SCHEDULE, NONE, local(2026, 12, 31, 23, 59), utc(2027, 1, 1, 13)),
        (DEFAULT_SCHEDULE, SUMMER, local(2027, 6, 23, 16), utc(2027, 8, 30, 12)),
        # nothing within 400 days, or nothing at all
        (DEFAULT_SCHEDULE, days(date(2026, 1, 1), date(2028, 1, 1)), local(2026, 1, 5), None),
        (WeeklySchedule(), NONE, local(2026, 1, 5), None),
    ],
)
def test_next_working_start_on_calendar_edges(
    schedule: WeeklySchedule, closed: frozenset[date], now: datetime, expected: datetime | None
) -> None:
    """The next working instant is exact across DST changes, midnight, New Year and closures."""
    start = next_working_start(schedule, closed, TORONTO, now)
    assert start == expected
    if start is not None:
        assert start.tzinfo is UTC
        assert is_working(schedule, closed, TORONTO, start)


@pytest.mark.parametrize(
    ("schedule", "now", "working"),
    [
        (SUNDAY_0230_0400, utc(2026, 3, 8, 6, 59), False),
        (SUNDAY_0230_0400, utc(2026, 3, 8, 7), True),
        (SUNDAY_0230_0400, local(2026, 3, 8, 3, 59), True),
        (SUNDAY_0230_0400, local(2026, 3, 8, 4), False),
        (SUNDAY_0100_0230, utc(2026, 3, 8, 6, 59), True),
        (SUNDAY_0100_0230, utc(2026, 3, 8, 7), False),
        (SUNDAY_0130_0300, utc(2026, 11, 1, 5, 29), False),
        (SUNDAY_0130_0300, local(2026, 11, 1, 1, 30), True),
        (SUNDAY_0130_0300, local(2026, 11, 1, 1, 0, fold=1), True),
        (SUNDAY_0130_0300, local(2026, 11, 1, 2, 59), True),
        (SUNDAY_0130_0300, local(2026, 11, 1, 3), False),
        (SUNDAY_0000_0130, local(2026, 11, 1, 1, 29), True),
        (SUNDAY_0000_0130, local(2026, 11, 1, 1, 29, fold=1), False),
        (SUNDAY_0100_0200, utc(2026, 11, 1, 6, 30), True),
        (SUNDAY_0100_0200, utc(2026, 11, 1, 7), False),
        (LATE_SUNDAY_EARLY_MONDAY, local(2026, 6, 7, 23, 59), True),
        (LATE_SUNDAY_EARLY_MONDAY, local(2026, 6, 8, 0, 59), True),
        (LATE_SUNDAY_EARLY_MONDAY, local(2026, 6, 8, 1), False),
        (WeeklySchedule(sun=((1320, 1440),)), local(2026, 6, 8, 0), False),
        (DEFAULT_SCHEDULE, local(2026, 12, 31, 15, 59), True),
        (DEFAULT_SCHEDULE, local(2027, 1, 1, 8), True),
    ],
)
def test_is_working_at_the_edges_of_periods(
    schedule: WeeklySchedule, now: datetime, working: bool
) -> None:
    """Periods start inclusive and end exclusive, in real instants, DST included."""
    assert is_working(schedule, NONE, TORONTO, now) is working


def test_is_working_is_false_on_closed_days() -> None:
    """A closed day has no working period, whatever the schedule says."""
    assert not is_working(DEFAULT_SCHEDULE, WINTER_BREAK, TORONTO, local(2026, 12, 22, 10))
    assert is_working(DEFAULT_SCHEDULE, WINTER_BREAK, TORONTO, local(2027, 1, 4, 10))


def test_naive_instants_are_refused() -> None:
    """A datetime without a zone is ambiguous, so both functions refuse it."""
    with pytest.raises(ValueError, match="aware"):
        is_working(DEFAULT_SCHEDULE, NONE, TORONTO, datetime(2026, 1, 5, 9))
    with pytest.raises(ValueError, match="aware"):
        next_working_start(DEFAULT_SCHEDULE, NONE, TORONTO, datetime(2026, 1, 5, 9))


# --- properties ---------------------------------------------------------------------------------

# Boundaries that hit the DST changes (01:00-03:00) and midnight more often than chance would.
_MINUTES = st.one_of(st.integers(0, 1440), st.sampled_from([0, 60, 90, 120, 150, 180, 1439, 1440]))
_TRANSITIONS = [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2027, 3, 14, 7), utc(2027, 11, 7, 6)]


@st.composite
def day_periods(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    bounds = sorted(draw(st.lists(_MINUTES, unique=True, max_size=8)))
    return tuple(zip(bounds[::2], bounds[1::2], strict=False))


schedules = st.builds(WeeklySchedule, *[day_periods() for _ in range(7)]).filter(
    lambda s: not s.empty
)

instants = st.one_of(
    st.datetimes(datetime(2026, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda t, s: t + timedelta(seconds=s),
        st.sampled_from(_TRANSITIONS),
        st.integers(-3 * 86400, 3 * 86400),
    ),
)


@st.composite
def closures(draw: st.DrawFn, now: datetime) -> frozenset[date]:
    today = now.astimezone(TORONTO).date()
    return frozenset(today + timedelta(n) for n in draw(st.lists(st.integers(-1, 6), max_size=3)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=schedules, now=instants, data=st.data())
def test_next_working_start_is_the_first_working_minute(
    schedule: WeeklySchedule, now: datetime, data: st.DataObject
) -> None:
    """The result is working, and no whole minute between `now` and the result is working."""
    closed = data.draw(closures(now))
    start = next_working_start(schedule, closed, TORONTO, now)
    assert start is not None
    assert start >= now
    assert is_working(schedule, closed, TORONTO, start)
    if start == now:
        return
    assert not is_working(schedule, closed, TORONTO, now)
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < start:
        assert not is_working(schedule, closed, TORONTO, minute), minute
        minute += timedelta(minutes=1)


@settings(max_examples=150, deadline=None)
@given(schedule=schedules, now=instants)
def test_next_working_start_is_now_while_working(schedule: WeeklySchedule, now: datetime) -> None:
    """While someone is working, their next working instant is now."""
    if is_working(schedule, NONE, TORONTO, now):
        assert next_working_start(schedule, NONE, TORONTO, now) == now


@given(schedule=schedules)
def test_schedule_json_round_trips(schedule: WeeklySchedule) -> None:
    """Writing a schedule as JSON and parsing it back gives the same schedule."""
    assert parse_schedule(schedule_to_json(schedule), "wh") == (schedule, [])
