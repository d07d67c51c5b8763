"""Calendar arithmetic, in one place: months added to a day or a moment, and the quarter a day is in.

A month later is the same day of the month, or the month's last day when that month is shorter (31 January plus
one month is 28 or 29 February), as PostgreSQL adds months.
"""

import calendar
from datetime import date, datetime, timedelta

__all__ = ["month_last_full", "month_to_date", "moment_months_add", "months_add", "quarter_start"]


def months_add(day: date, months: int) -> date:
    """The same day `months` later (or earlier), on the month's last day when it is shorter (31 Jan + 1 = 28 Feb).

    Always a `date`, even for a datetime: use `moment_months_add` to keep the time of day.
    """
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def moment_months_add(moment: datetime, months: int) -> datetime:
    """The same time of day on the day `months_add` gives, in the moment's own time zone (no conversion: pass a
    local time to count local days)."""
    day = months_add(moment, months)
    return moment.replace(year=day.year, month=day.month, day=day.day)


def month_last_full(today: date) -> tuple[date, date]:
    """The first and last day of the last full calendar month before `today` (a report's default period)."""
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def month_to_date(today: date) -> tuple[date, date]:
    """The first day of `today`'s month and `today` itself ("this month" on a report)."""
    return today.replace(day=1), today


def quarter_start(day: date) -> date:
    """The first day of the calendar quarter `day` is in (1 January, 1 April, 1 July or 1 October)."""
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
