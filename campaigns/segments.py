"""Segment rules (人群规则): a JSON description of who to reach, checked, described and compiled into one SQL query.

Rules look like::

    {"match": "all", "conditions": [
        {"field": "marketing_consent", "value": true},
        {"field": "recency", "days_min": 90, "formats": ["DEPT"]},
        {"match": "any", "conditions": [{"field": "has_phone", "value": false}, {"field": "age", "min": 60}]}]}

The root matches all or any of its conditions; a condition is a field condition or a group of field conditions
(nested one level). Formats, stores, tiers and partners are named by their codes, tags by their names, so rules
read the same in every database and survive a reload of the reference data.

Every condition compiles to a `Q` over active members made of semi-joins (`pk__in` a subquery, `Exists`) and
anti-joins (`~Exists`), the forms PostgreSQL turns into hash joins, so counting a segment is one statement whose
cost is about one pass over the purchases of the window. Aggregates (frequency, spend, card balance) are grouped
per member in a `pk__in` subquery; a bound that members without any purchase also meet ("at most 2 purchases")
is the complement of the members above it.

Days are local days (Asia/Shanghai): a window of 30 days holds today and the 29 days before it, and a member whose
last purchase was on the day 90 days ago has not bought for 90 days.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.db.models import (
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from campaigns.errors import SegmentInvalid
from cards.models import Card
from core.dates import months_add
from membership.models import Member, MemberTag, Partner, Purchase, Tag, Tier, TierSubscription
from membership.queries import points_expiry_next
from membership.services.expiry import points_credited_since
from membership.services.tiers import tier_window
from stores.models import Format, Store

__all__ = [
    "CONDITIONS",
    "Condition",
    "conditions_schema",
    "rules_clean",
    "rules_count",
    "rules_describe",
    "rules_queryset",
]

MATCH_ALL = "all"
MATCH_ANY = "any"
MAX_CONDITIONS = 40
MAX_CODES = 500
MAX_DAYS = 3660
MAX_NUMBER = 1_000_000_000
MAX_MONEY = Decimal("1000000000.00")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
DEFAULT_WINDOW_DAYS = 365


# --- the vocabulary ------------------------------------------------------------------------------------------------


def _format_choices() -> list[tuple[str, str]]:
    return [(code, f"{code} {name}") for code, name in Format.objects.order_by("code").values_list("code", "name")]


def _store_choices() -> list[tuple[str, str]]:
    return [(code, f"{code} {name}") for code, name in Store.objects.order_by("code").values_list("code", "name")]


def _earned_tier_choices() -> list[tuple[str, str]]:
    return list(Tier.objects.filter(kind=Tier.Kind.EARNED).order_by("rank", "code").values_list("code", "name"))


def _paid_tier_choices() -> list[tuple[str, str]]:
    return list(Tier.objects.filter(kind=Tier.Kind.PAID).order_by("rank", "code").values_list("code", "name"))


def _partner_choices() -> list[tuple[str, str]]:
    return [(code, f"{code} {name}") for code, name in Partner.objects.order_by("code").values_list("code", "name")]


def _tag_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in Tag.objects.order_by("name").values_list("name", flat=True)]


def _gender_choices() -> list[tuple[str, str]]:
    return [(value, str(label)) for value, label in Member.Gender.choices]


def _registration_channel_choices() -> list[tuple[str, str]]:
    return [(value, str(label)) for value, label in Member.Channel.choices]


def _contact_channel_choices() -> list[tuple[str, str]]:
    return [(value, str(label)) for value, label in Member.ContactChannel.choices]


def _tag_mode_choices() -> list[tuple[str, str]]:
    return [("any", gettext("has any of them")), ("none", gettext("has none of them"))]


def _month_choices() -> list[tuple[int, str]]:
    return [(month, gettext("month %(month)d") % {"month": month}) for month in range(1, 13)]


def _param(name: str, label, kind: str, *, choices: Callable | None = None, required: bool = False,
           low: int | Decimal | None = None, high: int | Decimal | None = None) -> dict:
    """One setting of a condition: name, label, type (int|decimal|bool|codes|choice|months), choices, required."""
    return {"name": name, "label": label, "type": kind, "choices": choices, "required": required,
            "min": low, "max": high}


def _days(name: str, label=None, *, required: bool = False, low: int = 0) -> dict:
    return _param(name, label or _("days"), "int", required=required, low=low, high=MAX_DAYS)


def _formats() -> dict:
    return _param("formats", _("formats"), "codes", choices=_format_choices)


def _stores() -> dict:
    return _param("stores", _("stores"), "codes", choices=_store_choices)


def _count(name: str, label) -> dict:
    return _param(name, label, "int", low=0, high=MAX_NUMBER)


def _money(name: str, label) -> dict:
    return _param(name, label, "decimal", low=ZERO, high=MAX_MONEY)


def _flag(name: str = "value", label=None, *, required: bool = True) -> dict:
    return _param(name, label or _("yes or no"), "bool", required=required)


@dataclass(frozen=True)
class Context:
    """The local day rules are evaluated on."""

    today: date

    def day_start(self, day: date) -> datetime:
        return timezone.make_aware(datetime.combine(day, time.min))

    def window_start(self, days: int) -> datetime:
        """The start of a window of `days` local days that ends now (today and the days before it)."""
        return self.day_start(self.today - timedelta(days=max(days, 1) - 1))


@dataclass(frozen=True)
class Condition:
    """One kind of condition: its label, the group it is listed under, its settings and how it compiles."""

    field: str
    label: object
    group: object
    params: list[dict]
    compile: Callable[[dict, Context], Q]
    describe: Callable[[dict], str]
    # Checks across settings (a minimum or a maximum, minimum not above maximum): messages for what is wrong.
    check: Callable[[dict], list[str]] = field(default=lambda values: [])

    @property
    def param_names(self) -> set[str]:
        return {param["name"] for param in self.params}


# --- compiling -----------------------------------------------------------------------------------------------------


def _member_purchases(values: dict, ctx: Context, *, days: int | None) -> QuerySet:
    """Purchases by members (never a customer without membership), in the formats and window given."""
    purchases = Purchase.objects.filter(member__isnull=False)
    if values.get("formats"):
        purchases = purchases.filter(format__in=Format.objects.filter(code__in=values["formats"]).values("pk"))
    if values.get("stores"):
        purchases = purchases.filter(store__in=Store.objects.filter(code__in=values["stores"]).values("pk"))
    if days:
        purchases = purchases.filter(occurred_at__gte=ctx.window_start(days))
    return purchases


def _net():
    return ExpressionWrapper(F("amount") - F("returned_amount"), output_field=DecimalField(max_digits=14,
                                                                                          decimal_places=2))


def _bounded(per_member: QuerySet, total, *, low, high, zero) -> Q:
    """Members whose per-member `total` (an aggregate over `per_member`, rows with member_id) lies in [low, high].

    Members without any row have `zero`: when that lies in the bounds they match too, as the complement of the
    members whose total is outside them.
    """
    grouped = per_member.order_by().values("member_id").annotate(total=total)
    if low is not None and low > zero:
        inside = grouped.filter(total__gte=low)
        if high is not None:
            inside = inside.filter(total__lte=high)
        return Q(pk__in=inside.values("member_id"))
    if high is None:
        return Q()
    above = grouped.filter(member_id=OuterRef("pk"), total__gt=high)
    outside = Q(~Exists(above))
    if low is not None and low < zero:
        outside &= ~Exists(grouped.filter(member_id=OuterRef("pk"), total__lt=low))
    return outside


def _compile_tier(values: dict, ctx: Context) -> Q:
    return Q(tier__in=Tier.objects.filter(kind=Tier.Kind.EARNED, code__in=values["codes"]).values("pk"))


def _paid_current(ctx: Context) -> Q:
    return Q(paid_tier__isnull=False, paid_tier_until__isnull=False, paid_tier_until__gte=ctx.today)


def _compile_paid_tier(values: dict, ctx: Context) -> Q:
    condition = _paid_current(ctx)
    if values.get("codes"):
        condition &= Q(paid_tier__in=Tier.objects.filter(kind=Tier.Kind.PAID, code__in=values["codes"]).values("pk"))
    return condition


def _compile_paid_tier_lapsed(values: dict, ctx: Context) -> Q:
    terms = TierSubscription.objects.filter(ends_on__lt=ctx.today)
    until = Q(paid_tier_until__lt=ctx.today)
    if values.get("days"):
        since = ctx.today - timedelta(days=values["days"])
        terms = terms.filter(ends_on__gte=since)
        until &= Q(paid_tier_until__gte=since)
    return (Q(pk__in=terms.values("member_id")) | until) & ~_paid_current(ctx)


def _compile_shopped(values: dict, ctx: Context) -> Q:
    purchases = _member_purchases(values, ctx, days=values.get("days"))
    if values.get("negate"):
        return Q(~Exists(purchases.filter(member_id=OuterRef("pk"))))
    return Q(pk__in=purchases.values("member_id"))


def _compile_recency(values: dict, ctx: Context) -> Q:
    purchases = _member_purchases(values, ctx, days=None)
    bought = purchases
    days_max = values.get("days_max")
    if days_max is not None:
        bought = bought.filter(occurred_at__gte=ctx.day_start(ctx.today - timedelta(days=days_max)))
    days_min = values.get("days_min")
    if not days_min:
        return Q(pk__in=bought.values("member_id"))
    # The last purchase is at least days_min days old: one before that day and none since.
    since = ctx.day_start(ctx.today - timedelta(days=days_min - 1))
    return Q(pk__in=bought.filter(occurred_at__lt=since).values("member_id")) \
        & ~Exists(purchases.filter(member_id=OuterRef("pk"), occurred_at__gte=since))


def _compile_frequency(values: dict, ctx: Context) -> Q:
    purchases = _member_purchases(values, ctx, days=values.get("days") or DEFAULT_WINDOW_DAYS)
    return _bounded(purchases, Count("pk"), low=values.get("min"), high=values.get("max"), zero=0)


def _compile_spend(values: dict, ctx: Context) -> Q:
    purchases = _member_purchases(values, ctx, days=values.get("days") or DEFAULT_WINDOW_DAYS)
    low = Decimal(values["min"]) if values.get("min") is not None else None
    high = Decimal(values["max"]) if values.get("max") is not None else None
    return _bounded(purchases, Sum(_net()), low=low, high=high, zero=ZERO)


def _compile_top_spenders(values: dict, ctx: Context) -> Q:
    spenders = (
        _member_purchases({}, ctx, days=values.get("days") or DEFAULT_WINDOW_DAYS)
        .filter(member__status=Member.Status.ACTIVE, member__registered_store__isnull=False)
        .order_by().values(seg_member=F("member_id"), seg_store=F("member__registered_store_id"))
        .annotate(seg_spend=Sum(_net())).filter(seg_spend__gt=0)
    )
    sql, params = spenders.query.sql_with_params()
    # The top p percent of a store's n spenders are the first ceil(p * n / 100) by spend, so at least the top one
    # of a small store: rank <= ceil(p * n / 100) is (rank - 1) * 100 < p * n in whole numbers (ties at the
    # edge all in).
    ranked = (
        "SELECT seg_ranked.seg_member FROM (SELECT seg_rows.seg_member, "  # noqa: S608 - the ORM's own SQL
        "RANK() OVER (PARTITION BY seg_rows.seg_store ORDER BY seg_rows.seg_spend DESC) AS seg_rank, "
        "COUNT(*) OVER (PARTITION BY seg_rows.seg_store) AS seg_spenders FROM (" + sql + ") AS seg_rows"
        ") AS seg_ranked WHERE (seg_ranked.seg_rank - 1) * 100 < %s * seg_ranked.seg_spenders"
    )
    return Q(pk__in=RawSQL(ranked, (*params, values["percent"])))  # noqa: S611 - values are parameters


def _compile_next_tier_progress(values: dict, ctx: Context) -> Q:
    start, end = tier_window(ctx.today)
    next_threshold = Subquery(
        Tier.objects.filter(kind=Tier.Kind.EARNED, is_active=True, rank__gt=OuterRef("member__tier__rank"))
        .order_by("rank", "pk").values("threshold")[:1],
        output_field=DecimalField(max_digits=14, decimal_places=2),
    )
    share = Decimal(values["percent_min"]) / 100
    near = (
        Purchase.objects.filter(member__isnull=False, occurred_at__gte=start, occurred_at__lt=end)
        .order_by().values("member_id")
        .annotate(spend=Sum(_net()), next_threshold=next_threshold)
        .filter(next_threshold__isnull=False, spend__lt=F("next_threshold"),
                spend__gte=ExpressionWrapper(F("next_threshold") * Value(share),
                                             output_field=DecimalField(max_digits=20, decimal_places=6)))
    )
    return Q(pk__in=near.values("member_id"))


def _years_ago(day: date, years: int) -> date:
    return months_add(day, -12 * years)


def _compile_age(values: dict, ctx: Context) -> Q:
    condition = Q(birth_date__isnull=False)
    if values.get("min") is not None:
        condition &= Q(birth_date__lte=_years_ago(ctx.today, values["min"]))
    if values.get("max") is not None:
        condition &= Q(birth_date__gt=_years_ago(ctx.today, values["max"] + 1))
    return condition


def _compile_gender(values: dict, ctx: Context) -> Q:
    return Q(gender__in=values["values"])


def _compile_birth_month(values: dict, ctx: Context) -> Q:
    months = set(values.get("months") or ())
    if values.get("current"):
        months.add(ctx.today.month)
    return Q(birth_date__isnull=False, birth_date__month__in=sorted(months))


def _compile_registered_store(values: dict, ctx: Context) -> Q:
    return Q(registered_store__in=Store.objects.filter(code__in=values["stores"]).values("pk"))


def _compile_registered_format(values: dict, ctx: Context) -> Q:
    return Q(registered_store__in=Store.objects.filter(format__code__in=values["formats"]).values("pk"))


def _compile_registered_channel(values: dict, ctx: Context) -> Q:
    return Q(registered_channel__in=values["channels"])


def _compile_partner(values: dict, ctx: Context) -> Q:
    if values.get("partners"):
        return Q(partner__in=Partner.objects.filter(code__in=values["partners"]).values("pk"))
    return Q(partner__isnull=False)


def _compile_registered_within(values: dict, ctx: Context) -> Q:
    condition = Q()
    if values.get("days_min"):
        condition &= Q(registered_at__lt=ctx.day_start(ctx.today - timedelta(days=values["days_min"] - 1)))
    if values.get("days_max") is not None:
        condition &= Q(registered_at__gte=ctx.day_start(ctx.today - timedelta(days=values["days_max"])))
    return condition


def _compile_tags(values: dict, ctx: Context) -> Q:
    tagged = MemberTag.objects.filter(member_id=OuterRef("pk"), tag__name__in=values["tags"])
    if values.get("mode") == "none":
        return Q(~Exists(tagged))
    return Q(Exists(tagged))


def _compile_card_balance(values: dict, ctx: Context) -> Q:
    cards = Card.objects.filter(member__isnull=False, status=Card.Status.ACTIVE)
    low = Decimal(values["min"]) if values.get("min") is not None else None
    high = Decimal(values["max"]) if values.get("max") is not None else None
    return _bounded(cards, Sum("balance"), low=low, high=high, zero=ZERO)


def _compile_points(values: dict, ctx: Context) -> Q:
    condition = Q()
    if values.get("min") is not None:
        condition &= Q(points__gte=values["min"])
    if values.get("max") is not None:
        condition &= Q(points__lte=values["max"])
    return condition


def _compile_points_expiring(values: dict, ctx: Context) -> Q:
    expiry = points_expiry_next(today=ctx.today)
    if expiry is None:
        return Q(pk__in=[])
    valid = (
        points_credited_since(expiry.cutoff).filter(member=OuterRef("pk")).order_by().values("member")
        .annotate(total=Sum("points")).values("total")
    )
    expiring = F("points") - Coalesce(Subquery(valid, output_field=IntegerField()), Value(0))
    # The cheap bound first: a member cannot lose more points than they hold.
    return Q(points__gte=values["min"]) & Q(GreaterThanOrEqual(expiring, values["min"]))


def _compile_marketing_consent(values: dict, ctx: Context) -> Q:
    return Q(marketing_consent=values["value"])


def _compile_contact_channel(values: dict, ctx: Context) -> Q:
    return Q(contact_channel__in=values["channels"])


def _compile_has_phone(values: dict, ctx: Context) -> Q:
    return ~Q(phone="") if values["value"] else Q(phone="")


# --- checks across settings ----------------------------------------------------------------------------------------


def _min_max(*, required: bool = True, low: str = "min", high: str = "max") -> Callable[[dict], list[str]]:
    def check(values: dict) -> list[str]:
        if required and values.get(low) is None and values.get(high) is None:
            return [gettext("give a minimum or a maximum.")]
        if values.get(low) is not None and values.get(high) is not None \
                and Decimal(values[low]) > Decimal(values[high]):
            return [gettext("the minimum is above the maximum.")]
        return []

    return check


def _check_frequency(values: dict) -> list[str]:
    problems = _min_max()(values)
    if not problems and values.get("min") == 0 and values.get("max") is None:
        problems.append(gettext("at least 0 purchases holds for everyone: give a maximum or a higher minimum."))
    return problems


def _check_birth_month(values: dict) -> list[str]:
    if not values.get("months") and not values.get("current"):
        return [gettext("choose months or the current month.")]
    return []


def _check_registered_within(values: dict) -> list[str]:
    return _min_max(low="days_min", high="days_max")(values)


def _check_recency(values: dict) -> list[str]:
    return _min_max(low="days_min", high="days_max")(values)


# --- describing ----------------------------------------------------------------------------------------------------


def _list(values) -> str:
    return gettext(", ").join(str(value) for value in values)


def _window(values: dict, default: int | None = DEFAULT_WINDOW_DAYS) -> str:
    days = values.get("days") or default
    if not days:
        return gettext("ever")
    return ngettext("in the last %(days)d day", "in the last %(days)d days", days) % {"days": days}


def _in_formats(values: dict) -> str:
    parts = []
    if values.get("formats"):
        parts.append(gettext("in formats %(formats)s") % {"formats": _list(values["formats"])})
    if values.get("stores"):
        parts.append(gettext("at stores %(stores)s") % {"stores": _list(values["stores"])})
    return (" " + " ".join(parts)) if parts else ""


def _between(values: dict, *, low: str = "min", high: str = "max", unit: str = "") -> str:
    suffix = f" {unit}" if unit else ""
    if values.get(low) is not None and values.get(high) is not None:
        return gettext("from %(low)s to %(high)s") % {"low": values[low], "high": values[high]} + suffix
    if values.get(low) is not None:
        return gettext("at least %(low)s") % {"low": values[low]} + suffix
    return gettext("at most %(high)s") % {"high": values.get(high)} + suffix


def _yes_no(value) -> str:
    return gettext("yes") if value else gettext("no")


def _describe_tier(values):
    return gettext("Earned tier is %(tiers)s") % {"tiers": _list(values["codes"])}


def _describe_paid_tier(values):
    if values.get("codes"):
        return gettext("Holds the paid tier %(tiers)s now") % {"tiers": _list(values["codes"])}
    return gettext("Holds a paid tier now")


def _describe_paid_tier_lapsed(values):
    if values.get("days"):
        return gettext("A paid tier ended in the last %(days)d days and none is held now") % {"days": values["days"]}
    return gettext("A paid tier ended and none is held now")


def _describe_shopped(values):
    where = _in_formats(values)
    if values.get("negate"):
        return gettext("Never bought%(where)s %(window)s") % {"where": where, "window": _window(values, None)}
    return gettext("Bought%(where)s %(window)s") % {"where": where, "window": _window(values, None)}


def _describe_recency(values):
    return gettext("Days since the last purchase%(where)s: %(range)s") % {
        "where": _in_formats(values), "range": _between(values, low="days_min", high="days_max")}


def _describe_frequency(values):
    return gettext("Purchases%(where)s %(window)s: %(range)s") % {
        "where": _in_formats(values), "window": _window(values), "range": _between(values)}


def _describe_spend(values):
    return gettext("Net spend%(where)s %(window)s: %(range)s") % {
        "where": _in_formats(values), "window": _window(values), "range": _between(values)}


def _describe_top_spenders(values):
    return gettext("Among the top %(percent)d%% spenders of their registering store %(window)s") % {
        "percent": values["percent"], "window": _window(values)}


def _describe_next_tier_progress(values):
    return gettext("Spend in the tier window is at least %(percent)d%% of the next tier's threshold") % {
        "percent": values["percent_min"]}


def _describe_age(values):
    return gettext("Age: %(range)s") % {"range": _between(values)}


def _describe_gender(values):
    labels = dict(Member.Gender.choices)
    return gettext("Gender is %(values)s") % {"values": _list(labels.get(v, v) for v in values["values"])}


def _describe_birth_month(values):
    parts = [str(month) for month in values.get("months") or ()]
    if values.get("current"):
        parts.append(gettext("the current month"))
    return gettext("Born in month %(months)s") % {"months": _list(parts)}


def _describe_registered_store(values):
    return gettext("Registered at %(stores)s") % {"stores": _list(values["stores"])}


def _describe_registered_format(values):
    return gettext("Registered at a store of %(formats)s") % {"formats": _list(values["formats"])}


def _describe_registered_channel(values):
    labels = dict(Member.Channel.choices)
    return gettext("Registered through %(channels)s") % {
        "channels": _list(labels.get(v, v) for v in values["channels"])}


def _describe_partner(values):
    if values.get("partners"):
        return gettext("Registered through partner %(partners)s") % {"partners": _list(values["partners"])}
    return gettext("Registered through any partner")


def _describe_registered_within(values):
    return gettext("Days since registration: %(range)s") % {
        "range": _between(values, low="days_min", high="days_max")}


def _describe_tags(values):
    if values.get("mode") == "none":
        return gettext("Has none of the tags %(tags)s") % {"tags": _list(values["tags"])}
    return gettext("Has any of the tags %(tags)s") % {"tags": _list(values["tags"])}


def _describe_card_balance(values):
    return gettext("Balance on active prepaid cards: %(range)s") % {"range": _between(values)}


def _describe_points(values):
    return gettext("Points: %(range)s") % {"range": _between(values)}


def _describe_points_expiring(values):
    return gettext("At least %(points)d points expire at the coming year end") % {"points": values["min"]}


def _describe_marketing_consent(values):
    return gettext("Marketing consent: %(value)s") % {"value": _yes_no(values["value"])}


def _describe_contact_channel(values):
    labels = dict(Member.ContactChannel.choices)
    return gettext("Preferred contact is %(channels)s") % {
        "channels": _list(labels.get(v, v) for v in values["channels"])}


def _describe_has_phone(values):
    return gettext("Has a phone: %(value)s") % {"value": _yes_no(values["value"])}


# --- the conditions ------------------------------------------------------------------------------------------------

TIERS = _("tiers")
PURCHASES = _("purchases")
PERSON = _("person")
REGISTRATION = _("registration")
BALANCES = _("tags and balances")
CONTACT = _("consent and contact")

_MIN = _("minimum")
_MAX = _("maximum")

CONDITIONS: dict[str, Condition] = {condition.field: condition for condition in [
    Condition("tier", _("earned tier"), TIERS,
              [_param("codes", _("tiers"), "codes", choices=_earned_tier_choices, required=True)],
              _compile_tier, _describe_tier),
    Condition("paid_tier", _("paid tier held"), TIERS,
              [_param("codes", _("paid tiers (none: any)"), "codes", choices=_paid_tier_choices)],
              _compile_paid_tier, _describe_paid_tier),
    Condition("paid_tier_lapsed", _("paid tier lapsed"), TIERS, [_days("days", _("ended within (days)"), low=1)],
              _compile_paid_tier_lapsed, _describe_paid_tier_lapsed),
    Condition("shopped", _("bought (formats, stores)"), PURCHASES,
              [_formats(), _stores(), _days("days", _("in the last (days, 0: ever)")),
               _flag("negate", _("never did"), required=False)],
              _compile_shopped, _describe_shopped),
    Condition("recency", _("days since the last purchase"), PURCHASES,
              [_days("days_min", _("at least (days)")), _days("days_max", _("at most (days)")), _formats()],
              _compile_recency, _describe_recency, _check_recency),
    Condition("frequency", _("number of purchases"), PURCHASES,
              [_count("min", _MIN), _count("max", _MAX), _days("days", _("window (days)"), low=1), _formats()],
              _compile_frequency, _describe_frequency, _check_frequency),
    Condition("spend", _("net spend"), PURCHASES,
              [_money("min", _MIN), _money("max", _MAX), _days("days", _("window (days)"), low=1), _formats()],
              _compile_spend, _describe_spend, _min_max()),
    Condition("top_spenders", _("top spenders of their store"), PURCHASES,
              [_param("percent", _("top share (percent)"), "int", required=True, low=1, high=100),
               _days("days", _("window (days)"), low=1)],
              _compile_top_spenders, _describe_top_spenders),
    Condition("next_tier_progress", _("close to the next tier"), TIERS,
              [_param("percent_min", _("at least (percent of the next threshold)"), "int", required=True,
                      low=1, high=99)],
              _compile_next_tier_progress, _describe_next_tier_progress),
    Condition("age", _("age"), PERSON, [_param("min", _MIN, "int", low=0, high=150),
                                        _param("max", _MAX, "int", low=0, high=150)],
              _compile_age, _describe_age, _min_max()),
    Condition("gender", _("gender"), PERSON,
              [_param("values", _("gender"), "choice", choices=_gender_choices, required=True)],
              _compile_gender, _describe_gender),
    Condition("birth_month", _("birth month"), PERSON,
              [_param("months", _("months"), "months", choices=_month_choices),
               _flag("current", _("the current month"), required=False)],
              _compile_birth_month, _describe_birth_month, _check_birth_month),
    Condition("registered_store", _("registering store"), REGISTRATION,
              [_param("stores", _("stores"), "codes", choices=_store_choices, required=True)],
              _compile_registered_store, _describe_registered_store),
    Condition("registered_format", _("registering store's format"), REGISTRATION,
              [_param("formats", _("formats"), "codes", choices=_format_choices, required=True)],
              _compile_registered_format, _describe_registered_format),
    Condition("registered_channel", _("registration channel"), REGISTRATION,
              [_param("channels", _("channels"), "choice", choices=_registration_channel_choices, required=True)],
              _compile_registered_channel, _describe_registered_channel),
    Condition("partner", _("partner channel"), REGISTRATION,
              [_param("partners", _("partners (none: any)"), "codes", choices=_partner_choices)],
              _compile_partner, _describe_partner),
    Condition("registered_within", _("days since registration"), REGISTRATION,
              [_days("days_min", _("at least (days)")), _days("days_max", _("at most (days)"))],
              _compile_registered_within, _describe_registered_within, _check_registered_within),
    Condition("tags", _("tags"), BALANCES,
              [_param("tags", _("tags"), "codes", choices=_tag_choices, required=True),
               _param("mode", _("mode"), "choice", choices=_tag_mode_choices)],
              _compile_tags, _describe_tags),
    Condition("card_balance", _("prepaid card balance"), BALANCES, [_money("min", _MIN), _money("max", _MAX)],
              _compile_card_balance, _describe_card_balance, _min_max()),
    Condition("points", _("points balance"), BALANCES, [_count("min", _MIN), _count("max", _MAX)],
              _compile_points, _describe_points, _min_max()),
    Condition("points_expiring", _("points expiring at the year end"), BALANCES,
              [_param("min", _("at least (points)"), "int", required=True, low=1, high=MAX_NUMBER)],
              _compile_points_expiring, _describe_points_expiring),
    Condition("marketing_consent", _("marketing consent"), CONTACT, [_flag()],
              _compile_marketing_consent, _describe_marketing_consent),
    Condition("contact_channel", _("preferred contact"), CONTACT,
              [_param("channels", _("channels"), "choice", choices=_contact_channel_choices, required=True)],
              _compile_contact_channel, _describe_contact_channel),
    Condition("has_phone", _("has a phone"), CONTACT, [_flag()], _compile_has_phone, _describe_has_phone),
]}

# Single values where a list is expected (mode) and codes that are not codes (tags are names).
_SINGLE_CHOICES = {("tags", "mode")}
_NAMES = {("tags", "tags")}
_CODE_MODELS = {
    "formats": lambda codes: Format.objects.filter(code__in=codes).values_list("code", flat=True),
    "stores": lambda codes: Store.objects.filter(code__in=codes).values_list("code", flat=True),
    "partners": lambda codes: Partner.objects.filter(code__in=codes).values_list("code", flat=True),
    "tags": lambda codes: Tag.objects.filter(name__in=codes).values_list("name", flat=True),
}
_TIER_KINDS = {"tier": Tier.Kind.EARNED, "paid_tier": Tier.Kind.PAID}


def conditions_schema() -> list[dict]:
    """Every condition, JSON-able, for the admin's rule builder: field, label, group and settings with choices."""
    schema = []
    for condition in CONDITIONS.values():
        params = []
        for param in condition.params:
            choices = param["choices"]() if param["choices"] else None
            params.append({
                "name": param["name"], "label": str(param["label"]), "type": param["type"],
                "required": param["required"],
                "choices": [[value, str(label)] for value, label in choices] if choices is not None else None,
                "min": _json_number(param["min"]), "max": _json_number(param["max"]),
                "single": (condition.field, param["name"]) in _SINGLE_CHOICES,
            })
        schema.append({"field": condition.field, "label": str(condition.label), "group": str(condition.group),
                       "params": params})
    return schema


