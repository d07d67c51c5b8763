"""Points and purchases: the points and debt ledgers, points held in a return window, tier history, purchases
and returns, each ledger entry linked to what caused it; and the points part of a member's page (its rows, the
adjustment request, the list of points expiring soon)."""

import csv
import io
from decimal import Decimal

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q, Sum
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from approvals.admin import approval_outcome_message
from approvals.models import ApprovalRequest
from approvals.queries import pending_requests
from core.admin import CappedCountPaginator, DefaultStatusFilter, local_time
from core.errors import DomainError
from core.files import escape_cell
from core.forms import add_service_error
from core.http import client_ip
from core.models import PersonalDataAccess
from core.numbers import money_display
from core.services import personal_data_access_log
from membership import queries, services
from membership.admin.common import MemberPagesMixin, MemberRowAdmin, ReadOnlyInline, member_table, member_url
from membership.admin.forms import PointsAdjustForm
from membership.models import (
    GiftStockMovement,
    Member,
    PointsDebtEntry,
    PointsEntry,
    PointsHold,
    PointsPolicy,
    Purchase,
    PurchaseReturn,
    TierChange,
)
from stores.admin_base import StoreFilter
from stores.queries import stores_visible_to, user_is_hq

CENT = Decimal("0.01")
RECENT_LEDGER_ROWS = 20
RECENT_PURCHASES = 10
POINTS_ADJUST_ACTIONS = (services.POINTS_ADJUST, services.POINTS_DEBT_WAIVE)
PERMISSION_ADJUST_POINTS = "membership.adjust_points"


def _purchase_link(row):
    """The purchase a row belongs to, as its store code and receipt number."""
    return format_html('<a href="{}">{} {}</a>', reverse("admin:membership_purchase_change", args=[row.purchase_id]),
                       row.purchase.store.code, row.purchase.receipt_no)


def _ledger_url(member) -> str:
    return reverse("admin:membership_pointsentry_changelist") + f"?member__id__exact={member.pk}"


def cause_label(cause) -> str:
    """What caused a ledger entry, in words staff recognise: a receipt, a return, an approval, a merge."""
    if isinstance(cause, Purchase):
        return gettext("receipt %(receipt_no)s") % {"receipt_no": cause.receipt_no}
    if isinstance(cause, PurchaseReturn):
        return gettext("return %(receipt_no)s") % {"receipt_no": cause.receipt_no}
    if isinstance(cause, ApprovalRequest):
        return gettext("approval request #%(id)s") % {"id": cause.pk}
    if isinstance(cause, Member):
        return gettext("merge with %(member_no)s") % {"member_no": cause.member_no}
    if isinstance(cause, GiftStockMovement):
        return gettext("gift redemption")
    return f"{capfirst(cause._meta.verbose_name)} #{cause.pk}"


def cause_link(entry):
    """The event behind a ledger entry, linked to its admin page when there is one."""
    cause = entry.cause
    if cause is None:
        return "-"
    label = cause_label(cause)
    # A gift's stock movement is shown on its stock page.
    target = cause.stock if isinstance(cause, GiftStockMovement) else cause
    try:
        url = reverse(f"admin:{target._meta.app_label}_{target._meta.model_name}_change", args=[target.pk])
    except NoReverseMatch:
        return label
    return format_html('<a href="{}">{}</a>', url, label)


def member_purchases_by_format(member, *, months: int) -> list[dict]:
    """Count and net spend per format over the last months (the tier window), from the member's index."""
    start, end = services.tier_window(months=months)
    rows = list(
        Purchase.objects.filter(member=member, occurred_at__gte=start, occurred_at__lt=end)
        .values("format__code", "format__name")
        .annotate(count=Count("pk"), spend=Sum(F("amount") - F("returned_amount")))
        .order_by("format__code")
    )
    for row in rows:
        # SQLite sums decimals as floats: back to money with two places.
        row["spend"] = Decimal(str(row["spend"] or 0)).quantize(CENT)
    return rows


