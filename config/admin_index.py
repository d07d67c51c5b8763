"""The admin home: every screen grouped by the work it serves, and for store staff their stores' day.

Django's index lists the apps as they are installed (技术 apps first). `install()` gives the default site an
index that shows the same entries grouped by the work (`GROUPS`): members, points and tiers, prepaid cards, brand
cards and vouchers, approvals, stores and staff, the webhooks (integrations), and the technical screens under
"System", which only superusers see there. Each model and each page of its own (reports) is named in `GROUPS`; a
model nobody placed falls into the group of its app (`APP_GROUPS`), never off the page, and
tests/core/test_admin_index.py fails until it is placed. The side navigation of the other pages shows the same
groups; the app pages (/admin/<app>/) keep Django's app list.

A store manager's home (staff of store scope) is titled with their stores and shows what is cheap to count there
(members in their scope, purchases and card sales this month) and their approval requests still pending: those
they may decide and those they raised.
"""

from django.contrib import admin
from django.urls import resolve, reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals.models import ApprovalRequest
from approvals.queries import can_decide
from cards.admin.vouchers import may_view_liability, may_view_settlement
from cards.models import SaleOrder
from membership.models import Purchase
from membership.queries import members_in_scope_count
from reports.queries.runs import user_may_view_reports
from stores.queries import stores_visible_to, user_store_ids

SYSTEM = "system"

# (key, title, entries): an entry is a model ("app_label.ModelName") or a page of the site ("page:<url name>").
GROUPS: list[tuple[str, object, tuple[str, ...]]] = [
    ("members", _("Members"), (
        "membership.Member", "membership.MemberCard", "membership.MemberIdentity", "membership.MergeCandidate",
        "membership.Tag", "membership.Partner", "membership.Purchase", "membership.PurchaseReturn",
        "membership.PurchaseClaim", "core.PersonalDataAccess",
    )),
    ("points", _("Points and tiers"), (
        "membership.PointsEntry", "page:membership_member_points_expiring", "membership.PointsHold",
        "membership.PointsDebtEntry", "membership.Tier", "membership.TierChange", "membership.TierSubscription",
        "membership.Benefit", "membership.BenefitUse",
        "membership.Gift", "membership.GiftStock", "membership.GiftRedemption", "membership.PointsPolicy",
        "membership.EarnRule",
    )),
    ("cards", _("Prepaid cards"), (
        "cards.Card", "cards.SaleOrder", "cards.CardTransaction", "cards.CardLedgerEntry", "cards.CardReturn",
        "cards.CardEvent", "cards.CardTransfer", "page:cards_stock_overview", "cards.ProductionBatch",
        "cards.CardProduct", "cards.CardRules", "page:cards_liability",
    )),
    ("brands", _("Brand cards and vouchers"), (
        "cards.Brand", "cards.BrandProgramme", "cards.BrandDiscount", "page:cards_brand_billing", "cards.Voucher",
        "cards.VoucherBatch", "cards.VoucherLedgerEntry", "cards.VoucherProduct", "cards.Supplier",
        "page:cards_voucher_liability", "page:cards_voucher_settlement",
    )),
    ("campaigns", _("Marketing"), (
        "campaigns.CouponTemplate", "campaigns.Coupon", "campaigns.CouponRedemption", "campaigns.CouponRule",
        "campaigns.PointsPromotion", "campaigns.MemberDay", "campaigns.Segment", "page:campaigns_segment_scenarios",
        "campaigns.SegmentSnapshot",
        "campaigns.TargetedCampaign", "campaigns.CampaignMember", "campaigns.CallAttempt",
    )),
    ("settlement", _("Settlement"), (
        "settlement.SettlementPeriod", "settlement.Statement", "page:settlement_clearing_matrix",
        "settlement.ClearingLine", "settlement.ClearingRun", "settlement.ClearingRule",
        "settlement.FinanceExportFile", "settlement.FinanceExportLayout", "page:settlement_liability",
    )),
    ("reconciliation", _("Reconciliation"), (
        "settlement.PosFile", "settlement.ReconDay", "settlement.ReconException", "page:settlement_recon_report",
        "settlement.PosLine", "settlement.PosFileLayout",
    )),
    ("reports", _("Reports"), (
        "page:reports:dashboard", "page:reports:archive", "reports.ReportDefinition", "reports.ReportRun",
        "reports.ReportDownload",
    )),
    ("approvals", _("Approvals"), ("approvals.ApprovalRequest", "approvals.ApprovalPolicy")),
    ("stores", _("Stores and staff"), (
        "stores.Store", "stores.Terminal", "stores.Format", "stores.Region", "stores.LegalEntity",
        "auth.User", "stores.StaffProfile", "auth.Group",
    )),
    ("integrations", _("Integrations"), (
        "integrations.Subscription", "integrations.Event", "integrations.Delivery",
    )),
    (SYSTEM, _("System"), (
        "django_celery_beat.PeriodicTask", "django_celery_results.TaskResult", "django_celery_results.GroupResult",
        "django_celery_beat.CrontabSchedule", "django_celery_beat.IntervalSchedule",
        "django_celery_beat.ClockedSchedule", "django_celery_beat.SolarSchedule", "axes.AccessAttempt",
        "axes.AccessFailureLog", "axes.AccessLog",
    )),
]