def _json_number(value):
    return str(value) if isinstance(value, Decimal) else value


# --- cleaning ------------------------------------------------------------------------------------------------------


class _Problems:
    def __init__(self):
        self.messages: list[str] = []

    def add(self, number: str, condition_label, text: str) -> None:
        if condition_label is None:
            self.messages.append(gettext("Condition %(number)s: %(problem)s") % {"number": number, "problem": text})
        else:
            self.messages.append(gettext("Condition %(number)s (%(condition)s): %(problem)s") % {
                "number": number, "condition": condition_label, "problem": text})


def _clean_int(value, param: dict) -> tuple[int | None, str | None]:
    if isinstance(value, bool):
        return None, gettext("%(setting)s must be a whole number.") % {"setting": param["label"]}
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value.strip()) <= 12:
        value = int(value.strip())
    if not isinstance(value, int):
        return None, gettext("%(setting)s must be a whole number.") % {"setting": param["label"]}
    if (param["min"] is not None and value < param["min"]) or (param["max"] is not None and value > param["max"]):
        return None, gettext("%(setting)s must be from %(low)s to %(high)s.") % {
            "setting": param["label"], "low": param["min"], "high": param["max"]}
    return value, None


def _clean_decimal(value, param: dict) -> tuple[str | None, str | None]:
    invalid = gettext("%(setting)s must be an amount such as 100.00.") % {"setting": param["label"]}
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None, invalid
    if isinstance(value, str) and len(value) > 20:
        return None, invalid
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None, invalid
    if not amount.is_finite():
        return None, invalid
    if amount < param["min"] or amount > param["max"]:
        return None, gettext("%(setting)s must be from %(low)s to %(high)s.") % {
            "setting": param["label"], "low": param["min"], "high": param["max"]}
    return str(amount.quantize(CENT)), None


