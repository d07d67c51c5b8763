"""The shape every report has, whatever it counts: the parameters it was asked with, its headline figures, its
small tables, its charts and its detail rows. The Excel builder, the report page and the dashboard all render this
one shape, so a number is computed once and shows the same everywhere.

A report kind is a function `build(params) -> Report` registered in `KINDS` (reports/kinds.py fills it in); the
numbers themselves come from the queries in `reports/queries/`, one query per metric, defined in docs/metrics.md.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.numbers import money_display, points_display

__all__ = [
    "UNITS", "Chart", "Column", "Figure", "KINDS", "Kind", "Report", "ReportParams", "Series", "Table",
    "kind_get", "register", "report_build", "report_snapshot", "share", "value_display",
]

# unit -> how a value is shown: money in yuan (Decimal, 2 places), a share (Decimal 0..1, shown as a percentage),
# a count of things (int), points (int), a plain decimal ratio.
PERCENT_PLACES = Decimal("0.01")
UNITS = ("money", "percent", "count", "points", "decimal", "text", "date")


@dataclass(frozen=True)
class ReportParams:
    """What a report is asked for: the days from `start` to `end` (both included, local dates) and which stores.

    `store_ids` None means every store (headquarters); otherwise the report counts only those stores (already
    narrowed to the asking user's stores and the chosen formats by `reports.services.params_resolve`).
    `format_codes` are the formats chosen, for the report's title and for per-format figures.
    """

    start: date
    end: date
    store_ids: tuple[int, ...] | None = None
    format_codes: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def moments(self) -> tuple[datetime, datetime]:
        """[start, end) as aware datetimes: local midnight of `start` to local midnight after `end`."""
        zone = timezone.get_current_timezone()
        return (
            timezone.make_aware(datetime.combine(self.start, time.min), zone),
            timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min), zone),
        )

    def store_q(self, path: str = "store") -> Q:
        """A filter on `path` (the lookup to a store id, e.g. "store" or "terminal__store") for the stores asked;
        an empty Q for headquarters."""
        if self.store_ids is None:
            return Q()
        return Q(**{f"{path}__in": self.store_ids})

    def previous_year(self) -> "ReportParams":
        """The same days a year earlier (29 February becomes 28 February)."""
        def back(day: date) -> date:
            try:
                return day.replace(year=day.year - 1)
            except ValueError:
                return day.replace(year=day.year - 1, day=28)
        return ReportParams(start=back(self.start), end=back(self.end), store_ids=self.store_ids,
                            format_codes=self.format_codes)

    def as_dict(self) -> dict:
        """For a run's stored parameters (JSON)."""
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "store_ids": list(self.store_ids) if self.store_ids is not None else None,
            "format_codes": list(self.format_codes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ReportParams":
        store_ids = data.get("store_ids")
        return cls(
            start=date.fromisoformat(data["start"]), end=date.fromisoformat(data["end"]),
            store_ids=tuple(store_ids) if store_ids is not None else None,
            format_codes=tuple(data.get("format_codes") or ()),
        )


@dataclass(frozen=True)
class Figure:
    """One headline number: `key` is stable (tests, links, the dashboard), `label` what people read."""

    key: str
    label: str
    value: Decimal | int | None
    unit: str = "count"
    note: str = ""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    unit: str = "text"


@dataclass
class Table:
    """Rows under column headings. `rows` may be a generator (a detail streamed into Excel); then it is read once.
    A small table (per format, per store) is a list and may be read as often as needed."""

    key: str
    title: str
    columns: list[Column]
    rows: Iterable[tuple]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.rows)


@dataclass(frozen=True)
class Series:
    name: str
    values: list


@dataclass(frozen=True)
class Chart:
    """A chart over `categories` (x axis, or the slices of a pie) with one or more series of numbers.
    `kind` is "column", "bar", "line" or "pie"; `unit` the series' unit (for axis labels and number formats)."""

    key: str
    title: str
    kind: str
    categories: list[str]
    series: list[Series]
    unit: str = "count"


@dataclass
class Report:
    kind: str
    title: str
    params: ReportParams
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    detail: Table | None = None
    # Said when a section has nothing to count yet (an app without data): shown instead of wrong numbers.
    notes: list[str] = field(default_factory=list)

    def figure(self, key: str) -> Figure:
        for figure in self.figures:
            if figure.key == key:
                return figure
        raise KeyError(key)


@dataclass(frozen=True)
class Kind:
    code: str
    label: str
    build: Callable[[ReportParams], Report]
    description: str = ""


KINDS: dict[str, Kind] = {}


def register(code: str, label, description=""):
    """Decorator: register `build(params) -> Report` as the report kind `code` (used by reports/queries/*)."""
    def decorate(build):
        KINDS[code] = Kind(code=code, label=label, build=build, description=description)
        return build
    return decorate


def kind_get(code: str) -> Kind:
    from reports.kinds import kinds_load

    kinds_load()
    return KINDS[code]


def report_build(kind: str, params: ReportParams) -> Report:
    """The report of `kind` for `params`: its figures, tables and charts computed now, its detail ready to stream."""
    return kind_get(kind).build(params)


@contextmanager
def report_snapshot():
    """Build a report inside this: on PostgreSQL every query of it reads one snapshot (REPEATABLE READ, read-only;
    the figures and the streamed detail agree even while the tills write) with room to hash and sort in memory
    (work_mem 64MB: the distinct counts and the repurchase join of a year of receipts), without JIT."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SET LOCAL work_mem = '64MB'")
                # JIT compiling pays off only for queries of minutes; a report's take seconds (measured: tiers 35%,
                # staff 3.5x faster without it).
                cursor.execute("SET LOCAL jit = off")
        yield


def value_display(value, unit: str) -> str:
    """A report's value in its unit: money 68,551.50, a share 12.34%, counts and points with separators; "—" for
    none (a share of nothing, a growth without last year)."""
    if value is None or value == "":
        return "—"
    if unit == "money":
        return money_display(value)
    if unit == "percent":
        return f"{(Decimal(value) * 100).quantize(PERCENT_PLACES)}%"
    if unit in ("count", "points"):
        return points_display(value)
    if unit == "date" and hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def share(part, whole) -> Decimal | None:
    """part / whole as a Decimal rounded to 4 places (a percentage with two decimals); None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"))


NO_DATA = _("Nothing to count in this period yet.")
