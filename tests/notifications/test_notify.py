"""Who is told of a message and when, quiet hours, availability and the notification's words."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.domain.hours import DAYS, WeeklySchedule, is_working
from messaging.domain.models import UserKind
from messaging.domain.notify import (
    Availability,
    Calendar,
    Plan,
    Reason,
    Recipient,
    availability,
    availability_notice,
    awake_schedule,
    gives_up,
    hold,
    local_when,
    parse_quiet_hours,
    plan_message,
    retry_delay,
    senders_of,
    summary,
)

TORONTO = ZoneInfo("America/Toronto")
HALIFAX = ZoneInfo("America/Halifax")  # the Magdalen Islands keep Atlantic time
SCHOOL = Calendar(TORONTO)
DAY = ((7 * 60 + 30, 15 * 60 + 30),)
WEEKDAYS_730_1530 = WeeklySchedule(mon=DAY, tue=DAY, wed=DAY, thu=DAY, fri=DAY)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, zone: ZoneInfo = TORONTO) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone).astimezone(UTC)


def staff(uid: str = "t-1", hours: WeeklySchedule | None = WEEKDAYS_730_1530) -> Recipient:
    return Recipient(uid, UserKind.STAFF, working_hours=hours)


def parent(uid: str = "p-1", quiet: WeeklySchedule | None = None) -> Recipient:
    return Recipient(uid, UserKind.PARENT, quiet_hours=quiet)


# 2026-11-27 is a Friday, 2026-11-30 a Monday.
FRIDAY_EVENING = local(2026, 11, 27, 18, 2)
MONDAY_0730 = local(2026, 11, 30, 7, 30)


# --- who is told, and from when -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "now", "expected"),
    [
        (staff(), local(2026, 11, 27, 10, 0), Plan("t-1", Reason.DUE, local(2026, 11, 27, 10, 0))),
        (staff(), FRIDAY_EVENING, Plan("t-1", Reason.OFF_HOURS, MONDAY_0730)),
        (staff(), local(2026, 11, 30, 7, 29), Plan("t-1", Reason.OFF_HOURS, MONDAY_0730)),
        (staff(), MONDAY_0730, Plan("t-1", Reason.DUE, MONDAY_0730)),
        (
            staff(),
            local(2026, 11, 30, 15, 30),
            Plan("t-1", Reason.OFF_HOURS, local(2026, 12, 1, 7, 30)),
        ),
        # no hours in the roster: the school default, Monday to Friday 8 to 4
        (staff(hours=None), MONDAY_0730, Plan("t-1", Reason.OFF_HOURS, local(2026, 11, 30, 8))),
        (staff(hours=WeeklySchedule()), FRIDAY_EVENING, Plan("t-1", Reason.NO_WORKING_PERIOD)),
        (parent(), FRIDAY_EVENING, Plan("p-1", Reason.DUE, FRIDAY_EVENING)),
        (
            parent(quiet=WeeklySchedule(fri=((18 * 60, 24 * 60),), sat=((0, 7 * 60),))),
            FRIDAY_EVENING,
            Plan("p-1", Reason.QUIET_HOURS, local(2026, 11, 28, 7, 0)),
        ),
        (
            parent(quiet=WeeklySchedule(fri=((20 * 60, 21 * 60),))),
            FRIDAY_EVENING,
            Plan("p-1", Reason.DUE, FRIDAY_EVENING),
        ),
        (parent(quiet=WeeklySchedule()), FRIDAY_EVENING, Plan("p-1", Reason.DUE, FRIDAY_EVENING)),
    ],
)
def test_hold_decides_from_the_recipients_hours(
    member: Recipient, now: datetime, expected: Plan
) -> None:
    """Staff wait for their next working instant, parents only for their own quiet hours."""
    assert hold(member, SCHOOL, now) == expected


def test_closed_days_hold_staff_but_not_parents() -> None:
    """A school's closed days hold staff notifications to the next open day, never parents'."""
    closed = Calendar(TORONTO, frozenset({date(2026, 11, 30), date(2026, 12, 1)}))
    now = local(2026, 11, 30, 10)
    assert hold(staff(), closed, now) == Plan("t-1", Reason.OFF_HOURS, local(2026, 12, 2, 7, 30))
    assert hold(parent(), closed, now) == Plan("p-1", Reason.DUE, now)


def test_each_school_applies_the_hours_in_its_own_zone() -> None:
    """One set of hours, two schools: 7:30 in Toronto is not yet 7:30 on the Islands' clock."""
    now = local(2026, 11, 30, 7, 45)  # 8:45 in Halifax time
    assert hold(staff(), SCHOOL, now).reason is Reason.DUE
    islands = Calendar(HALIFAX)
    assert hold(staff(hours=WeeklySchedule(mon=((9 * 60, 10 * 60),))), islands, now) == Plan(
        "t-1", Reason.OFF_HOURS, local(2026, 11, 30, 9, 0, zone=HALIFAX)
    )