def _clean_bool(value, param: dict) -> tuple[bool | None, str | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true", None
    return None, gettext("%(setting)s must be yes or no.") % {"setting": param["label"]}


def _clean_list(value, param: dict, *, single: bool) -> tuple[list | str | None, str | None]:
    if single:
        if not isinstance(value, str):
            return None, gettext("%(setting)s must be one of the choices.") % {"setting": param["label"]}
        allowed = {str(choice) for choice, _label in param["choices"]()}
        if value not in allowed:
            return None, gettext("%(setting)s must be one of the choices.") % {"setting": param["label"]}
        return value, None
    if not isinstance(value, list):
        return None, gettext("%(setting)s must be a list.") % {"setting": param["label"]}
    if len(value) > MAX_CODES:
        return None, gettext("%(setting)s: at most %(count)d values.") % {"setting": param["label"], "count": MAX_CODES}
    if param["type"] == "months":
        months = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, str)) or str(item).strip() not in {
                    str(month) for month in range(1, 13)}:
                return None, gettext("%(setting)s must be months from 1 to 12.") % {"setting": param["label"]}
            months.append(int(str(item).strip()))
        return sorted(set(months)), None
    if not all(isinstance(item, str) and 0 < len(item.strip()) <= 100 for item in value):
        return None, gettext("%(setting)s must be a list of codes.") % {"setting": param["label"]}
    items = list(dict.fromkeys(item.strip() for item in value))
    if param["type"] == "choice":
        allowed = {str(choice) for choice, _label in param["choices"]()}
        unknown = [item for item in items if item not in allowed]
    else:
        unknown = None  # checked against the database below
    if unknown:
        return None, gettext("%(setting)s: unknown %(values)s.") % {"setting": param["label"], "values": _list(unknown)}
    return items, None