# Where a model no entry of GROUPS names goes: the group of its app; any other app's is "System".
APP_GROUPS = {
    "membership": "members", "campaigns": "campaigns", "cards": "cards", "reports": "reports", "approvals": "approvals",
    "stores": "stores", "auth": "stores", "settlement": "settlement", "integrations": "integrations",
}


def _page_may_view(url_name: str, request) -> bool:
    """Who sees a page of GROUPS that is not in Django's app list (those pages check the same on opening)."""
    user = request.user
    if url_name == "membership_member_points_expiring":
        return user.has_perm("membership.view_member")
    if url_name == "campaigns_segment_scenarios":
        from campaigns.admin.segments import may_view_scenarios

        return may_view_scenarios(user)
    if url_name == "cards_stock_overview":
        return user.has_perm("cards.view_card")
    if url_name == "cards_voucher_liability":
        return may_view_liability(user)
    if url_name == "cards_voucher_settlement":
        return may_view_settlement(user)
    if url_name in ("reports:dashboard", "reports:archive"):
        return user_may_view_reports(user)
    return False


PAGE_TITLES = {
    "membership_member_points_expiring": _("Points expiring soon"),
    "campaigns_segment_scenarios": _("Scenario templates"),
    "cards_stock_overview": _("Card stock"),
    "cards_voucher_liability": _("Pickup voucher liability"),
    "cards_voucher_settlement": _("Pickup voucher supplier settlement"),
    # Pages of their own outside the admin (reports/urls.py), named with their namespace.
    "reports:dashboard": _("Dashboard"),
    "reports:archive": _("Report archive"),
}


def group_of(entry: str) -> str:
    """The key of the group an entry ("app_label.ModelName" or "page:<url name>") belongs to."""
    for key, _title, entries in GROUPS:
        if entry in entries:
            return key
    app_label = entry.split(".", 1)[0]
    return APP_GROUPS.get(app_label, SYSTEM)