def test_hold_across_the_spring_forward_change() -> None:
    """Held on Saturday before the clocks jump, released at 7:30 EDT on Monday."""
    now = local(2026, 3, 7, 12)
    plan = hold(staff(), SCHOOL, now)
    assert plan == Plan("t-1", Reason.OFF_HOURS, datetime(2026, 3, 9, 11, 30, tzinfo=UTC))


def test_hold_refuses_a_naive_clock() -> None:
    """The clock passed in must say its zone."""
    with pytest.raises(ValueError, match="aware"):
        hold(parent(), SCHOOL, datetime(2026, 11, 27, 18))


def test_plan_message_tells_every_reachable_member_but_the_sender() -> None:
    """One plan per member, in order, with the reason for each."""
    members = [
        staff("t-1"),
        parent("p-1"),
        Recipient("p-2", UserKind.PARENT, active=False),
        Recipient("p-3", UserKind.PARENT, reachable=False),
        staff("t-2", hours=WeeklySchedule()),
    ]
    plans = plan_message("p-1", members, SCHOOL, FRIDAY_EVENING)
    assert [(p.recipient, p.reason) for p in plans] == [
        ("t-1", Reason.OFF_HOURS),
        ("p-1", Reason.SENDER),
        ("p-2", Reason.INACTIVE),
        ("p-3", Reason.UNREACHABLE),
        ("t-2", Reason.NO_WORKING_PERIOD),
    ]
    assert [p.told for p in plans] == [True, False, False, False, True]
    assert [p.held for p in plans] == [True, False, False, False, True]


# --- quiet hours --------------------------------------------------------------------------------


def test_awake_schedule_is_the_complement_of_quiet_hours() -> None:
    """Nights split over two days leave the day between them awake."""
    quiet = WeeklySchedule(mon=((0, 420), (1260, 1440)), tue=((720, 780),))
    awake = awake_schedule(quiet)
    assert awake.mon == ((420, 1260),)
    assert awake.tue == ((0, 720), (780, 1440))
    assert awake.wed == ((0, 1440),)


@pytest.mark.parametrize(
    ("obj", "problems"),
    [
        (
            {"mon": [["24:30", "25:00"]]},
            [("mon[0]", "start '24:30' is not a time HH:MM from 00:00 to 23:59")],
        ),
        ({"mon": [["09:00", "08:00"]]}, [("mon[0]", "end 08:00 must be after start 09:00")]),
        ({"mon": [["08:00", "10:00"], ["09:00", "11:00"]]}, [("mon[1]", "overlaps mon[0]")]),
        ({"lun": []}, [("lun", "unknown day; expected one of " + ", ".join(DAYS))]),
        (
            {
                "mon": [
                    ["00:00", "01:00"],
                    ["02:00", "03:00"],
                    ["04:00", "05:00"],
                    ["06:00", "07:00"],
                ]
            },
            [("mon", "at most 3 quiet periods a day")],
        ),
        (
            {d: [["00:00", "24:00"]] for d in DAYS},
            [("", "quiet hours must leave some time in the week")],
        ),
        ("night", [("", "must be an object with days mon..sun")]),
    ],
)
def test_parse_quiet_hours_lists_every_problem(
    obj: object, problems: list[tuple[str, str]]
) -> None:
    """Malformed quiet hours are refused with the path and reason of each problem."""
    assert parse_quiet_hours(obj) == (None, problems)


def test_parse_quiet_hours_accepts_none_at_all() -> None:
    """An empty object clears the quiet hours."""
    assert parse_quiet_hours({}) == (WeeklySchedule(), [])


minutes = st.integers(min_value=0, max_value=1440)


@st.composite
def quiet_days(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    cuts = sorted(set(draw(st.lists(minutes, max_size=6))))
    pairs = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if a < b]
    return tuple(pairs[:3])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    quiet=st.builds(
        WeeklySchedule,
        mon=quiet_days(),
        tue=quiet_days(),
        wed=quiet_days(),
        thu=quiet_days(),
        fri=quiet_days(),
        sat=quiet_days(),
        sun=quiet_days(),
    ),
    instant=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
)
def test_every_instant_is_either_quiet_or_awake(quiet: WeeklySchedule, instant: datetime) -> None:
    """Quiet and awake periods partition time exactly, across daylight-saving changes too."""
    none: frozenset[date] = frozenset()
    in_quiet = is_working(quiet, none, TORONTO, instant)
    in_awake = is_working(awake_schedule(quiet), none, TORONTO, instant)
    assert in_quiet != in_awake
    if not awake_schedule(quiet).empty:
        plan = hold(parent(quiet=quiet), SCHOOL, instant)
        assert (plan.reason is Reason.QUIET_HOURS) == in_quiet


# --- availability -------------------------------------------------------------------------------