def _known_codes(field_name: str, param_name: str, items: list[str]) -> list[str]:
    if field_name in _TIER_KINDS:
        return list(Tier.objects.filter(kind=_TIER_KINDS[field_name], code__in=items).values_list("code", flat=True))
    return list(_CODE_MODELS[param_name](items))


def _clean_condition(raw, number: str, problems: _Problems) -> dict | None:
    if not isinstance(raw, dict):
        problems.add(number, None, gettext("a condition must be an object with a field."))
        return None
    field_name = raw.get("field")
    condition = CONDITIONS.get(field_name) if isinstance(field_name, str) else None
    if condition is None:
        problems.add(number, None, gettext("unknown field %(field)s.") % {"field": str(field_name)[:40]})
        return None
    label = condition.label
    failed = False
    unknown = sorted(str(key)[:40] for key in raw if key != "field" and key not in condition.param_names)
    if unknown:
        problems.add(number, label, gettext("unknown settings %(names)s.") % {"names": _list(unknown)})
        failed = True
    values: dict = {"field": field_name}
    for param in condition.params:
        name = param["name"]
        value = raw.get(name)
        if value is None or value == "" or value == []:
            if param["required"]:
                problems.add(number, label, gettext("%(setting)s is required.") % {"setting": param["label"]})
                failed = True
            continue
        kind = param["type"]
        if kind == "int":
            cleaned, problem = _clean_int(value, param)
        elif kind == "decimal":
            cleaned, problem = _clean_decimal(value, param)
        elif kind == "bool":
            cleaned, problem = _clean_bool(value, param)
        else:
            cleaned, problem = _clean_list(value, param, single=(field_name, name) in _SINGLE_CHOICES)
            if problem is None and kind == "codes":
                known = set(_known_codes(field_name, name, cleaned))
                missing = [item for item in cleaned if item not in known]
                if missing:
                    what = gettext("tags") if (field_name, name) in _NAMES else gettext("codes")
                    problem = gettext("%(setting)s: unknown %(what)s %(values)s.") % {
                        "setting": param["label"], "what": what, "values": _list(missing[:10])}
        if problem:
            problems.add(number, label, problem)
            failed = True
            continue
        if kind == "bool" and not cleaned and not param["required"]:
            continue
        values[name] = cleaned
    if failed:
        return None
    for problem in condition.check(values):
        problems.add(number, label, problem)
        failed = True
    return None if failed else values