def grouped_app_list(site: admin.AdminSite, request, app_list: list[dict] | None = None) -> list[dict]:
    """The entries of the site's app list for this user (`app_list` when already built), regrouped by the work, in
    the order of GROUPS."""
    entries: dict[str, dict] = {}
    for app in site.get_app_list(request) if app_list is None else app_list:
        for model in app["models"]:
            if "model" in model:
                entry = model["model"]._meta.label
            else:  # a page added by core.admin.admin_page_add, known by its URL's name
                entry = f"page:{resolve(model['admin_url']).url_name}"
            entries[entry] = model
    for _key, _title, group_entries in GROUPS:
        for entry in group_entries:
            if entry.startswith("page:") and entry not in entries:
                url_name = entry.removeprefix("page:")
                if url_name in PAGE_TITLES and _page_may_view(url_name, request):
                    entries[entry] = {
                        "name": PAGE_TITLES[url_name], "object_name": url_name.replace(":", "_"),
                        "perms": {"view": True},
                        "admin_url": reverse(url_name if ":" in url_name else f"{site.name}:{url_name}"),
                        "add_url": None, "view_only": True,
                    }
    order = {entry: index for index, entry in enumerate(e for _k, _t, group in GROUPS for e in group)}
    groups = []
    for key, title, _entries in GROUPS:
        if key == SYSTEM and not request.user.is_superuser:
            continue
        placed = sorted(((entry, model) for entry, model in entries.items() if group_of(entry) == key),
                        key=lambda pair: (order.get(pair[0], len(order)), str(pair[1]["name"])))
        if placed:
            groups.append({"key": key, "name": title, "app_label": key, "models": [model for _e, model in placed],
                           # The side navigation links a group's caption: to the group on the home.
                           "app_url": f"{reverse(f'{site.name}:index')}#group-{key}"})
    return groups


# --- a store manager's home ---------------------------------------------------------------------------------

PENDING_SHOWN = 10


def store_home(request) -> dict | None:
    """The title, counts and pending approval requests of a user of store scope; None for headquarters."""
    user = request.user
    store_ids = user_store_ids(user)
    if store_ids is None or not store_ids:
        return None
    stores = list(stores_visible_to(user).order_by("code"))
    names = [f"{store.code} {store.name}" for store in stores[:3]]
    if len(stores) > 3:
        names.append(ngettext("and %(count)d more store", "and %(count)d more stores", len(stores) - 3)
                     % {"count": len(stores) - 3})
    now = timezone.now()
    month_start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    counts = [
        (gettext("Members (registered here or bought here in the last 12 months)"),
         members_in_scope_count(store_ids, now=now), reverse("admin:membership_member_changelist")),
        (gettext("Purchases this month"),
         Purchase.objects.filter(store_id__in=store_ids, occurred_at__gte=month_start).count(),
         reverse("admin:membership_purchase_changelist")),
        (gettext("Card sales paid this month"),
         SaleOrder.objects.filter(store_id__in=store_ids, status=SaleOrder.Status.COMPLETED,
                                  created_at__gte=month_start).count(),
         reverse("admin:cards_saleorder_changelist")),
    ]
    pending = (ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
               .select_related("store", "requested_by", "policy__approver_permission__content_type")
               .order_by("-created_at", "-pk"))
    waiting = [approval for approval in pending.filter(store_id__in=store_ids).exclude(requested_by=user)[:50]
               if can_decide(approval_request=approval, user=user)][:PENDING_SHOWN]
    raised = list(pending.filter(requested_by=user)[:PENDING_SHOWN])
    return {
        "title": gettext("%(stores)s: home") % {"stores": ", ".join(names)},
        "counts": counts,
        "waiting": [(approval, _approval_url(approval)) for approval in waiting],
        "raised": [(approval, _approval_url(approval)) for approval in raised],
        "approvals_url": reverse("admin:approvals_approvalrequest_changelist"),
    }


def _approval_url(approval) -> str:
    return reverse("admin:approvals_approvalrequest_change", args=[approval.pk])


def install(site: admin.AdminSite = admin.site) -> None:
    """Give `site` the grouped home (template admin/home.html) and side navigation. Once per site."""
    if getattr(site, "_grouped_index", False):
        return
    site._grouped_index = True
    site_index = site.index
    site_each_context = site.each_context

    def each_context(request):
        context = site_each_context(request)
        if context.get("is_nav_sidebar_enabled") and context.get("available_apps"):
            context["available_apps"] = grouped_app_list(site, request, context["available_apps"])
        return context
    site.index_template = "admin/home.html"

    def index(request, extra_context=None):
        context = {"app_list": grouped_app_list(site, request)}
        home = store_home(request)
        if home is not None:
            context.update(store_home=home, title=home["title"])
        return site_index(request, {**context, **(extra_context or {})})

    site.index = index
    site.each_context = each_context