def test_availability_says_when_the_next_period_begins() -> None:
    """Off on Friday evening: Monday 7:30; working: nothing to wait for."""
    assert availability(WEEKDAYS_730_1530, SCHOOL, FRIDAY_EVENING) == Availability(
        False, MONDAY_0730
    )
    assert availability(WEEKDAYS_730_1530, SCHOOL, MONDAY_0730) == Availability(True)
    assert availability(WeeklySchedule(), SCHOOL, MONDAY_0730) == Availability(False, None)


@pytest.mark.parametrize(
    ("instant", "locale", "expected"),
    [
        (MONDAY_0730, "en", "Monday at 7:30"),
        (MONDAY_0730, "fr", "lundi à 7 h 30"),
        (local(2026, 11, 27, 19), "en", "today at 19:00"),
        (local(2026, 11, 27, 19), "fr", "aujourd'hui à 19 h"),
        (local(2026, 11, 28, 8, 5), "fr", "demain à 8 h 05"),
        (local(2026, 11, 28, 8, 5), "en", "tomorrow at 8:05"),
        (local(2026, 12, 7, 7, 30), "en", "Monday, December 7 at 7:30"),
        (local(2027, 1, 4, 7, 30), "fr", "le lundi 4 janvier à 7 h 30"),
    ],
)
def test_local_when_reads_like_a_person_says_it(
    instant: datetime, locale: str, expected: str
) -> None:
    """Today, tomorrow, a weekday within the week, a date beyond; in the school's zone."""
    assert local_when(instant, TORONTO, locale, FRIDAY_EVENING) == expected


def test_availability_notice_in_both_languages() -> None:
    """The sentence a parent reads before writing to someone who is off."""
    off = Availability(False, MONDAY_0730)
    assert (
        availability_notice("Marie Tremblay", off, TORONTO, "en", FRIDAY_EVENING)
        == "Marie Tremblay will see your message Monday at 7:30."
    )
    assert (
        availability_notice("Marie Tremblay", off, TORONTO, "fr", FRIDAY_EVENING)
        == "Marie Tremblay verra votre message lundi à 7 h 30."
    )
    assert availability_notice("M", Availability(True), TORONTO, "en", FRIDAY_EVENING) is None
    never = availability_notice("M", Availability(False), TORONTO, "en", FRIDAY_EVENING)
    assert never is not None and "no working hours" in never


# --- the notification's words -------------------------------------------------------------------


def test_senders_are_counted_in_order_of_first_message() -> None:
    """Three messages from two people: the first writer comes first."""
    assert senders_of(["Sam Roy", "Lou Roy", "Sam Roy"]) == [("Sam Roy", 2), ("Lou Roy", 1)]


@pytest.mark.parametrize(
    ("senders", "title", "locale", "expected"),
    [
        ([("Sam Roy", 1)], None, "en", "New message from Sam Roy"),
        ([("Sam Roy", 3)], None, "en", "3 new messages from Sam Roy"),
        ([("Sam Roy", 3)], None, "fr", "3 nouveaux messages de Sam Roy"),
        ([("Sam Roy", 1)], None, "fr", "Nouveau message de Sam Roy"),
        ([("Sam Roy", 2), ("Lou Roy", 1)], None, "en", "3 new messages from Sam Roy and Lou Roy"),
        (
            [("Sam Roy", 2), ("Lou Roy", 1), ("Kim Li", 1)],
            "3e A",
            "fr",
            "4 nouveaux messages de Sam Roy et 2 autres personnes dans « 3e A »",
        ),
        ([("Sam Roy", 2)], "Grade 3", "en", "2 new messages from Sam Roy in “Grade 3”"),
        ([("Sam Roy", 2)], None, "es", "2 nouveaux messages de Sam Roy"),
    ],
)
def test_summary_merges_messages_into_one_line(
    senders: list[tuple[str, int]], title: str | None, locale: str, expected: str
) -> None:
    """One line per notification, whatever the number of messages and senders."""
    assert summary(senders, title, locale) == expected


def test_summary_needs_a_message() -> None:
    """There is nothing to say about no message."""
    with pytest.raises(ValueError, match="at least one"):
        summary([], None, "fr")


# --- retries ------------------------------------------------------------------------------------


def test_retry_delay_grows_fourfold_up_to_a_cap() -> None:
    """60 s, 4 min, 16 min, 64 min capped to an hour."""
    waits = [retry_delay(n, 60).total_seconds() for n in range(1, 6)]
    assert waits == [60, 240, 960, 3600, 3600]
    with pytest.raises(ValueError):
        retry_delay(0, 60)


def test_gives_up_after_the_last_attempt() -> None:
    """The sixth failure of six allowed is recorded as a failure for good."""
    assert not gives_up(5, 6)
    assert gives_up(6, 6)
    assert timedelta(0) < retry_delay(1, 0.2)


def test_notify_imports_no_io_library() -> None:
    """The rules of notification run without an event loop, like the rest of the domain."""
    script = (
        "import importlib, json, sys\n"
        "importlib.import_module('messaging.domain.notify')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('asyncio', 'anyio', 'asyncpg', 'redis', 'starlette', 'aiosmtplib', 'aiohttp'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []
