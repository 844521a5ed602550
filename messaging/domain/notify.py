"""Who is told of a new message, when, and in what words (PROTOCOL.md section 6).

Facts in, decisions out; the clock is passed in and nothing here reads it.

    who       every current, active member of the conversation but its sender, who can be
              reached (an e-mail address or a push subscription)
    when      staff: at their next working instant in the conversation's school (the school's
              zone and closed days; one set of working hours applied in each school's calendar),
              never outside it; parents: at once, unless they set quiet hours of their own,
              which hold notifications the same way
    delay     the worker adds MESSAGING_NOTIFY_DELAY_S on top, so a message read within it
              (a member reading live) is never notified; live delivery is never held
    release   when a notification is due the worker asks `hold` again with the facts of that
              instant, because hours may have changed since the message was planned
    text      the merged notification: "3 new messages from Sam Roy", in the recipient's language

Every decision carries its `Reason`, which the store records and the tests assert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from messaging.domain.hours import (
    DAY_MINUTES,
    DAYS,
    DEFAULT_SCHEDULE,
    DayPeriods,
    WeeklySchedule,
    next_working_start,
    parse_schedule,
)
from messaging.domain.models import UserKind
from messaging.i18n import text

MAX_QUIET_PERIODS_PER_DAY = 3
"""Quiet periods a day: their complement (the awake periods) must fit a WeeklySchedule."""

MAX_LISTED_SENDERS = 2
"""Senders named in a summary; more are counted ("Sam Roy and 2 others")."""

NO_DAYS: frozenset[date] = frozenset()


class Reason(StrEnum):
    """Why a member is told at once, later, or never."""

    DUE = "due"
    """told once the notification delay has passed"""
    OFF_HOURS = "off_hours"
    """staff outside their working hours or on a closed day: held until the next period"""
    QUIET_HOURS = "quiet_hours"
    """a parent in their own quiet hours: held until they end"""
    NO_WORKING_PERIOD = "no_working_period"
    """no working (or awake) instant within the look-ahead: held until the schedule changes"""
    SENDER = "sender"
    INACTIVE = "inactive"
    UNREACHABLE = "unreachable"
    """no e-mail address and no push subscription"""


HELD = frozenset({Reason.OFF_HOURS, Reason.QUIET_HOURS, Reason.NO_WORKING_PERIOD})
TOLD = HELD | {Reason.DUE}


@dataclass(frozen=True, slots=True)
class Calendar:
    """A school's calendar: its zone and its closed days (which apply to staff only)."""

    zone: ZoneInfo
    closed_days: frozenset[date] = NO_DAYS


@dataclass(frozen=True, slots=True)
class Recipient:
    """A member who might be told; `working_hours` None is the school default (staff)."""

    id: str
    kind: UserKind
    active: bool = True
    reachable: bool = True
    working_hours: WeeklySchedule | None = None
    quiet_hours: WeeklySchedule | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """When `recipient` may be told: not before `not_before` (None: held until a change)."""

    recipient: str
    reason: Reason
    not_before: datetime | None = None

    @property
    def told(self) -> bool:
        return self.reason in TOLD

    @property
    def held(self) -> bool:
        return self.reason in HELD


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def hold(recipient: Recipient, calendar: Calendar, now: datetime) -> Plan:
    """The earliest instant from `now` on at which `recipient` may be told, and why.

    Staff follow their working hours in `calendar` (closed days included); parents are always
    reachable but for their own quiet hours, which ignore the school's closed days.
    """
    now = _aware(now)
    if recipient.kind is UserKind.STAFF:
        schedule = recipient.working_hours
        if schedule is None:
            schedule = DEFAULT_SCHEDULE
        start = next_working_start(schedule, calendar.closed_days, calendar.zone, now)
        later = Reason.OFF_HOURS
    elif recipient.quiet_hours is None or recipient.quiet_hours.empty:
        return Plan(recipient.id, Reason.DUE, now)
    else:
        awake = awake_schedule(recipient.quiet_hours)
        start = next_working_start(awake, NO_DAYS, calendar.zone, now)
        later = Reason.QUIET_HOURS
    if start is None:
        return Plan(recipient.id, Reason.NO_WORKING_PERIOD, None)
    if start > now:
        return Plan(recipient.id, later, start)
    return Plan(recipient.id, Reason.DUE, now)


def plan_message(
    actor: str, members: Iterable[Recipient], calendar: Calendar, now: datetime
) -> list[Plan]:
    """For a new message of `actor`: one plan per member, in the order given."""
    plans: list[Plan] = []
    for member in members:
        if member.id == actor:
            plans.append(Plan(member.id, Reason.SENDER))
        elif not member.active:
            plans.append(Plan(member.id, Reason.INACTIVE))
        elif not member.reachable:
            plans.append(Plan(member.id, Reason.UNREACHABLE))
        else:
            plans.append(hold(member, calendar, now))
    return plans


# --- quiet hours --------------------------------------------------------------------------------


def _complement(periods: DayPeriods) -> DayPeriods:
    out: list[tuple[int, int]] = []
    cursor = 0
    for start, end in periods:
        if start > cursor:
            out.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < DAY_MINUTES:
        out.append((cursor, DAY_MINUTES))
    return tuple(out)


def awake_schedule(quiet: WeeklySchedule) -> WeeklySchedule:
    """The periods outside `quiet`, day by day: when a parent may be told.

    Raises ValueError when a day has more than MAX_QUIET_PERIODS_PER_DAY quiet periods
    (`parse_quiet_hours` refuses those first).
    """
    return WeeklySchedule(**{name: _complement(quiet.on(i)) for i, name in enumerate(DAYS)})