def _clean_match(raw, number: str, problems: _Problems) -> str | None:
    match = raw.get("match", MATCH_ALL)
    if match not in (MATCH_ALL, MATCH_ANY):
        if number:
            problems.add(number, None, gettext("match must be “all” or “any”."))
        else:
            problems.messages.append(gettext("Match must be “all” or “any”."))
        return None
    return match


def rules_clean(rules, *, purpose: str = "marketing") -> dict:
    """Check and normalise a segment's rules (numbers as numbers, amounts as strings, codes that exist).

    Raise SegmentInvalid with fields={"rules": [...]}, each message naming the condition and its number.
    """
    problems = _Problems()
    if not isinstance(rules, dict) or not isinstance(rules.get("conditions"), list):
        raise SegmentInvalid(fields={"rules": [gettext("The rules must have a match and a list of conditions.")]})
    if not rules["conditions"]:
        raise SegmentInvalid(fields={"rules": [gettext("Give at least one condition.")]})
    match = _clean_match(rules, "", problems)
    raw_conditions = rules["conditions"]
    total = sum(len(item["conditions"]) if isinstance(item, dict) and isinstance(item.get("conditions"), list)
                else 1 for item in raw_conditions)
    if total > MAX_CONDITIONS:
        raise SegmentInvalid(fields={"rules": [gettext("At most %(count)d conditions.") % {"count": MAX_CONDITIONS}]})
    conditions = []
    for index, raw in enumerate(raw_conditions, start=1):
        number = str(index)
        if isinstance(raw, dict) and ("conditions" in raw or "match" in raw) and "field" not in raw:
            group = _clean_group(raw, number, problems)
            if group is not None:
                conditions.append(group)
            continue
        condition = _clean_condition(raw, number, problems)
        if condition is not None:
            conditions.append(condition)
    if not problems.messages and purpose == "marketing":
        consent = {"field": "marketing_consent", "value": True}
        if match != MATCH_ALL or consent not in conditions:
            problems.messages.append(gettext(
                "Consent is always required for marketing: the segment must match all of its conditions and one of "
                "them must be “marketing consent: yes”."))
    if problems.messages:
        raise SegmentInvalid(fields={"rules": problems.messages})
    return {"match": match, "conditions": conditions}


