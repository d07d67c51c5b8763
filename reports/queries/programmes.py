"""The "programmes" report: what the group's programmes gave and cost in a period. Coupons (issued, redeemed, their
discount), the targeted campaigns that ran (each one's results against its control group), brand-card discounts,
pickup vouchers handed out, and the POS reconciliation's exceptions. Definitions in docs/metrics.md
("programmes"); each section that has nothing yet says so in the report's notes instead of showing zeros as facts.

Every number is one aggregate in the database over the period's rows (coupons by issue time, redemptions by
redemption time, brand discounts and reconciliation days by business date, voucher ledger rows by time). What
happened after the period's end is not counted, except that a targeted campaign's results are those of its own
results window (campaigns/queries_targeting.py), which may run past the period.
"""

from datetime import datetime
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from campaigns.models import Coupon, CouponRedemption, CouponTemplate, TargetedCampaign
from campaigns.queries_targeting import campaign_results
from cards.models import BrandDiscount, VoucherLedgerEntry
from cards.models.brands import Brand
from cards.models.vouchers import VoucherProduct
from core.numbers import money_total
from reports.frame import Chart, Column, Figure, Report, ReportParams, Series, Table, register, share
from settlement.models import ReconException
from stores.models import Format

__all__ = ["CAMPAIGNS_LISTED", "build"]

ZERO = Decimal("0.00")
# The campaigns table lists at most this many (newest first); the count covers them all.
CAMPAIGNS_LISTED = 30


# --- coupons --------------------------------------------------------------------------------------------------

def _coupons_issued_q(params: ReportParams, start: datetime, end: datetime) -> Q:
    """Coupons issued in the period; in a store scope those issued at its stores, or issued centrally (no store)
    to members registered there."""
    q = Q(issued_at__gte=start, issued_at__lt=end)
    if params.store_ids is not None:
        q &= Q(issued_store__in=params.store_ids) | Q(
            issued_store__isnull=True, member__registered_store__in=params.store_ids)
    return q


def _redeemed_q(params: ReportParams, start: datetime, end: datetime) -> Q:
    """Redemptions at the scope's tills in the period that were not given back by the period's end."""
    return (Q(created_at__gte=start, created_at__lt=end) & params.store_q("store")
            & (Q(released_at__isnull=True) | Q(released_at__gte=end)))


def _coupons(params: ReportParams, start: datetime, end: datetime) -> dict:
    issued = dict(Coupon.objects.filter(_coupons_issued_q(params, start, end)).order_by()
                  .values("template_id").annotate(n=Count("id")).values_list("template_id", "n"))
    redeemed = {row["template_id"]: row for row in
                CouponRedemption.objects.filter(_redeemed_q(params, start, end)).order_by()
                .values("template_id").annotate(n=Count("id"), discount=Sum("discount"))}
    given_back = CouponRedemption.objects.filter(
        Q(released_at__gte=start, released_at__lt=end) & params.store_q("store")).count()
    templates = {pk: (code, name) for pk, code, name in CouponTemplate.objects.filter(
        pk__in=set(issued) | set(redeemed)).values_list("pk", "code", "name")}
    rows = []
    for pk in sorted(templates, key=lambda key: templates[key][0]):
        found = redeemed.get(pk, {})
        rows.append((templates[pk][0], templates[pk][1], issued.get(pk, 0), found.get("n", 0),
                     money_total(found.get("discount"))))
    return {
        "issued": sum(issued.values()),
        "redeemed": sum(row["n"] for row in redeemed.values()),
        "given_back": given_back,
        "discount": money_total(sum((money_total(row["discount"]) for row in redeemed.values()), ZERO)),
        "rows": rows,
    }


# --- targeted campaigns ---------------------------------------------------------------------------------------

