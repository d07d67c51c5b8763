"""Reads of targeted campaigns shared by the admin, the desk and the Excel results: the results against the
control group, and a store's call list.

campaign_results counts in SQL (one statement per call, grouped by group and by store or by the purchases'
format) and only the statistics are worked out here, from those sums:

- Results window: purchases from local midnight of the first day, for result_days days, at any store. A
  member's sales there are the net amounts (amount - returned_amount) of their purchases; a buyer is a member
  whose net sales there are above zero.
- Conversion p = buyers / members of the group; uplift in conversion = p_t - p_c, with the 95% interval
  (two-proportion normal approximation, unpooled):
  (p_t - p_c) ± 1.96 x sqrt(p_t(1 - p_t)/n_t + p_c(1 - p_c)/n_c).
- Sales per member m = S / n over every member of the group (those who bought nothing count as 0); uplift =
  m_t - m_c with Welch's standard error from the sample variances s² = (Q - S²/n) / (n - 1), where S is the sum
  and Q the sum of squares of the members' sales: (m_t - m_c) ± 1.96 x sqrt(s_t²/n_t + s_c²/n_c). An interval
  needs at least one member (conversion) or two (sales) in each group; otherwise it is None.
- Cost: the discounts of the campaign's coupons redeemed (and not given back) plus the points given, valued at
  the points policy's cash rate. Per format, the rows count coupons redeemed at that format's stores and their
  discounts; points belong to no format and appear only in the other rows.

Per store, the rows follow the member's registering store (CampaignMember.store); per format, both groups'
sizes are the whole groups (any member could buy in any format) and buyers and sales are those of the format.
"""

import math
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.models import CampaignMember, CouponRedemption, TargetedCampaign
from core.sql import quote
from membership.models import PointsPolicy, Purchase
from membership.services.points import cash_value_of
from stores.models import Format, Store

__all__ = ["Z_95", "call_list", "campaign_results", "results_window"]

Z_95 = 1.96
CENT = Decimal("0.01")
TARGET, CONTROL = CampaignMember.Group.TARGET.value, CampaignMember.Group.CONTROL.value


def results_window(campaign: TargetedCampaign) -> tuple[datetime, datetime]:
    """[start, end) of the purchases that count: local midnight of the first day, for result_days days."""
    start = timezone.make_aware(datetime.combine(campaign.starts_on, time.min))
    return start, start + timedelta(days=campaign.result_days)


def _money(value) -> Decimal:
    # SQLite sums decimals as floats: back to cents.
    return Decimal(str(value or 0)).quantize(CENT)


def _tables() -> dict:
    return {"cm": quote(CampaignMember._meta.db_table), "p": quote(Purchase._meta.db_table),
            "r": quote(CouponRedemption._meta.db_table), "s": quote(Store._meta.db_table),
            "grp": quote("group")}


def _members_sql(store_ids: Iterable[int] | None) -> tuple[str, list]:
    names = _tables()
    sql = f"SELECT member_id, {names['grp']} AS grp, store_id, reached_at, coupon_id, points_given " \
          f"FROM {names['cm']} WHERE campaign_id = %s"  # noqa: S608 (table names from the models)
    if store_ids is None:
        return sql, []
    ids = sorted(int(pk) for pk in store_ids)
    if not ids:
        return sql + " AND 1 = 0", []
    return sql + f" AND store_id IN ({', '.join(['%s'] * len(ids))})", ids