def parse_quiet_hours(obj: object) -> tuple[WeeklySchedule | None, list[tuple[str, str]]]:
    """Quiet hours as `{"mon": [["00:00", "07:00"], ["21:00", "24:00"]], ...}`: the schedule, or
    every (path, problem). A night spans two days: list its two halves."""
    schedule, problems = parse_schedule(obj, "")
    if schedule is None:
        return None, problems
    for i, name in enumerate(DAYS):
        if len(schedule.on(i)) > MAX_QUIET_PERIODS_PER_DAY:
            problems.append((name, f"at most {MAX_QUIET_PERIODS_PER_DAY} quiet periods a day"))
    if problems:
        return None, problems
    if awake_schedule(schedule).empty:
        return None, [("", "quiet hours must leave some time in the week")]
    return schedule, []


# --- what a parent sees before writing ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether a staff member works now; if not, when their next working period begins."""

    working: bool
    next_start: datetime | None = None


def availability(
    working_hours: WeeklySchedule | None, calendar: Calendar, now: datetime
) -> Availability:
    """A staff member's availability at `now` (None: the school default hours)."""
    plan = hold(Recipient("", UserKind.STAFF, working_hours=working_hours), calendar, now)
    if plan.reason is Reason.DUE:
        return Availability(True)
    return Availability(False, plan.not_before)


_WEEKDAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def _lang(locale: str) -> str:
    return "en" if locale == "en" else "fr"


def local_when(instant: datetime, zone: ZoneInfo, locale: str, now: datetime) -> str:
    """`instant` as a reader in `zone` says it: "Monday at 7:30", "demain à 7 h 30"."""
    lang = _lang(locale)
    wall = _aware(instant).astimezone(zone)
    today = _aware(now).astimezone(zone).date()
    clock = f"{wall.hour}:{wall.minute:02d}" if lang == "en" else f"{wall.hour} h {wall.minute:02d}"
    if lang == "fr" and wall.minute == 0:
        clock = f"{wall.hour} h"
    ahead = (wall.date() - today).days
    if ahead == 0:
        day = text("notify_today", lang)
    elif ahead == 1:
        day = text("notify_tomorrow", lang)
    elif 1 < ahead < 7:
        day = _WEEKDAYS[lang][wall.weekday()]
    else:
        weekday, month = _WEEKDAYS[lang][wall.weekday()], _MONTHS[lang][wall.month - 1]
        if lang == "en":
            day = f"{weekday}, {month} {wall.day}"
        else:
            day = f"le {weekday} {wall.day} {month}"
    return text("notify_day_at", lang, day=day, time=clock)


def availability_notice(
    name: str, found: Availability, zone: ZoneInfo, locale: str, now: datetime
) -> str | None:
    """What the writer is told about a staff member who is off: "Marie Tremblay will see your
    message Monday at 7:30"; None while they are working."""
    if found.working:
        return None
    if found.next_start is None:
        return text("notify_sees_later", locale, name=name)
    when = local_when(found.next_start, zone, locale, now)
    return text("notify_sees_at", locale, name=name, when=when)


# --- the merged notification's words ------------------------------------------------------------


def senders_of(actor_names: Sequence[str]) -> list[tuple[str, int]]:
    """(name, messages) per sender, in the order of their first message."""
    counts: dict[str, int] = {}
    for name in actor_names:
        counts[name] = counts.get(name, 0) + 1
    return list(counts.items())


def _names(senders: Sequence[tuple[str, int]], lang: str) -> str:
    names = [name for name, _ in senders]
    if len(names) == 1:
        return names[0]
    if len(names) == MAX_LISTED_SENDERS:
        return text("notify_two_senders", lang, a=names[0], b=names[1])
    return text("notify_more_senders", lang, a=names[0], n=len(names) - 1)


def summary(senders: Sequence[tuple[str, int]], title: str | None, locale: str) -> str:
    """ "3 new messages from Sam Roy", "2 nouveaux messages de Sam Roy et Lou Roy dans « 3e A »".

    `senders` as `senders_of` gives them; it must not be empty.
    """
    if not senders:
        raise ValueError("a summary needs at least one message")
    lang = _lang(locale)
    count = sum(n for _, n in senders)
    key = "notify_one" if count == 1 else "notify_many"
    line = text(key, lang, count=count, senders=_names(senders, lang))
    if title:
        line = text("notify_in_title", lang, summary=line, title=title)
    return line


# --- retries ------------------------------------------------------------------------------------


def retry_delay(attempt: int, base_s: float, cap_s: float = 3600.0) -> timedelta:
    """The wait after the `attempt`-th failed try (1, 2, ...): base, x4 each time, capped."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return timedelta(seconds=min(cap_s, base_s * 4 ** (attempt - 1)))


def gives_up(attempts: int, max_attempts: int) -> bool:
    """Whether a notification that failed `attempts` times is recorded as failed for good."""
    return attempts >= max_attempts


def closed_days_of(raw: Iterable[date | str] | None) -> frozenset[date]:
    """Closed days from the store (dates, or ISO strings from JSON)."""
    if not raw:
        return NO_DAYS
    return frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in raw)


def schedule_of(raw: Mapping[str, object] | None) -> WeeklySchedule | None:
    """A stored schedule (already validated when it was stored); None stays None."""
    if raw is None:
        return None
    schedule, problems = parse_schedule(raw, "")
    if schedule is None:
        raise ValueError(f"stored schedule is invalid: {problems}")
    return schedule