def _campaigns(params: ReportParams) -> dict:
    """Targeted campaigns that started (running or ended) and whose days overlap the period, with their
    results against the control group (the members of the scope's stores only)."""
    started = Q(status__in=(TargetedCampaign.Status.RUNNING, TargetedCampaign.Status.ENDED)) | Q(
        started_at__isnull=False)
    running = TargetedCampaign.objects.filter(started, starts_on__lte=params.end, ends_on__gte=params.start)
    count = running.count()
    rows = []
    for campaign in running.order_by("-starts_on", "-pk")[:CAMPAIGNS_LISTED]:
        result = campaign_results(campaign=campaign, store_ids=params.store_ids)[0]
        conversion_target = share(result["buyers_target"], result["targeted"])
        conversion_control = share(result["buyers_control"], result["control"])
        uplift = (conversion_target - conversion_control
                  if conversion_target is not None and conversion_control is not None else None)
        rows.append((campaign.code, campaign.name, campaign.starts_on, campaign.ends_on, result["targeted"],
                     result["control"], result["reached"], result["coupons_redeemed"], conversion_target,
                     conversion_control, uplift, result["sales_target"], result["cost"]))
    return {"count": count, "rows": rows}


# --- brand cards, vouchers, reconciliation --------------------------------------------------------------------

def _brands(params: ReportParams) -> dict:
    found = list(BrandDiscount.objects.filter(Q(business_date__gte=params.start, business_date__lte=params.end)
                                              & params.store_q("store")).order_by()
                 .values("brand_id").annotate(eligible=Sum("eligible_amount"), discount=Sum("discount"),
                                              funded=Sum("brand_amount"), entries=Count("id")))
    names = dict(Brand.objects.filter(pk__in=[row["brand_id"] for row in found]).values_list("pk", "name"))
    rows = sorted(((names.get(row["brand_id"], ""), money_total(row["eligible"]), money_total(row["discount"]),
                    money_total(row["funded"]), row["entries"]) for row in found), key=lambda row: row[0])
    return {
        "discount": money_total(sum((row[2] for row in rows), ZERO)),
        "funded": money_total(sum((row[3] for row in rows), ZERO)),
        "eligible": money_total(sum((row[1] for row in rows), ZERO)),
        "entries": sum(row[4] for row in rows),
        "rows": rows,
    }


def _vouchers(params: ReportParams, start: datetime, end: datetime) -> dict:
    kinds = (VoucherLedgerEntry.Kind.ISSUE, VoucherLedgerEntry.Kind.REDEEM)
    found = list(VoucherLedgerEntry.objects.filter(
        Q(kind__in=kinds, created_at__gte=start, created_at__lt=end) & params.store_q("store")).order_by()
        .values("voucher__product_id").annotate(
            sold=Count("id", filter=Q(kind=VoucherLedgerEntry.Kind.ISSUE)),
            redemptions=Count("id", filter=Q(kind=VoucherLedgerEntry.Kind.REDEEM)),
            units=Sum("quantity", filter=Q(kind=VoucherLedgerEntry.Kind.REDEEM))))
    products = {pk: (code, name, unit) for pk, code, name, unit in VoucherProduct.objects.filter(
        pk__in=[row["voucher__product_id"] for row in found]).values_list("pk", "code", "name", "unit")}
    rows = []
    for row in found:
        code, name, unit = products.get(row["voucher__product_id"], ("", "", ""))
        rows.append((code, name, unit, row["sold"], row["redemptions"], -(row["units"] or 0)))
    rows.sort(key=lambda item: item[0])
    return {
        "sold": sum(row[3] for row in rows),
        "redemptions": sum(row[4] for row in rows),
        "units": sum(row[5] for row in rows),
        "rows": rows,
    }


def _recon(params: ReportParams, end: datetime) -> dict:
    open_q = Q(resolved_at__isnull=True) | Q(resolved_at__gte=end)
    found = {row["kind"]: row for row in ReconException.objects.filter(
        Q(day__business_date__gte=params.start, day__business_date__lte=params.end) & params.store_q("day__store"))
        .order_by().values("kind").annotate(
            total=Count("id"), open=Count("id", filter=open_q),
            difference=Sum(F("pos_amount") - F("ledger_amount"), filter=open_q))}
    rows = [(str(label), found[kind]["total"], found[kind]["open"], money_total(found[kind]["difference"]))
            for kind, label in ReconException.Kind.choices if kind in found]
    return {"total": sum(row[1] for row in rows), "open": sum(row[2] for row in rows), "rows": rows}