def _clean_group(raw: dict, number: str, problems: _Problems) -> dict | None:
    unknown = sorted(str(key)[:40] for key in raw if key not in ("match", "conditions"))
    if unknown:
        problems.add(number, None, gettext("unknown settings %(names)s.") % {"names": _list(unknown)})
        return None
    match = _clean_match(raw, number, problems)
    items = raw.get("conditions")
    if not isinstance(items, list) or not items:
        problems.add(number, None, gettext("a group needs a list of conditions."))
        return None
    conditions = []
    for index, item in enumerate(items, start=1):
        inner = f"{number}.{index}"
        if isinstance(item, dict) and ("conditions" in item or "match" in item) and "field" not in item:
            problems.add(inner, None, gettext("groups can be nested one level only."))
            continue
        condition = _clean_condition(item, inner, problems)
        if condition is not None:
            conditions.append(condition)
    if match is None or len(conditions) != len(items):
        return None
    return {"match": match, "conditions": conditions}


# --- querying ------------------------------------------------------------------------------------------------------


def _context(today: date | None) -> Context:
    return Context(today=today or timezone.localdate())


def _combine(match: str, parts: list[Q]) -> Q:
    combined = Q()
    for part in parts:
        combined = (combined & part) if match == MATCH_ALL else (combined | part)
    return combined