def _rows(sql: str, params: list) -> list[tuple]:
    params = [connection.ops.adapt_datetimefield_value(value) if isinstance(value, datetime) else value
              for value in params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _by_member(campaign: TargetedCampaign, store_ids, by: str | None) -> dict:
    """{key: {group: [members, reached, redeemed, buyers, sales, sum of squares, points]}} per store or overall."""
    names = _tables()
    members_sql, store_params = _members_sql(store_ids)
    start, end = results_window(campaign)
    key, group_by = ("m.store_id", "m.store_id, m.grp") if by == "store" else ("0", "m.grp")
    sql = f"""
        WITH m AS ({members_sql}),
        s AS (
            SELECT p.member_id, SUM(p.amount - p.returned_amount) AS sales
            FROM {names['p']} p JOIN m ON m.member_id = p.member_id
            WHERE p.occurred_at >= %s AND p.occurred_at < %s
            GROUP BY p.member_id
        ),
        r AS (
            SELECT DISTINCT coupon_id FROM {names['r']}
            WHERE status = %s AND coupon_id IN (SELECT coupon_id FROM m WHERE coupon_id IS NOT NULL)
        )
        SELECT {key} AS k, m.grp, COUNT(*), COUNT(m.reached_at), COUNT(r.coupon_id),
               SUM(CASE WHEN s.sales > 0 THEN 1 ELSE 0 END), SUM(s.sales), SUM(s.sales * s.sales),
               SUM(m.points_given)
        FROM m LEFT JOIN s ON s.member_id = m.member_id LEFT JOIN r ON r.coupon_id = m.coupon_id
        GROUP BY {group_by}
    """  # noqa: S608 (table names from the models, values as parameters)
    params = [campaign.pk, *store_params, start, end, CouponRedemption.Status.REDEEMED.value]
    found: dict = {}
    for k, group, members, reached, redeemed, buyers, sales, squares, points in _rows(sql, params):
        found.setdefault(k, {})[group] = [members, reached, redeemed, buyers or 0, sales, squares, points or 0]
    return found


def _discounts(campaign: TargetedCampaign, store_ids, by: str | None) -> dict:
    """{key: discounts of the campaign's coupons redeemed} per member's store, per redeeming format or overall."""
    names = _tables()
    members_sql, store_params = _members_sql(store_ids)
    if by == "format":
        key, join, group_by = "s.format_id", f"JOIN {names['s']} s ON s.id = r.store_id", "GROUP BY s.format_id"
    elif by == "store":
        key, join, group_by = "m.store_id", "", "GROUP BY m.store_id"
    else:
        key, join, group_by = "0", "", ""
    sql = f"""
        WITH m AS ({members_sql})
        SELECT {key}, COUNT(DISTINCT r.coupon_id), SUM(r.discount)
        FROM {names['r']} r JOIN m ON m.coupon_id = r.coupon_id {join}
        WHERE r.status = %s {group_by}
    """  # noqa: S608 (table names from the models, values as parameters)
    params = [campaign.pk, *store_params, CouponRedemption.Status.REDEEMED.value]
    return {k: (count, _money(total)) for k, count, total in _rows(sql, params)}


def _by_format(campaign: TargetedCampaign, store_ids) -> tuple[dict, dict]:
    """Group sizes, and {format id: {group: [buyers, sales, sum of squares]}} from per-member sums per format."""
    names = _tables()
    members_sql, store_params = _members_sql(store_ids)
    start, end = results_window(campaign)
    sql = f"""
        WITH m AS ({members_sql}),
        s AS (
            SELECT p.member_id, p.format_id, m.grp, SUM(p.amount - p.returned_amount) AS sales
            FROM {names['p']} p JOIN m ON m.member_id = p.member_id
            WHERE p.occurred_at >= %s AND p.occurred_at < %s
            GROUP BY p.member_id, p.format_id, m.grp
        )
        SELECT format_id, grp, SUM(CASE WHEN sales > 0 THEN 1 ELSE 0 END), SUM(sales), SUM(sales * sales)
        FROM s GROUP BY format_id, grp
    """  # noqa: S608 (table names from the models, values as parameters)
    params = [campaign.pk, *store_params, start, end]
    found: dict = {}
    for format_id, group, buyers, sales, squares in _rows(sql, params):
        found.setdefault(format_id, {})[group] = [buyers or 0, sales, squares]
    sizes_sql = f"WITH m AS ({members_sql}) SELECT grp, COUNT(*), COUNT(reached_at) FROM m GROUP BY grp"  # noqa: S608
    sizes = {group: (count, reached) for group, count, reached in _rows(sizes_sql, [campaign.pk, *store_params])}
    return sizes, found


def _proportion_uplift(b_t: int, n_t: int, b_c: int, n_c: int) -> tuple:
    if not n_t or not n_c:
        return None, None, None
    p_t, p_c = b_t / n_t, b_c / n_c
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    diff = p_t - p_c
    return diff, diff - Z_95 * se, diff + Z_95 * se


def _variance(total: float, squares: float, n: int) -> float:
    return max((squares - total * total / n) / (n - 1), 0.0)


def _mean_uplift(s_t, q_t, n_t: int, s_c, q_c, n_c: int) -> tuple:
    if not n_t or not n_c:
        return None, None, None
    diff = float(s_t) / n_t - float(s_c) / n_c
    if n_t < 2 or n_c < 2:
        return _money(diff), None, None
    se = math.sqrt(_variance(float(s_t), float(q_t), n_t) / n_t + _variance(float(s_c), float(q_c), n_c) / n_c)
    return _money(diff), _money(diff - Z_95 * se), _money(diff + Z_95 * se)


def _row(*, n_t: int, n_c: int, reached: int, redeemed: int, b_t: int, b_c: int, s_t, s_c, q_t, q_c,
         cost: Decimal) -> dict:
    s_t, s_c = _money(s_t), _money(s_c)
    q_t, q_c = float(q_t or 0), float(q_c or 0)
    uplift, low, high = _proportion_uplift(b_t, n_t, b_c, n_c)
    sales_uplift, sales_low, sales_high = _mean_uplift(s_t, q_t, n_t, s_c, q_c, n_c)
    return {
        "targeted": n_t, "control": n_c, "reached": reached, "coupons_redeemed": redeemed,
        "buyers_target": b_t, "buyers_control": b_c, "sales_target": s_t, "sales_control": s_c,
        "conversion_target": b_t / n_t if n_t else None, "conversion_control": b_c / n_c if n_c else None,
        "sales_per_member_target": _money(s_t / n_t) if n_t else None,
        "sales_per_member_control": _money(s_c / n_c) if n_c else None,
        "uplift_conversion": uplift, "uplift_conversion_low": low, "uplift_conversion_high": high,
        "uplift_sales_per_member": sales_uplift, "uplift_sales_per_member_low": sales_low,
        "uplift_sales_per_member_high": sales_high, "cost": cost.quantize(CENT),
    }


def campaign_results(*, campaign: TargetedCampaign, by: str | None = None,
                     store_ids: Iterable[int] | None = None) -> list[dict]:
    """The campaign's results against its control group: one row overall (by=None), per store (by="store", the
    members' registering stores) or per format (by="format", where they bought). `store_ids` keeps only the
    members of those stores (a store manager's view). Each row holds key, label, targeted, control, reached,
    coupons_redeemed, buyers and sales per group, conversion and sales per member per group, the uplifts with
    their 95% intervals (…_low, …_high) and the cost; see the module's text for the formulas."""
    if by not in (None, "store", "format"):
        raise ValueError(f"results by {by!r}")
    policy = PointsPolicy.current()
    discounts = _discounts(campaign, store_ids, by)
    if by == "format":
        sizes, found = _by_format(campaign, store_ids)
        n_t, reached = sizes.get(TARGET, (0, 0))
        n_c = sizes.get(CONTROL, (0, 0))[0]
        formats = {item.pk: item for item in Format.objects.filter(pk__in=set(found) | set(discounts))}
        rows = []
        for format_id in sorted(formats, key=lambda pk: formats[pk].code):
            groups = found.get(format_id, {})
            t, c = groups.get(TARGET, [0, 0, 0]), groups.get(CONTROL, [0, 0, 0])
            redeemed, discount = discounts.get(format_id, (0, Decimal("0.00")))
            row = _row(n_t=n_t, n_c=n_c, reached=reached, redeemed=redeemed, b_t=t[0], b_c=c[0], s_t=t[1], s_c=c[1],
                       q_t=t[2], q_c=c[2], cost=discount)
            rows.append({"key": formats[format_id].code, "label": formats[format_id].name,
                         "format_id": format_id, **row})
        return rows
    found = _by_member(campaign, store_ids, by)
    if by == "store":
        store_pks = {k for k in found if k is not None}
        stores = {item.pk: item for item in Store.objects.filter(pk__in=store_pks)}
        keys = sorted(found, key=lambda k: (k is None, stores[k].code if k in stores else ""))
    else:
        keys = [0]
    rows = []
    for k in keys:
        groups = found.get(k, {})
        t = groups.get(TARGET, [0, 0, 0, 0, 0, 0, 0])
        c = groups.get(CONTROL, [0, 0, 0, 0, 0, 0, 0])
        _count, discount = discounts.get(k, (0, Decimal("0.00")))
        points = t[6] + c[6]
        cost = discount + (cash_value_of(int(points), policy) if points else Decimal("0.00"))
        row = _row(n_t=t[0], n_c=c[0], reached=t[1], redeemed=t[2], b_t=t[3], b_c=c[3], s_t=t[4], s_c=c[4],
                   q_t=t[5], q_c=c[5], cost=cost)
        if by == "store":
            store = stores.get(k)
            head = {"key": store.code if store else "", "store_id": k,
                    "label": f"{store.code} {store.name}" if store else gettext("no registering store")}
        else:
            head = {"key": "", "label": gettext("All members")}
        rows.append({**head, **row})
    return rows


def call_list(*, campaign: TargetedCampaign, store) -> QuerySet:
    """The targeted members a store's clerks call for a campaign, those not called yet first."""
    return (CampaignMember.objects.filter(campaign=campaign, store=store, group=CampaignMember.Group.TARGET,
                                          channel=CampaignMember.Channel.CALL)
            .select_related("member").order_by("call_outcome", "member__name", "pk"))