def _by_format(params: ReportParams, start: datetime, end: datetime) -> list[tuple]:
    """Per format of the redeeming store: coupons redeemed and their discount, brand-card discounts."""
    coupons = {row["store__format_id"]: row for row in CouponRedemption.objects.filter(
        _redeemed_q(params, start, end)).order_by().values("store__format_id").annotate(
            n=Count("id"), discount=Sum("discount"))}
    brands = dict(BrandDiscount.objects.filter(
        Q(business_date__gte=params.start, business_date__lte=params.end) & params.store_q("store")).order_by()
        .values("store__format_id").annotate(discount=Sum("discount"))
        .values_list("store__format_id", "discount"))
    formats = Format.objects.filter(pk__in=set(coupons) | set(brands)).order_by("code")
    return [(item.name, coupons.get(item.pk, {}).get("n", 0), money_total(coupons.get(item.pk, {}).get("discount")),
             money_total(brands.get(item.pk))) for item in formats]


def _redemptions_detail(params: ReportParams, start: datetime, end: datetime):
    """Every coupon redemption of the period at the scope's stores, oldest first, streamed."""
    rows = (CouponRedemption.objects.filter(Q(created_at__gte=start, created_at__lt=end) & params.store_q("store"))
            .order_by("created_at", "pk")
            .values_list("created_at", "store__code", "store__format__name", "template__code", "template__name",
                         "receipt_no", "basket_amount", "discount", "released_at"))
    for created_at, store, format_name, code, name, receipt_no, basket, discount, released_at in \
            rows.iterator(chunk_size=5000):
        given_back = released_at is not None and released_at < end
        yield (created_at, store, format_name, code, name, receipt_no, money_total(basket), money_total(discount),
               gettext("yes") if given_back else "")


@register("programmes", _("Campaigns and programmes"),
          _("Coupons, targeted campaigns, brand-card discounts, pickup vouchers and reconciliation exceptions."))