def _compile(rules: dict, ctx: Context) -> Q:
    parts = []
    for item in rules["conditions"]:
        if "field" in item:
            parts.append(CONDITIONS[item["field"]].compile(item, ctx))
        else:
            parts.append(_combine(item["match"], [CONDITIONS[inner["field"]].compile(inner, ctx)
                                                  for inner in item["conditions"]]))
    return _combine(rules["match"], parts)


def rules_queryset(rules: dict, *, today: date | None = None) -> QuerySet:
    """The active members the rules match, as one query (rules as rules_clean returns them)."""
    return Member.objects.filter(status=Member.Status.ACTIVE).filter(_compile(rules, _context(today))).order_by()


def rules_count(rules: dict, *, today: date | None = None) -> int:
    """How many active members the rules match: one COUNT over the query of rules_queryset."""
    return rules_queryset(rules, today=today).count()


def _sentence(item: dict) -> str:
    condition = CONDITIONS.get(item.get("field"))
    if condition is None:
        return str(item.get("field"))
    try:
        return condition.describe(item)
    except (KeyError, TypeError, ValueError):
        return str(condition.label)


def rules_describe(rules: dict) -> list[str]:
    """Each condition of the rules as a sentence, for pages and exports (a group as one sentence)."""
    sentences = []
    for item in (rules or {}).get("conditions") or []:
        if "field" in item:
            sentences.append(_sentence(item))
            continue
        inner = gettext("; ").join(_sentence(one) for one in item.get("conditions") or [])
        if item.get("match") == MATCH_ANY:
            sentences.append(gettext("Any of: %(conditions)s") % {"conditions": inner})
        else:
            sentences.append(gettext("All of: %(conditions)s") % {"conditions": inner})
    return sentences