class MemberPointsMixin(MemberPagesMixin):
    """The points rows of a member's page, the request for a points adjustment, and the members whose points
    expire soon."""

    @admin.display(description=_("points"))
    def points_link(self, obj):
        url = reverse("admin:membership_pointsentry_changelist") + f"?member__id__exact={obj.pk}"
        return format_html('{} (<a href="{}">{}</a>)', obj.points, url, gettext("ledger"))

    @admin.display(description=_("recent points entries"))
    def recent_points(self, obj):
        entries = list(
            obj.points_entries.select_related("store", "legal_entity").prefetch_related("cause")
            .order_by("-created_at", "-pk")[:RECENT_LEDGER_ROWS]
        )
        url = _ledger_url(obj)
        if not entries:
            return gettext("No points entries.")
        return member_table(
            [gettext("time"), gettext("kind"), gettext("points"), gettext("balance after"), gettext("store"),
             gettext("legal entity"), gettext("reason"), gettext("caused by")],
            [(local_time(entry.created_at), entry.get_kind_display(), f"{entry.points:+d}",
              entry.balance_after, entry.store or "-", entry.legal_entity.name if entry.legal_entity else "-",
              entry.reason or entry.receipt_no or "-", cause_link(entry)) for entry in entries],
            footer=format_html('<a href="{}">{}</a>', url, gettext("The whole points ledger of this member")),
        )

    @admin.display(description=_("pending points"))
    def pending_points(self, obj):
        pending = queries.member_points_pending(obj)
        if not pending:
            return 0
        url = reverse("admin:membership_pointshold_changelist") + f"?member__id__exact={obj.pk}"
        return format_html('{} (<a href="{}">{}</a>)', pending, url, gettext("in a return window"))

    @admin.display(description=_("points owed"))
    def points_debt_shown(self, obj):
        if not obj.points_debt:
            return 0
        url = reverse("admin:membership_pointsdebtentry_changelist") + f"?member__id__exact={obj.pk}"
        return format_html('{} (<a href="{}">{}</a>)', obj.points_debt, url, gettext("debt ledger"))

    @admin.display(description=_("purchases by format"))
    def purchases_by_format(self, obj):
        months = PointsPolicy.current().tier_window_months
        rows = member_purchases_by_format(obj, months=months)
        if not rows:
            return gettext("No purchases in the last %(months)d months.") % {"months": months}
        return member_table(
            [gettext("format"), gettext("purchases"), gettext("net spend")],
            [(row["format__name"], row["count"], row["spend"]) for row in rows],
            footer=gettext("Over the last %(months)d months, returns taken off.") % {"months": months},
        )

    @admin.display(description=_("recent purchases"))
    def recent_purchases(self, obj):
        purchases = list(obj.purchases.select_related("store").order_by("-occurred_at", "-pk")[:RECENT_PURCHASES])
        if not purchases:
            return gettext("No purchases.")
        url = reverse("admin:membership_purchase_changelist") + f"?member__id__exact={obj.pk}"
        return member_table(
            [gettext("time"), gettext("store"), gettext("receipt number"), gettext("amount"), gettext("returned"),
             gettext("points earned")],
            [(local_time(purchase.occurred_at), purchase.store,
              format_html('<a href="{}">{}</a>', reverse("admin:membership_purchase_change", args=[purchase.pk]),
                          purchase.receipt_no),
              purchase.amount, purchase.returned_amount, purchase.points_earned) for purchase in purchases],
            footer=format_html('<a href="{}">{}</a>', url, gettext("All purchases of this member")),
        )

    def _points_adjustable(self, request, obj) -> bool:
        return obj.status != Member.Status.MERGED and request.user.has_perm(PERMISSION_ADJUST_POINTS)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/points-adjust/", wrap(self.points_adjust_view),
                 name="membership_member_points_adjust"),
            path("points-expiring/", wrap(self.points_expiring_view), name="membership_member_points_expiring"),
            *super().get_urls(),
        ]

    def points_adjust_view(self, request, object_id):
        """Ask for a manual points adjustment; nothing moves until another person approves it."""
        if not request.user.has_perm(PERMISSION_ADJUST_POINTS):
            raise PermissionDenied
        member = self._member_for(request, object_id, self._points_adjustable)
        form = PointsAdjustForm(request.POST or None, owes_points=member.points_debt > 0)
        if request.method == "POST" and form.is_valid():
            store = None if user_is_hq(request.user) else member.registered_store
            ask = services.points_debt_waive_request if form.waives else services.points_adjust_request
            try:
                approval = ask(
                    member=member, points=form.cleaned_data["points"], reason=form.cleaned_data["reason"],
                    requested_by=request.user, store=store,
                )
            except DomainError as error:
                add_service_error(form, error)
            else:
                return self._adjustment_requested(request, member, approval)
        pending = pending_requests(member, actions=POINTS_ADJUST_ACTIONS).select_related("requested_by")
        return self._page(request, "admin/membership/member/points_adjust.html",
                          gettext("Request a points adjustment for %(member)s") % {"member": member}, member,
                          form=form, change_url=member_url(member), pending=pending,
                          submit_label=gettext("Request the adjustment"))

    def _adjustment_requested(self, request, member, approval):
        approval_outcome_message(
            self, request, approval,
            pending=gettext("The adjustment waits for another person's approval; the points do not change until "
                            "then."),
            done=gettext("The points were adjusted."),
        )
        return HttpResponseRedirect(member_url(member))

    # --- points expiring soon ------------------------------------------------------------------------

    def _points_expiring(self, request):
        whole_year = request.GET.get("all") == "1"
        members = queries.points_expiring(within_days=366 if whole_year else None)
        members = queries.members_in_scope(members, request.user).select_related("registered_store")
        return members, whole_year

    def points_expiring_view(self, request):
        """Members whose points the coming year end takes, most first, for a reminder call or SMS."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        members, whole_year = self._points_expiring(request)
        if request.GET.get("export") == "csv":
            return self._points_expiring_csv(request, members)
        paginator = CappedCountPaginator(members, self.list_per_page)
        page = paginator.get_page(request.GET.get("p"))
        expiry = queries.points_expiry_next()
        return self._page(request, "admin/membership/member/points_expiring.html",
                          gettext("Points expiring soon"), page=page, paginator=paginator, whole_year=whole_year,
                          expiry=expiry, notice_days=PointsPolicy.current().expiry_notice_days)

    def _points_expiring_csv(self, request, members):
        # Masked like every member export; the full numbers stay behind the personal-data permission.
        fields = Member._meta
        header = [*(str(fields.get_field(name).verbose_name)
                    for name in ("member_no", "name", "phone", "family_phone", "contact_channel", "points")),
                  gettext("points expiring"), gettext("expires on"), gettext("registered store")]

        def rows():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(header)
            yield "\ufeff" + buffer.getvalue()
            for member in members.iterator(chunk_size=2000):
                buffer.seek(0)
                buffer.truncate()
                writer.writerow([escape_cell(value) for value in (
                    member.member_no, member.name, member.phone_masked, member.family_phone_masked,
                    member.get_contact_channel_display(), member.points, member.points_expiring,
                    f"{member.points_expire_on:%Y-%m-%d}", member.registered_store.code if member.registered_store
                    else "",
                )])
                yield buffer.getvalue()

        # Logged before the first row leaves: an export cut off halfway has still been seen.
        personal_data_access_log(user=request.user, action=PersonalDataAccess.Action.EXPORT,
                                 detail="points expiring soon, masked", ip_address=client_ip(request))
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="points-expiring-{timezone.localdate():%Y%m%d}.csv"'
        )
        return response


class PurchaseStoreFilter(StoreFilter):
    store_field = "purchase__store_id"


class PurchaseReturnInline(ReadOnlyInline):
    model = PurchaseReturn
    fields = ["occurred_at", "store", "receipt_no", "amount", "points_reversed", "points_debt"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("store")


@admin.register(Purchase)
class PurchaseAdmin(MemberRowAdmin):
    """Receipts from every format's POS, of members and of customers who showed no membership; written only by
    the POS API."""

    store_path = "store"
    list_display = ["occurred_at", "store", "format", "receipt_no", "member_link", "amount", "returned_amount",
                    "points_earned", "payment_method_shown"]
    list_filter = ["format", StoreFilter, ("occurred_at", admin.DateFieldListFilter)]
    list_select_related = ["store", "format", "member"]
    search_fields = ["receipt_no"]
    search_help_text = _("Exact receipt number or member number.")
    sortable_by = ["occurred_at"]
    readonly_fields = ["member_link", "store", "format", "legal_entity", "terminal", "receipt_no", "amount",
                       "returned_amount", "occurred_at", "payment_method_shown", "lines_table", "points_earned",
                       "promotions_text", "points_entries", "created_at"]
    fields = readonly_fields
    inlines = [PurchaseReturnInline]

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        # The receipt index leads with the store: one probe per store the user may see.
        store_ids = list(stores_visible_to(request.user).values_list("pk", flat=True))
        condition = Q(store_id__in=store_ids, receipt_no=term)
        if services.member_no_is_valid(term):
            condition |= Q(member_id__in=list(Member.objects.filter(member_no=term).values_list("pk", flat=True)))
        return queryset.filter(condition), False

    @admin.display(description=_("member"))
    def member_link(self, obj):
        if obj.member_id is None:
            return format_html('— <span class="quiet">{}</span>', gettext("non-member"))
        return super().member_link(obj)

    @admin.display(description=_("lines"))
    def lines_table(self, obj):
        lines = [line for line in (obj.lines or []) if isinstance(line, dict)]
        if not lines:
            return "-"
        return member_table([gettext("SKU"), gettext("category"), gettext("amount"), gettext("quantity")],
                      [(line.get("sku", ""), line.get("category", ""), money_display(line.get("amount")),
                        line.get("quantity", "")) for line in lines])

    @admin.display(description=_("points entries"))
    def points_entries(self, obj):
        if obj.member_id is None:
            return gettext("A sale without a member earns no points.")
        entries = PointsEntry.objects.filter(
            member_id=obj.member_id, cause_type=ContentType.objects.get_for_model(Purchase), cause_id=str(obj.pk),
        ).select_related("legal_entity").order_by("created_at", "pk")
        rows = [(local_time(entry.created_at), entry.get_kind_display(), f"{entry.points:+d}",
                 entry.balance_after, entry.legal_entity.name if entry.legal_entity else "-", entry.reason or "-")
                for entry in entries]
        hold = PointsHold.objects.filter(purchase=obj).first()
        footer = None
        if hold is not None:
            footer = gettext("%(points)d points held until %(date)s: %(status)s.") % {
                "points": hold.remaining, "date": local_time(hold.available_at),
                "status": hold.get_status_display(),
            }
        if not rows:
            return footer or gettext("No points entries.")
        return member_table([gettext("time"), gettext("kind"), gettext("points"), gettext("balance after"),
                       gettext("legal entity"), gettext("reason")], rows, footer=footer)


@admin.register(PurchaseReturn)
class PurchaseReturnAdmin(MemberRowAdmin):
    store_path = "store"
    list_display = ["occurred_at", "store", "receipt_no", "purchase_link", "amount", "points_reversed",
                    "points_debt"]
    list_filter = [StoreFilter, ("occurred_at", admin.DateFieldListFilter)]
    list_select_related = ["store", "purchase__store"]
    search_fields = ["purchase__member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "purchase__member__member_no"
    sortable_by = ["occurred_at"]

    @admin.display(description=_("purchase"))
    def purchase_link(self, obj):
        return _purchase_link(obj)


class HoldStatusFilter(DefaultStatusFilter):
    status_choices = PointsHold.Status.choices
    default = PointsHold.Status.PENDING


@admin.register(PointsHold)
class PointsHoldAdmin(MemberRowAdmin):
    """Points earned inside a return window; released by the nightly job, cancelled by returns."""

    store_path = "purchase__store"
    list_display = ["available_at", "member_link", "purchase_link", "points", "cancelled_points", "status"]
    list_filter = [HoldStatusFilter, PurchaseStoreFilter]
    list_select_related = ["member", "purchase__store"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["available_at"]

    @admin.display(description=_("purchase"))
    def purchase_link(self, obj):
        return _purchase_link(obj)


# --- ledgers and tier history -------------------------------------------------------------------


class MemberLedgerAdmin(MemberRowAdmin):
    """A member's append-only ledger, searched by member number, each entry linked to what caused it."""

    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("cause")

    @admin.display(description=_("caused by"))
    def cause_shown(self, obj):
        return cause_link(obj)


@admin.register(PointsEntry)
class PointsEntryAdmin(MemberLedgerAdmin):
    """The points ledger: append-only, never edited or deleted; a mistake is corrected by a new entry."""

    list_display = ["created_at", "member_link", "kind", "points", "balance_after", "store", "legal_entity",
                    "terminal", "receipt_no", "operator", "reason", "cause_shown"]
    list_filter = ["kind", StoreFilter, "legal_entity", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "store", "legal_entity", "terminal__store", "operator"]


@admin.register(PointsDebtEntry)
class PointsDebtEntryAdmin(MemberLedgerAdmin):
    """Points members owe after returns took back points already spent; append-only."""

    list_display = ["created_at", "member_link", "kind", "points", "debt_after", "reason", "cause_shown"]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member"]


@admin.register(TierChange)
class TierChangeAdmin(MemberRowAdmin):
    list_display = ["created_at", "member_link", "from_tier", "to_tier", "reason", "spend", "note", "actor"]
    list_filter = ["reason", "to_tier", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "from_tier", "to_tier", "actor"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at"]