def build(params: ReportParams) -> Report:
    start, end = params.moments()
    coupons = _coupons(params, start, end)
    campaigns = _campaigns(params)
    brands = _brands(params)
    vouchers = _vouchers(params, start, end)
    recon = _recon(params, end)
    by_format = _by_format(params, start, end)

    report = Report(kind="programmes", title=gettext("Campaigns and programmes"), params=params)
    report.figures = [
        Figure("coupons_issued", gettext("Coupons issued"), coupons["issued"], "count"),
        Figure("coupons_redeemed", gettext("Coupons redeemed"), coupons["redeemed"], "count"),
        Figure("coupons_given_back", gettext("Coupon redemptions given back"), coupons["given_back"], "count"),
        Figure("coupon_discount", gettext("Coupon discounts"), coupons["discount"], "money"),
        Figure("targeted_campaigns", gettext("Targeted campaigns running"), campaigns["count"], "count"),
        Figure("brand_eligible_sales", gettext("Brand products paid by brand card"), brands["eligible"], "money"),
        Figure("brand_discount", gettext("Brand-card discounts"), brands["discount"], "money"),
        Figure("brand_funded", gettext("Brand-card discounts funded by brands"), brands["funded"], "money"),
        Figure("vouchers_sold", gettext("Pickup vouchers sold"), vouchers["sold"], "count"),
        Figure("vouchers_redeemed", gettext("Pickup voucher units handed out"), vouchers["units"], "count"),
        Figure("voucher_redemptions", gettext("Pickup voucher redemptions"), vouchers["redemptions"], "count"),
        Figure("recon_exceptions_total", gettext("Reconciliation exceptions"), recon["total"], "count"),
        Figure("recon_exceptions_open", gettext("Reconciliation exceptions open at the period's end"),
               recon["open"], "count"),
    ]
    report.tables = [
        Table("coupons_by_template", gettext("Coupons by template"), [
            Column("code", gettext("Template code")), Column("name", gettext("Template")),
            Column("issued", gettext("Issued"), "count"), Column("redeemed", gettext("Redeemed"), "count"),
            Column("discount", gettext("Discount"), "money"),
        ], coupons["rows"]),
        Table("campaigns", gettext("Targeted campaigns"), [
            Column("code", gettext("Campaign code")), Column("name", gettext("Campaign")),
            Column("starts_on", gettext("First day"), "date"), Column("ends_on", gettext("Last day"), "date"),
            Column("targeted", gettext("Targeted"), "count"), Column("control", gettext("Control group"), "count"),
            Column("reached", gettext("Reached"), "count"),
            Column("coupons_redeemed", gettext("Coupons redeemed"), "count"),
            Column("conversion_target", gettext("Conversion (targeted)"), "percent"),
            Column("conversion_control", gettext("Conversion (control)"), "percent"),
            Column("uplift", gettext("Conversion uplift"), "percent"),
            Column("sales_target", gettext("Sales of the targeted"), "money"),
            Column("cost", gettext("Cost"), "money"),
        ], campaigns["rows"]),
        Table("brands", gettext("Brand-card discounts by brand"), [
            Column("brand", gettext("Brand")), Column("eligible", gettext("Brand products paid"), "money"),
            Column("discount", gettext("Discount"), "money"), Column("funded", gettext("Funded by the brand"), "money"),
            Column("entries", gettext("Card payments"), "count"),
        ], brands["rows"]),
        Table("vouchers", gettext("Pickup vouchers by product"), [
            Column("code", gettext("Product code")), Column("name", gettext("Product")),
            Column("unit", gettext("Unit")), Column("sold", gettext("Vouchers sold"), "count"),
            Column("redemptions", gettext("Redemptions"), "count"),
            Column("units", gettext("Units handed out"), "count"),
        ], vouchers["rows"]),
        Table("recon_exceptions", gettext("Reconciliation exceptions by kind"), [
            Column("kind", gettext("Kind")), Column("total", gettext("Exceptions"), "count"),
            Column("open", gettext("Open at the period's end"), "count"),
            Column("difference", gettext("Open difference (POS - recorded)"), "money"),
        ], recon["rows"]),
        Table("by_format", gettext("Discounts by format"), [
            Column("format", gettext("Format")), Column("coupons_redeemed", gettext("Coupons redeemed"), "count"),
            Column("coupon_discount", gettext("Coupon discounts"), "money"),
            Column("brand_discount", gettext("Brand-card discounts"), "money"),
        ], by_format),
    ]
    report.charts = [Chart(
        "discounts_by_format", gettext("Discounts by format"), "column", [row[0] for row in by_format],
        [Series(gettext("Coupon discounts"), [row[2] for row in by_format]),
         Series(gettext("Brand-card discounts"), [row[3] for row in by_format])], "money",
    )]
    report.detail = Table("coupon_redemptions", gettext("Coupon redemptions"), [
        Column("redeemed_at", gettext("Redeemed at"), "date"), Column("store", gettext("Store")),
        Column("format", gettext("Format")), Column("template_code", gettext("Template code")),
        Column("template", gettext("Template")), Column("receipt_no", gettext("Receipt number")),
        Column("basket", gettext("Basket amount"), "money"), Column("discount", gettext("Discount"), "money"),
        Column("given_back", gettext("Given back by the period's end")),
    ], _redemptions_detail(params, start, end))

    if not (coupons["issued"] or coupons["redeemed"] or coupons["given_back"]):
        report.notes.append(gettext("Coupons: none issued or redeemed in this period."))
    if not campaigns["count"]:
        report.notes.append(gettext("Targeted campaigns: none ran in this period."))
    elif campaigns["count"] > CAMPAIGNS_LISTED:
        report.notes.append(gettext("Targeted campaigns: the newest {shown} of {count} are listed.").format(
            shown=CAMPAIGNS_LISTED, count=campaigns["count"]))
    if not brands["entries"]:
        report.notes.append(gettext("Brand cards: no brand-card discount in this period."))
    if not (vouchers["sold"] or vouchers["redemptions"]):
        report.notes.append(gettext("Pickup vouchers: none sold or handed out in this period."))
    if not recon["total"]:
        report.notes.append(gettext("Reconciliation: no exceptions for the days of this period."))
    return report

