"""Headquarters and store screens for members, points, tags and merges.

Every write goes through membership.services: this module parses what staff
typed or uploaded, calls a service and shows the result. Member search never
scans the table: it uses the exact lookups of membership.queries (phone, ID
digest, member, card and legacy numbers, exact name, pinyin-initials prefix).
"""

import csv
import io
import re
import zipfile
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, F, Q, Sum
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from approvals.admin import ApprovalHistoryInline
from approvals.models import ApprovalRequest
from core.admin import BaseAdmin, DefaultStatusFilter, ImportExportBaseAdmin, ReadOnlyAdminMixin, ServiceRefusalMixin
from core.errors import DomainError
from core.files import escape_cell
from core.http import client_ip
from core.models import PersonalDataAccess
from core.pii import InvalidPersonalData, mask_phone, normalize_id_number, pii_decrypt
from core.services import personal_data_access_log
from membership import queries, services
from membership.errors import GiftInvalid, MemberInvalid
from membership.forms import PaidTierSaleForm, add_service_error, paid_tiers_on_sale
from membership.models import (
    EarnRule,
    Gift,
    GiftRedemption,
    GiftStock,
    GiftStockMovement,
    Member,
    MemberCard,
    MemberEvent,
    MemberIdentity,
    MemberTag,
    MergeCandidate,
    PointsDebtEntry,
    PointsEntry,
    PointsHold,
    PointsPolicy,
    Purchase,
    PurchaseReturn,
    Tag,
    Tier,
    TierChange,
    TierSubscription,
)
from membership.queries import classify_search, members_by_id_number, members_matching
from membership.resources import MemberExportResource, MemberImportResource
from membership.tasks import merge_candidates_detect
from stores.models import Store
from stores.queries import scope_queryset, stores_visible_to, user_can_see_store, user_is_hq

SEARCH_HELP = _("Phone, ID number, member number, card number, name or pinyin initials (exact).")
CENT = Decimal("0.01")
RECENT_LEDGER_ROWS = 20
RECENT_PURCHASES = 10
RECENT_TIER_CHANGES = 20
RECENT_STOCK_MOVEMENTS = 50
POINTS_ADJUST_ACTIONS = (services.POINTS_ADJUST, services.POINTS_DEBT_WAIVE)
PERMISSION_ADJUST_POINTS = "membership.adjust_points"
PERMISSION_SELL_PAID_TIER = "membership.sell_paid_tier"
PERMISSION_GIFT_STOCK = "membership.change_giftstock"
# Actions loop over members one service call at a time: a larger set belongs in a file upload.
MAX_ACTION_MEMBERS = 5000
MAX_BULK_TAG_NUMBERS = 200_000
PERMISSION_REVEAL = "membership.reveal_personal_data"
PERMISSION_EXPORT_FULL = "membership.export_personal_data"
PERMISSION_MERGE = "membership.merge_member"


class CappedCountPaginator(Paginator):
    """Counting 25 million rows takes seconds on PostgreSQL: count at most `cap` rows.

    An unfiltered list on PostgreSQL shows the planner's row estimate instead;
    a filtered list beyond the cap shows the cap (staff narrow it with search).
    """

    cap = 10_000

    @cached_property
    def count(self):
        counted = self.object_list[: self.cap + 1].count()
        if counted <= self.cap:
            return counted
        query = self.object_list.query
        connection = connections[self.object_list.db]
        if connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [self.object_list.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] > counted:
                return row[0]
        return counted


def member_search_condition(text: str) -> Q | None:
    """The exact lookups of membership.queries for one search box; None for an empty box."""
    text = (text or "").strip()
    if not text:
        return None
    search = classify_search(text)
    matched = members_matching(search)
    condition = Q(pk__in=matched.values("pk"))
    if search.kind in ("member_no", "number"):
        # The queries lead a merged number to its survivor; staff also see the merged record itself.
        condition |= Q(member_no=search.value)
    elif search.kind == "name" and re.fullmatch(r"(?=.*[0-9])[A-Z0-9]{5,17}", normalize_id_number(text)):
        # Passport and permit numbers: letters and digits, found by their digest like resident IDs.
        condition |= Q(pk__in=members_by_id_number(text).values("pk"))
    return condition


def _members_url(member) -> str:
    return reverse("admin:membership_member_change", args=[member.pk])


def _member_link(member):
    if member is None:
        return "-"
    return format_html('<a href="{}">{}</a>', _members_url(member), member)


def _purchase_link(row):
    """The purchase a row belongs to, as its store code and receipt number."""
    return format_html('<a href="{}">{} {}</a>', reverse("admin:membership_purchase_change", args=[row.purchase_id]),
                       row.purchase.store.code, row.purchase.receipt_no)


def _local(moment) -> str:
    """A time as staff read it: in the project's time zone (Asia/Shanghai), to the minute."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _ledger_url(member) -> str:
    return reverse("admin:membership_pointsentry_changelist") + f"?member__id__exact={member.pk}"


def _table(headers, rows, *, footer=None):
    """A small read-only table on a change page (the cells are escaped unless already safe)."""
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows
    ))
    table = format_html('<table class="member-summary"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                        head, body)
    return format_html("{}<p>{}</p>", table, footer) if footer else table


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


# --- forms ---------------------------------------------------------------------------------


class MemberAddForm(forms.ModelForm):
    """Registration from the admin: the same validation and service as the service desk."""

    id_number = forms.CharField(label=_("ID number"), max_length=30, required=False)
    card_no = forms.CharField(label=_("member card number"), max_length=32, required=False)
    channel = forms.ChoiceField(
        label=_("registration channel"),
        choices=[(value, label) for value, label in Member.Channel.choices
                 if value in (Member.Channel.DESK, Member.Channel.PARTNER)],
        initial=Member.Channel.DESK,
    )
    stores_required = False

    class Meta:
        model = Member
        fields = ["name", "id_type", "id_number", "gender", "birth_date", "phone", "family_phone", "address",
                  "contact_channel", "marketing_consent", "card_no", "registered_store", "channel", "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "registered_store" in self.fields:
            self.fields["registered_store"].required = self.stores_required

    def member_input(self) -> services.MemberInput:
        data = self.cleaned_data
        return services.MemberInput(
            name=data.get("name") or "", phone=data.get("phone") or "", family_phone=data.get("family_phone") or "",
            id_type=data.get("id_type") or "", id_number=data.get("id_number") or "",
            birth_date=data.get("birth_date"), gender=data.get("gender") or "", address=data.get("address") or "",
            contact_channel=data.get("contact_channel") or "", marketing_consent=bool(data.get("marketing_consent")),
            notes=data.get("notes") or "", card_no=data.get("card_no") or "",
        )

    def clean(self):
        cleaned = super().clean()
        try:
            values = services.member_input_clean(self.member_input())
        except MemberInvalid as error:
            add_service_error(self, error)
            return cleaned
        if values["id_number_digest"]:
            existing = services.member_by_id_digest(values["id_number_digest"])
            if existing is not None:
                self.add_error("id_number", gettext("A member with this ID number is already registered: "
                                                    "%(member_no)s.") % {"member_no": existing.member_no})
        card_no = (cleaned.get("card_no") or "").strip()
        if card_no and MemberCard.objects.filter(card_no=card_no).exists():
            self.add_error("card_no", gettext("This member card number is already in use."))
        return cleaned


class MemberChangeForm(forms.ModelForm):
    """Contact details and notes; everything else about a member is read-only here."""

    can_see_full_phone = False

    class Meta:
        model = Member
        fields = [*services.CONTACT_FIELDS, "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.can_see_full_phone:
            return
        # Staff without the permission never receive the number, not even in an input's value.
        for name in ("phone", "family_phone"):
            if name in self.fields:
                self.initial[name] = ""
                self.fields[name].widget.attrs["placeholder"] = mask_phone(getattr(self.instance, name))
                self.fields[name].help_text = _("Shown masked. Type a new number to replace it; "
                                                "leave empty to keep it.")

    def clean(self):
        cleaned = super().clean()
        member = self.instance
        if not self.can_see_full_phone:
            for name in ("phone", "family_phone"):
                if name in self.fields and not cleaned.get(name):
                    cleaned[name] = getattr(member, name)
        values = {name: cleaned.get(name, getattr(member, name)) for name in services.CONTACT_FIELDS}
        try:
            services.member_input_clean(services.MemberInput(name=member.name, **values),
                                        require_contact=not member.id_number_digest)
        except MemberInvalid as error:
            add_service_error(self, error)
        return cleaned


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=500,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class StatusForm(ReasonForm):
    status = forms.ChoiceField(
        label=_("new status"),
        choices=[(value, label) for value, label in Member.Status.choices if value != Member.Status.MERGED],
    )
    field_order = ["status", "reason"]


class TagChoiceForm(forms.Form):
    tag = forms.ModelChoiceField(label=_("tag"), queryset=Tag.objects.all())


class MergeReviewForm(forms.Form):
    survivor = forms.ChoiceField(label=_("record that stays"), widget=forms.RadioSelect)
    reason = forms.CharField(label=_("reason"), required=False, max_length=500,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def __init__(self, *args, member_a: Member, member_b: Member, **kwargs):
        super().__init__(*args, **kwargs)
        self.members = {str(member_a.pk): member_a, str(member_b.pk): member_b}
        self.fields["survivor"].choices = [(str(m.pk), f"{m.member_no} {m.name}") for m in (member_a, member_b)]
        # The record with an ID number, then the older one, usually carries the person's history.
        default = sorted((member_a, member_b), key=lambda m: (not m.id_number_digest, m.registered_at, m.pk))[0]
        self.fields["survivor"].initial = str(default.pk)

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(gettext("Give a reason for the merge."))
        return reason


class BulkTagForm(forms.Form):
    file = forms.FileField(
        label=_("file"),
        help_text=_("An .xlsx or .csv file: member numbers in a column named member_no or 会员号, "
                    "or in the first column without a header."),
    )


class PointsAdjustForm(forms.Form):
    ADJUST, WAIVE = "adjust", "waive"
    what = forms.ChoiceField(
        label=_("what to do"), initial=ADJUST, widget=forms.RadioSelect,
        choices=[(ADJUST, _("adjust the points balance")), (WAIVE, _("waive points owed"))],
    )
    points = forms.IntegerField(
        label=_("points"), help_text=_("Positive adds points, negative takes them away. Whole points only."),
    )
    reason = forms.CharField(label=_("reason"), max_length=200,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text=_("Shown to the approver and kept with the ledger entry."))

    def __init__(self, *args, owes_points: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not owes_points:
            # Nothing to waive: the form is the plain adjustment.
            del self.fields["what"]

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(gettext("Enter a number of points other than 0."))
        return points

    @property
    def waives(self) -> bool:
        return self.cleaned_data.get("what") == self.WAIVE


class PaidTierAdminForm(PaidTierSaleForm):
    store = forms.ModelChoiceField(label=_("selling store"), queryset=None, required=False,
                                   help_text=_("Leave empty for a sale by headquarters."))

    def __init__(self, *args, stores, store_required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = stores
        self.fields["store"].required = store_required


class GiftStockReceiveForm(forms.Form):
    gift = forms.ModelChoiceField(label=_("gift"), queryset=Gift.objects.filter(is_active=True))
    store = forms.ModelChoiceField(label=_("store"), queryset=None)
    quantity = forms.IntegerField(label=_("quantity received"), min_value=1, max_value=100_000)
    reason = forms.CharField(label=_("note"), max_length=200, required=False,
                             help_text=_("Delivery note number or supplier, for the stock history."))

    def __init__(self, *args, stores, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = stores


class GiftStockCorrectForm(forms.Form):
    quantity = forms.IntegerField(label=_("counted quantity"), min_value=0, max_value=1_000_000,
                                  help_text=_("What the stock count found on the shelf."))
    # The quantity on the books when the form was shown: the correction is the difference from it.
    seen = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    reason = forms.CharField(label=_("reason"), max_length=200,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


# --- reading a file of member numbers ----------------------------------------------------------


class MemberNumberFileError(Exception):
    def __init__(self, message):
        self.message = message
        super().__init__(str(message))


_NUMBER_HEADERS = {"member_no", "会员号", "member number", "会员编号", "会员卡号"}
_SCIENTIFIC = re.compile(r"^[0-9](\.[0-9]+)?e\+?[0-9]+$", re.IGNORECASE)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return str(value).strip().lstrip("'").strip()


def _rows_from_xlsx(upload):
    try:
        workbook = load_workbook(upload, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise MemberNumberFileError(_("The file could not be read as an Excel workbook (.xlsx).")) from None
    try:
        for row in workbook.worksheets[0].iter_rows(values_only=True):
            yield [_cell_text(value) for value in row]
    finally:
        workbook.close()


def _rows_from_csv(upload):
    raw = upload.read()
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise MemberNumberFileError(_("The CSV file is neither UTF-8 nor GBK text."))
    if "\x00" in text:
        raise MemberNumberFileError(_("The file is not a CSV text file."))
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    for row in csv.reader(io.StringIO(text), dialect):
        yield [_cell_text(value) for value in row]


def member_numbers_from_file(upload) -> list[str]:
    """The member numbers of an uploaded .xlsx or .csv. Raise MemberNumberFileError naming the problem."""
    name = (upload.name or "").lower()
    if name.endswith(".xlsx"):
        rows = _rows_from_xlsx(upload)
    elif name.endswith(".csv"):
        rows = _rows_from_csv(upload)
    else:
        raise MemberNumberFileError(_("Upload an .xlsx or .csv file (an old .xls must be saved as .xlsx)."))
    column = None
    numbers: list[str] = []
    for row_no, row in enumerate(rows, start=1):
        if not any(row):
            continue
        if column is None:
            headers = [cell.lower() for cell in row]
            named = [index for index, header in enumerate(headers) if header in _NUMBER_HEADERS]
            if named:
                column = named[0]
                continue
            if row[0].isdigit():
                column = 0
            else:
                raise MemberNumberFileError(
                    _("No member number column: name a column member_no or 会员号, "
                      "or put the numbers in the first column without a header.")
                )
        value = row[column] if column < len(row) else ""
        if not value:
            continue
        if _SCIENTIFIC.match(value):
            raise MemberNumberFileError(
                _("Row %(row)d: %(value)s is a number Excel shortened; format the column as text and save again.")
                % {"row": row_no, "value": value}
            )
        numbers.append(value)
        if len(numbers) > MAX_BULK_TAG_NUMBERS:
            raise MemberNumberFileError(_("The file holds more than %(max)d member numbers; split it.")
                                        % {"max": MAX_BULK_TAG_NUMBERS})
    if not numbers:
        raise MemberNumberFileError(_("The file holds no member numbers."))
    return numbers


# --- member ------------------------------------------------------------------------------------


class MemberStoreFilter(admin.SimpleListFilter):
    """Store staff filter by their own stores; headquarters find a store's members by search and format."""

    title = _("registering store")
    parameter_name = "store"

    def lookups(self, request, model_admin):
        if user_is_hq(request.user):
            return []
        return [(str(store.pk), str(store)) for store in stores_visible_to(request.user).order_by("code")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(registered_store_id=self.value())
        return queryset


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class IdentityInline(ReadOnlyInline):
    model = MemberIdentity
    fields = ["kind", "source", "external_no", "created_at"]
    readonly_fields = fields


class MemberCardInline(ReadOnlyInline):
    model = MemberCard
    fields = ["card_no", "status", "issued_at", "issued_store"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("issued_store")


class MemberTagInline(ReadOnlyInline):
    model = MemberTag
    fields = ["tag", "added_by", "added_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tag", "added_by")


class MemberEventInline(ReadOnlyInline):
    model = MemberEvent
    fields = ["created_at", "kind", "actor", "store", "data"]
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor", "store")


class MemberFileImportResource(MemberImportResource):
    """The legacy member import under the name the import form shows."""

    @classmethod
    def get_display_name(cls):
        return gettext("Legacy members")


class MemberMaskedExportResource(MemberExportResource):
    """Phone and ID numbers masked: what anyone allowed to export members gets."""

    @classmethod
    def get_display_name(cls):
        return gettext("Members (phone and ID number masked)")


class MemberFullExportResource(MemberExportResource):
    """Full phone and ID numbers, for holders of membership.export_personal_data."""

    def __init__(self, **kwargs):
        kwargs.setdefault("full_personal_data", True)
        super().__init__(**kwargs)

    @classmethod
    def get_display_name(cls):
        return gettext("Members with full phone and ID numbers")


# Rows of the change page that no form may write: identity, status, points, registration.
_MEMBER_READONLY = [
    "member_no", "name", "gender", "birth_date_age", "id_type", "id_number_shown", "status", "merged_into_link",
    "tier", "points_link", "phone_shown", "family_phone_shown", "address", "contact_channel", "marketing_consent",
    "marketing_consent_at", "registered_store", "registered_channel", "registered_by", "registered_at", "notes",
    "earned_tier", "paid_tier_shown", "pending_points", "points_debt_shown", "recent_points", "purchases_by_format",
    "recent_purchases", "tier_history",
]


@admin.register(Member)
class MemberAdmin(ServiceRefusalMixin, ImportExportBaseAdmin):
    store_path = "registered_store"
    list_display = ["member_no", "name", "phone_column", "id_number_masked", "gender", "birth_date_age", "tier",
                    "paid_tier", "points", "registered_store", "registered_channel", "status", "registered_at"]
    list_select_related = ["tier", "paid_tier", "registered_store"]
    # No date hierarchy: its year list is a DISTINCT over every row; the date filter uses the index.
    list_filter = ["status", "tier", "registered_channel", "gender", "registered_store__format",
                   ("registered_at", admin.DateFieldListFilter), "tags", MemberStoreFilter]
    # The box is handled by get_search_results; Django shows it only when search_fields is set.
    search_fields = ["member_no"]
    search_help_text = SEARCH_HELP
    sortable_by = ["member_no", "name", "registered_at"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    actions = ["freeze_members", "unfreeze_members", "close_members", "tag_members", "untag_members",
               "merge_two_members"]
    change_form_template = "admin/membership/member/change_form.html"
    change_list_template = "admin/membership/member/change_list.html"

    # --- list -----------------------------------------------------------------------------

    @admin.display(description=_("phone"))
    def phone_column(self, obj):
        if obj.phone:
            return obj.phone_masked
        if obj.family_phone:
            return gettext("family: %(phone)s") % {"phone": obj.family_phone_masked}
        return "-"

    @admin.display(description=_("birth date (age)"), ordering="birth_date")
    def birth_date_age(self, obj):
        if not obj.birth_date:
            return "-"
        return f"{obj.birth_date:%Y-%m-%d} ({obj.age})"

    def get_search_results(self, request, queryset, search_term):
        condition = member_search_condition(search_term)
        if condition is None:
            return queryset, False
        return queryset.filter(condition), False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_merge_permission(self, request):
        return request.user.has_perm(PERMISSION_MERGE)

    # --- change page ------------------------------------------------------------------------

    def _can_see_full(self, request) -> bool:
        return request.user.has_perm(PERMISSION_REVEAL)

    def _contact_editable(self, request, obj) -> bool:
        return obj is not None and obj.status in services.LIVE_STATUSES and self.has_change_permission(request, obj)

    def _status_changeable(self, request, obj) -> bool:
        # A closed member can be reopened; a merged record lives on only as a pointer to its survivor.
        return obj.status != Member.Status.MERGED and self.has_change_permission(request, obj)

    @admin.display(description=_("ID number"))
    def id_number_shown(self, obj):
        return obj.id_number_masked or "-"

    @admin.display(description=_("phone"))
    def phone_shown(self, obj):
        return obj.phone if getattr(obj, "show_full_phone", False) else obj.phone_masked

    @admin.display(description=_("family contact phone"))
    def family_phone_shown(self, obj):
        return obj.family_phone if getattr(obj, "show_full_phone", False) else obj.family_phone_masked

    @admin.display(description=_("merged into"))
    def merged_into_link(self, obj):
        return _member_link(obj.merged_into)

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
        return _table(
            [gettext("time"), gettext("kind"), gettext("points"), gettext("balance after"), gettext("store"),
             gettext("legal entity"), gettext("reason"), gettext("caused by")],
            [(_local(entry.created_at), entry.get_kind_display(), f"{entry.points:+d}",
              entry.balance_after, entry.store or "-", entry.legal_entity.name if entry.legal_entity else "-",
              entry.reason or entry.receipt_no or "-", cause_link(entry)) for entry in entries],
            footer=format_html('<a href="{}">{}</a>', url, gettext("The whole points ledger of this member")),
        )

    @admin.display(description=_("earned tier"))
    def earned_tier(self, obj):
        text = f"{obj.tier.name} ({obj.tier.code})"
        if obj.tier_downgrade_on:
            return format_html("{} · <strong>{}</strong>", text, gettext("downgrade due on %(date)s")
                               % {"date": f"{obj.tier_downgrade_on:%Y-%m-%d}"})
        return text

    @admin.display(description=_("paid tier"))
    def paid_tier_shown(self, obj):
        if obj.paid_tier is None:
            return "-"
        until = obj.paid_tier_until
        if until is not None and until < timezone.localdate():
            return gettext("%(tier)s, ended on %(date)s") % {"tier": obj.paid_tier.name, "date": f"{until:%Y-%m-%d}"}
        return gettext("%(tier)s until %(date)s") % {
            "tier": obj.paid_tier.name, "date": f"{until:%Y-%m-%d}" if until else "-",
        }

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
        return _table(
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
        return _table(
            [gettext("time"), gettext("store"), gettext("receipt number"), gettext("amount"), gettext("returned"),
             gettext("points earned")],
            [(_local(purchase.occurred_at), purchase.store,
              format_html('<a href="{}">{}</a>', reverse("admin:membership_purchase_change", args=[purchase.pk]),
                          purchase.receipt_no),
              purchase.amount, purchase.returned_amount, purchase.points_earned) for purchase in purchases],
            footer=format_html('<a href="{}">{}</a>', url, gettext("All purchases of this member")),
        )

    @admin.display(description=_("tier changes"))
    def tier_history(self, obj):
        changes = list(obj.tier_changes.select_related("from_tier", "to_tier", "actor")
                       .order_by("-created_at", "-pk")[:RECENT_TIER_CHANGES])
        if not changes:
            return gettext("No tier changes.")
        url = reverse("admin:membership_tierchange_changelist") + f"?member__id__exact={obj.pk}"
        return _table(
            [gettext("time"), gettext("from tier"), gettext("to tier"), gettext("reason"), gettext("qualifying spend"),
             gettext("note"), gettext("by")],
            [(_local(change.created_at), change.from_tier or "-", change.to_tier or "-",
              change.get_reason_display(), change.spend if change.spend is not None else "-", change.note or "-",
              change.actor or "-") for change in changes],
            footer=format_html('<a href="{}">{}</a>', url, gettext("Every tier change of this member")),
        )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ["name", ("id_type", "id_number"), ("gender", "birth_date")]}),
                (_("contact"), {"fields": ["phone", "family_phone", "address", "contact_channel",
                                           "marketing_consent"]}),
                (_("registration"), {"fields": ["card_no", "registered_store", "channel", "notes"]}),
            ]
        if self._contact_editable(request, obj):
            contact = ["phone", "family_phone", "address", "contact_channel", "marketing_consent"]
        else:
            # A read-only "phone" row would print the full number: the masked display stands in for it.
            contact = ["phone_shown", "family_phone_shown", "address", "contact_channel", "marketing_consent"]
        return [
            (None, {"fields": ["member_no", "name", "gender", "birth_date_age", "id_type", "id_number_shown",
                               "status", "merged_into_link"]}),
            (_("tier and points"), {"fields": ["earned_tier", "paid_tier_shown", "points_link", "pending_points",
                                               "points_debt_shown"]}),
            (_("contact"), {"fields": [*contact, "marketing_consent_at"]}),
            (_("registration"), {"fields": ["registered_store", "registered_channel", "registered_by",
                                            "registered_at", "notes"]}),
            (_("points ledger"), {"fields": ["recent_points"]}),
            (_("purchases"), {"fields": ["purchases_by_format", "recent_purchases"]}),
            (_("tier changes"), {"fields": ["tier_history"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if self._contact_editable(request, obj):
            return [name for name in _MEMBER_READONLY if name not in (*services.CONTACT_FIELDS, "notes")]
        return _MEMBER_READONLY

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = type("MemberAddForm", (MemberAddForm,),
                                  {"stores_required": not user_is_hq(request.user)})
        else:
            kwargs["form"] = type("MemberChangeForm", (MemberChangeForm,),
                                  {"can_see_full_phone": self._can_see_full(request)})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request, obj):
        if obj is None:
            return []
        return [IdentityInline, MemberCardInline, MemberTagInline, MemberEventInline, ApprovalHistoryInline]

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.show_full_phone = self._can_see_full(request)
        return obj


    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, unquote(object_id))
        # Another store's member looks exactly like a member that does not exist.
        if obj is None:
            raise Http404
        extra_context.update(
            can_reveal=self._can_see_full(request),
            reveal_url=reverse("admin:membership_member_reveal", args=[obj.pk]),
            can_change_status=self._status_changeable(request, obj),
            status_url=reverse("admin:membership_member_status", args=[obj.pk]),
            can_adjust_points=self._points_adjustable(request, obj),
            points_adjust_url=reverse("admin:membership_member_points_adjust", args=[obj.pk]),
            can_sell_paid_tier=self._paid_tier_sellable(request, obj),
            paid_tier_url=reverse("admin:membership_member_paid_tier", args=[obj.pk]),
        )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            store = form.cleaned_data.get("registered_store")
            if not user_can_see_store(request.user, store):
                raise PermissionDenied
            member = services.member_register(data=form.member_input(), store=store, registered_by=request.user,
                                              channel=form.cleaned_data["channel"])
            for field in Member._meta.concrete_fields:
                setattr(obj, field.attname, getattr(member, field.attname))
            obj._state.adding = False
            obj._state.db = member._state.db
            return
        changes = {name: form.cleaned_data[name] for name in services.CONTACT_FIELDS if name in form.changed_data}
        if changes:
            services.member_contact_update(member=obj, actor=request.user, **changes)
        if "notes" in form.changed_data:
            services.member_notes_set(member=obj, notes=form.cleaned_data["notes"], actor=request.user)

    # --- extra pages ------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/reveal/", wrap(self.reveal_view), name="membership_member_reveal"),
            path("<path:object_id>/status/", wrap(self.status_view), name="membership_member_status"),
            path("merge/<int:pk_a>/<int:pk_b>/", wrap(self.merge_view), name="membership_member_merge"),
            path("<path:object_id>/points-adjust/", wrap(self.points_adjust_view),
                 name="membership_member_points_adjust"),
            path("<path:object_id>/paid-tier/", wrap(self.paid_tier_view), name="membership_member_paid_tier"),
            path("points-expiring/", wrap(self.points_expiring_view), name="membership_member_points_expiring"),
            *super().get_urls(),
        ]

    def _page(self, request, template, title, obj=None, **context):
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "original": obj,
            **context,
        })

    def reveal_view(self, request, object_id):
        # The permission is checked before the lookup, so a refusal says nothing about the member.
        if not self._can_see_full(request):
            raise PermissionDenied
        member = self.get_object(request, unquote(object_id))
        if member is None or not self.has_view_permission(request, member):
            raise Http404
        context = {"change_url": _members_url(member), "revealed": False}
        if request.method == "POST":
            try:
                id_number = pii_decrypt(member.id_number_sealed)
            except InvalidPersonalData as error:
                self.message_user(request, str(error.message), messages.ERROR)
                return HttpResponseRedirect(_members_url(member))
            personal_data_access_log(
                user=request.user, action=PersonalDataAccess.Action.REVEAL_ID_NUMBER, subject=member,
                detail="id_number, phone, family_phone", ip_address=client_ip(request),
            )
            context.update(revealed=True, id_number=id_number, phone=member.phone,
                           family_phone=member.family_phone)
        response = self._page(request, "admin/membership/member/reveal.html",
                              gettext("Personal data of %(member)s") % {"member": member}, member, **context)
        response["Cache-Control"] = "no-store"
        return response

    def status_view(self, request, object_id):
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404
        if not self._status_changeable(request, member):
            raise PermissionDenied
        form = StatusForm(request.POST or None, initial={"status": member.status})
        if request.method == "POST" and form.is_valid():
            try:
                services.member_status_set(member=member, status=form.cleaned_data["status"], actor=request.user,
                                           reason=form.cleaned_data["reason"])
            except DomainError as error:
                form.add_error(None, str(error))
            else:
                member.refresh_from_db()
                self.message_user(request, gettext("%(member)s is now %(status)s.")
                                  % {"member": member, "status": member.get_status_display()}, messages.SUCCESS)
                return HttpResponseRedirect(_members_url(member))
        return self._page(request, "admin/membership/form_page.html",
                          gettext("Change the status of %(member)s") % {"member": member}, member,
                          form=form, change_url=_members_url(member),
                          submit_label=gettext("Change status"))

    def merge_view(self, request, pk_a, pk_b):
        visible = self.get_queryset(request).select_related("registered_store", "tier")
        pair = {member.pk: member for member in visible.filter(pk__in=[pk_a, pk_b])}
        if pk_a == pk_b or len(pair) != 2:
            raise Http404
        return merge_review(self, request, pair[pk_a], pair[pk_b], candidate=None,
                            back_url=reverse("admin:membership_member_changelist"))

    # --- points adjustments and paid tiers ----------------------------------------------------------

    def _points_adjustable(self, request, obj) -> bool:
        return obj.status != Member.Status.MERGED and request.user.has_perm(PERMISSION_ADJUST_POINTS)

    def _paid_tier_sellable(self, request, obj) -> bool:
        return obj.status in services.LIVE_STATUSES and request.user.has_perm(PERMISSION_SELL_PAID_TIER)

    def _member_for(self, request, object_id, allowed) -> Member:
        # The permission is checked before the lookup, so a refusal says nothing about the member.
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404
        if not allowed(request, member):
            raise PermissionDenied
        return member

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
        pending = ApprovalRequest.objects.filter(
            content_type=ContentType.objects.get_for_model(Member), object_id=str(member.pk),
            action__in=POINTS_ADJUST_ACTIONS, status=ApprovalRequest.Status.PENDING,
        ).select_related("requested_by")
        return self._page(request, "admin/membership/member/points_adjust.html",
                          gettext("Request a points adjustment for %(member)s") % {"member": member}, member,
                          form=form, change_url=_members_url(member), pending=pending,
                          submit_label=gettext("Request the adjustment"))

    def _adjustment_requested(self, request, member, approval):
        approval_url = reverse("admin:approvals_approvalrequest_change", args=[approval.pk])
        if approval.status == ApprovalRequest.Status.PENDING:
            self.message_user(request, format_html(
                '{} <a href="{}">{}</a>',
                gettext("The adjustment waits for another person's approval; the points do not change until then."),
                approval_url, gettext("Approval request #%(id)s") % {"id": approval.pk},
            ), messages.WARNING)
        else:
            self.message_user(request, format_html(
                '{} <a href="{}">{}</a>', gettext("The points were adjusted."),
                approval_url, gettext("Request #%(id)s") % {"id": approval.pk},
            ), messages.SUCCESS)
        return HttpResponseRedirect(_members_url(member))

    def paid_tier_view(self, request, object_id):
        """Sell or renew a paid tier (Plus): the fee and the new end date are shown before confirming."""
        if not request.user.has_perm(PERMISSION_SELL_PAID_TIER):
            raise PermissionDenied
        member = self._member_for(request, object_id, self._paid_tier_sellable)
        stores = stores_visible_to(request.user).exclude(status=Store.Status.CLOSED).order_by("code")
        form = PaidTierAdminForm(request.POST or None, tiers=paid_tiers_on_sale(), stores=stores,
                                 store_required=not user_is_hq(request.user))
        if request.method == "POST" and form.is_valid():
            try:
                subscription = services.paid_tier_buy(
                    member=member, tier=form.cleaned_data["tier"], store=form.cleaned_data.get("store"),
                    operator=request.user, payment_method=form.cleaned_data["payment_method"],
                )
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext(
                    "%(member)s: %(tier)s %(kind)s, fee %(fee)s, valid until %(ends_on)s."
                ) % {"member": member.member_no, "tier": subscription.tier.name,
                     "kind": subscription.get_kind_display(), "fee": subscription.fee,
                     "ends_on": f"{subscription.ends_on:%Y-%m-%d}"}, messages.SUCCESS)
                return HttpResponseRedirect(_members_url(member))
        offers = form.offers(member=member, today=timezone.localdate())
        return self._page(request, "admin/membership/member/paid_tier.html",
                          gettext("Sell or renew a paid tier for %(member)s") % {"member": member}, member,
                          form=form, offers=offers, change_url=_members_url(member),
                          submit_label=gettext("Confirm the sale"))

    # --- points expiring soon ------------------------------------------------------------------------

    def _points_expiring(self, request):
        whole_year = request.GET.get("all") == "1"
        members = queries.points_expiring(within_days=366 if whole_year else None)
        members = scope_queryset(members, request.user, "registered_store").select_related("registered_store")
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
        header = ["member_no", "name", "phone", "family_phone", "preferred_contact", "points", "points_expiring",
                  "expires_on", "store_code"]

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

    # --- actions ------------------------------------------------------------------------------

    def _too_many(self, request, queryset) -> bool:
        if queryset[: MAX_ACTION_MEMBERS + 1].count() > MAX_ACTION_MEMBERS:
            self.message_user(request, gettext("Select at most %(max)d members for this action; "
                                               "for more, tag them by file.") % {"max": MAX_ACTION_MEMBERS},
                              messages.ERROR)
            return True
        return False

    def _action_page(self, request, queryset, form, title, action):
        return self._page(request, "admin/membership/member/action_form.html", title, form=form,
                          action=action, selected=queryset.values_list("pk", flat=True),
                          count=queryset.count(), select_across=request.POST.get("select_across", "0"),
                          index=request.POST.get("index", "0"))

    def _set_status(self, request, queryset, status, title, action):
        if self._too_many(request, queryset):
            return None
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return self._action_page(request, queryset, form, title, action)
        done = 0
        for member in queryset:
            try:
                services.member_status_set(member=member, status=status, actor=request.user,
                                           reason=form.cleaned_data["reason"])
                done += 1
            except DomainError as error:
                self.message_user(request, f"{member.member_no}: {error}", messages.ERROR)
        if done:
            self.message_user(request, ngettext("%(count)d member changed.", "%(count)d members changed.", done)
                              % {"count": done}, messages.SUCCESS)
        return None

    @admin.action(description=_("Freeze selected members"), permissions=["change"])
    def freeze_members(self, request, queryset):
        return self._set_status(request, queryset, Member.Status.FROZEN, gettext("Freeze members"),
                                "freeze_members")

    @admin.action(description=_("Unfreeze selected members"), permissions=["change"])
    def unfreeze_members(self, request, queryset):
        return self._set_status(request, queryset, Member.Status.ACTIVE, gettext("Unfreeze members"),
                                "unfreeze_members")

    @admin.action(description=_("Close selected members"), permissions=["change"])
    def close_members(self, request, queryset):
        return self._set_status(request, queryset, Member.Status.CLOSED, gettext("Close members"),
                                "close_members")

    def _tag_form(self, request, queryset, title, action):
        if self._too_many(request, queryset):
            return None, None
        form = TagChoiceForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return None, self._action_page(request, queryset, form, title, action)
        return form.cleaned_data["tag"], None

    @admin.action(description=_("Add a tag to selected members"), permissions=["change"])
    def tag_members(self, request, queryset):
        tag, page = self._tag_form(request, queryset, gettext("Add a tag"), "tag_members")
        if tag is None:
            return page
        result = services.members_tag(tag=tag, member_nos=queryset.values_list("member_no", flat=True),
                                      actor=request.user)
        self.message_user(request, gettext("Tag %(tag)s: %(added)d added, %(already)d already tagged.")
                          % {"tag": tag, "added": result.added, "already": result.already}, messages.SUCCESS)
        return None

    @admin.action(description=_("Remove a tag from selected members"), permissions=["change"])
    def untag_members(self, request, queryset):
        tag, page = self._tag_form(request, queryset, gettext("Remove a tag"), "untag_members")
        if tag is None:
            return page
        removed = services.members_untag(tag=tag, members=queryset)
        self.message_user(request, gettext("Tag %(tag)s removed from %(count)d members.")
                          % {"tag": tag, "count": removed}, messages.SUCCESS)
        return None

    @admin.action(description=_("Merge the two selected members"), permissions=["merge"])
    def merge_two_members(self, request, queryset):
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:3])
        if len(pks) != 2:
            self.message_user(request, gettext("Select exactly two members to merge."), messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:membership_member_merge", args=pks))

    # --- import and export ----------------------------------------------------------------------

    def has_import_permission(self, request):
        # The import writes members of any store named in the file: a headquarters task.
        return user_is_hq(request.user) and super().has_import_permission(request)

    def get_import_resource_classes(self, request):
        return [MemberFileImportResource]

    def get_export_resource_classes(self, request):
        if request.user.has_perm(PERMISSION_EXPORT_FULL):
            return [MemberMaskedExportResource, MemberFullExportResource]
        return [MemberMaskedExportResource]

    def get_data_for_export(self, request, queryset, **kwargs):
        resource_class = self.choose_export_resource_class(kwargs.get("export_form"), request)
        full = issubclass(resource_class, MemberFullExportResource)
        if full and not request.user.has_perm(PERMISSION_EXPORT_FULL):
            raise PermissionDenied
        data = super().get_data_for_export(request, queryset, **kwargs)
        personal_data_access_log(
            user=request.user, action=PersonalDataAccess.Action.EXPORT,
            detail=f"{len(data)} rows, {'full' if full else 'masked'}", ip_address=client_ip(request),
        )
        return data


# --- merge review -------------------------------------------------------------------------------


def _merge_rows(member_a: Member, member_b: Member) -> list[tuple]:
    def describe(member):
        identities = ", ".join(str(identity) for identity in member.identities.all()[:10])
        cards = ", ".join(card.card_no for card in member.cards.all()[:10])
        return [
            (_("member number"), _member_link(member)),
            (_("name"), member.name),
            (_("gender"), member.get_gender_display()),
            (_("birth date"), member.birth_date or "-"),
            (_("ID number"), member.id_number_masked or "-"),
            (_("phone"), member.phone_masked or "-"),
            (_("family contact phone"), member.family_phone_masked or "-"),
            (_("tier"), member.tier),
            (_("points"), member.points),
            (_("registering store"), member.registered_store or "-"),
            (_("registered at"), member.registered_at.strftime("%Y-%m-%d")),
            (_("status"), member.get_status_display()),
            (_("identities"), identities or "-"),
            (_("member cards"), cards or "-"),
        ]

    rows_a, rows_b = describe(member_a), describe(member_b)
    return [(label, value_a, value_b, str(value_a) != str(value_b))
            for (label, value_a), (_label, value_b) in zip(rows_a, rows_b, strict=True)]


def merge_review(model_admin, request, member_a: Member, member_b: Member, *, candidate, back_url):
    """The two records side by side: merge one into the other, or record that they are two people."""
    may_merge = request.user.has_perm(PERMISSION_MERGE)
    form = MergeReviewForm(request.POST if "_merge" in request.POST else None, member_a=member_a, member_b=member_b)
    if request.method == "POST":
        if not may_merge:
            raise PermissionDenied
        if "_dismiss" in request.POST and candidate is not None:
            try:
                services.merge_candidate_dismiss(candidate=candidate, actor=request.user)
            except DomainError as error:
                model_admin.message_user(request, str(error), messages.ERROR)
            else:
                model_admin.message_user(request, gettext("Recorded: %(a)s and %(b)s are not the same person.")
                                         % {"a": member_a.member_no, "b": member_b.member_no}, messages.SUCCESS)
            return HttpResponseRedirect(back_url)
        if form.is_valid():
            survivor = form.members[form.cleaned_data["survivor"]]
            merged = member_b if survivor.pk == member_a.pk else member_a
            try:
                approval = services.member_merge_request(survivor=survivor, merged=merged, requested_by=request.user,
                                                         reason=form.cleaned_data["reason"], candidate=candidate)
            except DomainError as error:
                form.add_error(None, str(error))
            else:
                return _merge_done(model_admin, request, approval, survivor, merged)
    context = {
        "member_a": member_a,
        "member_b": member_b,
        "rows": _merge_rows(member_a, member_b),
        "form": form,
        "candidate": candidate,
        "may_merge": may_merge,
        "ids_conflict": services.ids_conflict(member_a, member_b),
        "back_url": back_url,
        "opts": model_admin.opts,
    }
    return TemplateResponse(request, "admin/membership/merge_review.html", {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Merge review: %(a)s and %(b)s") % {"a": member_a.member_no, "b": member_b.member_no},
        **context,
    })


def _merge_done(model_admin, request, approval, survivor, merged):
    approval_url = reverse("admin:approvals_approvalrequest_change", args=[approval.pk])
    if approval.status == ApprovalRequest.Status.PENDING:
        model_admin.message_user(request, format_html(
            '{} <a href="{}">{}</a>',
            gettext("The ID numbers differ, so another person must approve this merge."),
            approval_url, gettext("Approval request #%(id)s") % {"id": approval.pk},
        ), messages.WARNING)
        return HttpResponseRedirect(approval_url)
    model_admin.message_user(request, format_html(
        '{} <a href="{}">{}</a>',
        gettext("%(merged)s was merged into %(survivor)s.") % {"merged": merged.member_no,
                                                                "survivor": survivor.member_no},
        approval_url, gettext("Request #%(id)s") % {"id": approval.pk},
    ), messages.SUCCESS)
    return HttpResponseRedirect(_members_url(survivor))


def _side(attribute: str, label, getter):
    """A list column showing one value of member A or member B of a candidate."""

    def display(self, obj):
        return getter(getattr(obj, attribute))

    display.short_description = label
    return display


class CandidateStatusFilter(DefaultStatusFilter):
    """The review list opens on the pairs still to review."""

    status_choices = MergeCandidate.Status.choices
    default = MergeCandidate.Status.OPEN


@admin.register(MergeCandidate)
class MergeCandidateAdmin(ReadOnlyAdminMixin, BaseAdmin):
    store_path = ("member_a__registered_store", "member_b__registered_store")
    list_display = ["detected_at", "reason", "status", "review_link",
                    "a_name", "a_phone", "a_id_number", "a_birth_date", "a_points", "a_store",
                    "b_name", "b_phone", "b_id_number", "b_birth_date", "b_points", "b_store"]
    list_filter = [CandidateStatusFilter, "reason"]
    list_select_related = ["member_a__registered_store", "member_b__registered_store"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    change_list_template = "admin/membership/mergecandidate/change_list.html"

    def get_queryset(self, request):
        # A pair is shown to store staff only when both records belong to their stores.
        queryset = super().get_queryset(request)
        queryset = scope_queryset(queryset, request.user, "member_a__registered_store")
        return scope_queryset(queryset, request.user, "member_b__registered_store")

    @admin.display(description=_("review"))
    def review_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:membership_mergecandidate_review", args=[obj.pk]),
                           gettext("review"))

    a_name = _side("member_a", _("A: name"), lambda m: m.name)
    a_phone = _side("member_a", _("A: phone"), lambda m: m.phone_masked or m.family_phone_masked or "-")
    a_id_number = _side("member_a", _("A: ID number"), lambda m: m.id_number_masked or "-")
    a_birth_date = _side("member_a", _("A: birth date"), lambda m: m.birth_date or "-")
    a_points = _side("member_a", _("A: points"), lambda m: m.points)
    a_store = _side("member_a", _("A: store"), lambda m: m.registered_store or "-")
    b_name = _side("member_b", _("B: name"), lambda m: m.name)
    b_phone = _side("member_b", _("B: phone"), lambda m: m.phone_masked or m.family_phone_masked or "-")
    b_id_number = _side("member_b", _("B: ID number"), lambda m: m.id_number_masked or "-")
    b_birth_date = _side("member_b", _("B: birth date"), lambda m: m.birth_date or "-")
    b_points = _side("member_b", _("B: points"), lambda m: m.points)
    b_store = _side("member_b", _("B: store"), lambda m: m.registered_store or "-")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/review/", wrap(self.review_view), name="membership_mergecandidate_review"),
            path("detect/", wrap(require_POST(self.detect_view)), name="membership_mergecandidate_detect"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["may_detect"] = request.user.has_perm(PERMISSION_MERGE)
        return super().changelist_view(request, extra_context)

    def review_view(self, request, object_id):
        candidate = self.get_object(request, unquote(object_id))
        if candidate is None:
            raise Http404
        members = Member.objects.select_related("registered_store", "tier")
        return merge_review(self, request, members.get(pk=candidate.member_a_id),
                            members.get(pk=candidate.member_b_id), candidate=candidate,
                            back_url=reverse("admin:membership_mergecandidate_changelist"))

    def detect_view(self, request):
        if not request.user.has_perm(PERMISSION_MERGE):
            raise PermissionDenied
        merge_candidates_detect.delay()
        self.message_user(request, gettext("Duplicate detection has started; new candidates appear in this list "
                                           "when it finishes."), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:membership_mergecandidate_changelist"))


# --- tags -------------------------------------------------------------------------------------


@admin.register(Tag)
class TagAdmin(BaseAdmin):
    list_display = ["name", "description", "member_count", "bulk_link", "created_at"]
    search_fields = ["name"]
    change_form_template = "admin/membership/tag/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("member_tags"))

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(description=_("tag by file"))
    def bulk_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:membership_tag_bulk", args=[obj.pk]),
                           gettext("upload member numbers"))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/bulk/", wrap(self.bulk_view), name="membership_tag_bulk"),
            path("<path:object_id>/bulk/unknown.csv", wrap(require_POST(self.unknown_csv_view)),
                 name="membership_tag_bulk_unknown"),
            *super().get_urls(),
        ]

    def _tag_for_bulk(self, request, object_id) -> Tag:
        tag = self.get_object(request, unquote(object_id))
        if tag is None:
            raise Http404
        if not self.has_change_permission(request, tag):
            raise PermissionDenied
        return tag

    def bulk_view(self, request, object_id):
        tag = self._tag_for_bulk(request, object_id)
        form = BulkTagForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            try:
                numbers = member_numbers_from_file(form.cleaned_data["file"])
            except MemberNumberFileError as error:
                form.add_error("file", str(error.message))
            else:
                result = self._tag_numbers(request, tag, numbers)
        return TemplateResponse(request, "admin/membership/tag/bulk_tag.html", {
            **self.admin_site.each_context(request),
            "title": gettext("Tag members by file: %(tag)s") % {"tag": tag},
            "opts": self.opts,
            "original": tag,
            "form": form,
            "result": result,
            "unknown_shown": result.unknown[:200] if result else [],
            "unknown_all": "\n".join(result.unknown) if result else "",
            "change_url": reverse("admin:membership_tag_change", args=[tag.pk]),
            "unknown_url": reverse("admin:membership_tag_bulk_unknown", args=[tag.pk]),
        })

    def _tag_numbers(self, request, tag, numbers):
        wanted = list(dict.fromkeys(numbers))
        if not user_is_hq(request.user):
            # Members of other stores are not the user's to tag: they are reported as unknown.
            visible = set()
            for start in range(0, len(wanted), 5000):
                visible.update(scope_queryset(Member.objects.filter(member_no__in=wanted[start:start + 5000]),
                                              request.user, "registered_store").values_list("member_no", flat=True))
            result = services.members_tag(tag=tag, member_nos=[no for no in wanted if no in visible],
                                          actor=request.user)
            result.unknown = [no for no in wanted if no not in visible]
            return result
        return services.members_tag(tag=tag, member_nos=wanted, actor=request.user)

    def unknown_csv_view(self, request, object_id):
        tag = self._tag_for_bulk(request, object_id)
        numbers = [line.strip() for line in request.POST.get("numbers", "").splitlines() if line.strip()]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["member_no"])
        writer.writerows([escape_cell(number)] for number in numbers)
        response = HttpResponse("\ufeff" + buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="unknown-member-numbers-tag-{tag.pk}.csv"'
        return response


# --- tiers, cards, identities, points ---------------------------------------------------------------


class ExactSearchMixin:
    """Search by one exact, indexed column (`exact_search_field`); never a LIKE over the table."""

    exact_search_field = ""

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(**{self.exact_search_field: term}), False


class MemberRowAdmin(ExactSearchMixin, ReadOnlyAdminMixin, BaseAdmin):
    """Read-only rows that belong to a member, on tables that grow with the members (no full counts)."""

    store_path = "member__registered_store"
    show_full_result_count = False
    paginator = CappedCountPaginator

    @admin.display(description=_("member"))
    def member_link(self, obj):
        return _member_link(obj.member)


@admin.register(MemberCard)
class MemberCardAdmin(MemberRowAdmin):
    list_display = ["card_no", "member_link", "status", "issued_at", "issued_store"]
    list_filter = ["status"]
    list_select_related = ["member", "issued_store"]
    search_fields = ["card_no"]
    search_help_text = _("Exact member card number.")
    exact_search_field = "card_no"


@admin.register(MemberIdentity)
class MemberIdentityAdmin(MemberRowAdmin):
    list_display = ["external_no", "source", "kind", "member_link", "created_at"]
    list_filter = ["kind", "source"]
    list_select_related = ["member"]
    search_fields = ["external_no"]
    search_help_text = _("Exact number in the other system.")
    exact_search_field = "external_no"


@admin.register(PersonalDataAccess)
class PersonalDataAccessAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The PIPL audit trail: who saw a full ID number or exported personal data."""

    list_display = ["created_at", "user", "action", "object_repr", "detail", "ip_address"]
    list_filter = ["action", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["=object_id", "=user__username"]
    search_help_text = _("Exact subject id or user name.")


# --- tiers, points rules, purchases and gifts -------------------------------------------------------


class StoreFilter(admin.SimpleListFilter):
    """The stores the user may see, by code; rows are filtered on their own store column."""

    title = _("store")
    parameter_name = "store"
    store_field = "store_id"

    def lookups(self, request, model_admin):
        stores = stores_visible_to(request.user).order_by("code").values_list("pk", "code", "name")
        return [(str(pk), f"{code} {name}") for pk, code, name in stores]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(**{self.store_field: int(value)})
        return queryset


class PurchaseStoreFilter(StoreFilter):
    store_field = "purchase__store_id"


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = ["code", "name", "kind", "rank", "is_active", "points_multiplier", "discount_text", "benefits",
                  "threshold", "grace_days", "fee", "term_months"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == Tier.Kind.PAID and not cleaned.get("fee"):
            self.add_error("fee", gettext("A paid tier needs a fee."))
        return cleaned


@admin.register(Tier)
class TierAdmin(BaseAdmin):
    """Tier configuration: what earns each tier, what it gives, and what a paid tier costs (history kept)."""

    form = TierForm
    list_display = ["code", "name", "kind", "rank", "threshold", "points_multiplier", "discount_text", "grace_days",
                    "fee", "term_months", "is_active"]
    list_display_links = ["code", "name"]
    list_filter = ["kind", "is_active"]
    search_fields = ["=code", "name"]
    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "rank", "is_active"]}),
        (_("benefits"), {"fields": ["points_multiplier", "discount_text", "benefits"]}),
        (_("earned tiers"), {"fields": ["threshold", "grace_days"],
                             "description": _("The spend window is set in the points policy.")}),
        (_("paid tiers"), {"fields": ["fee", "term_months"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # POS systems and the CONTRACT know tiers by code: it stays as created.
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


class PointsPolicyForm(forms.ModelForm):
    class Meta:
        model = PointsPolicy
        fields = ["cash_points", "cash_value", "cash_min_points", "cash_max_points", "expiry_enabled", "expiry_years",
                  "expiry_notice_days", "tier_window_months"]

    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("cash_min_points"), cleaned.get("cash_max_points")
        if low is not None and high is not None and low > high:
            self.add_error("cash_max_points", gettext("The maximum must not be below the minimum."))
        return cleaned


@admin.register(PointsPolicy)
class PointsPolicyAdmin(BaseAdmin):
    """The group's one points policy: the list opens the row itself; it is never added twice or deleted."""

    form = PointsPolicyForm
    list_display = ["__str__", "cash_points", "cash_value", "cash_min_points", "cash_max_points", "expiry_enabled",
                    "expiry_years", "expiry_notice_days", "tier_window_months", "updated_at"]
    fieldsets = [
        (_("points to cash"), {"fields": ["cash_points", "cash_value", "cash_min_points", "cash_max_points"]}),
        (_("expiry"), {"fields": ["expiry_enabled", "expiry_years", "expiry_notice_days"]}),
        (_("tiers"), {"fields": ["tier_window_months"]}),
    ]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not PointsPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        policy = PointsPolicy.objects.first()
        if policy is not None and self.has_view_or_change_permission(request, policy):
            return HttpResponseRedirect(reverse("admin:membership_pointspolicy_change", args=[policy.pk]))
        return super().changelist_view(request, extra_context)


@admin.register(EarnRule)
class EarnRuleAdmin(BaseAdmin):
    """Points per format; a format without a rule earns 1 point per yuan with no exclusions."""

    list_display = ["format", "amount_per_point", "excluded_list", "pending_days", "is_active"]
    list_select_related = ["format"]
    list_filter = ["is_active"]

    @admin.display(description=_("excluded categories"))
    def excluded_list(self, obj):
        return ", ".join(sorted(obj.excluded_category_set)) or "-"

    def get_readonly_fields(self, request, obj=None):
        return ["format"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


# --- gifts ----------------------------------------------------------------------------------------


class GiftStockInline(ReadOnlyInline):
    model = GiftStock
    fields = ["store", "quantity", "stock_link"]
    readonly_fields = fields
    ordering = ["store__code"]

    @admin.display(description=_("stock history"))
    def stock_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:membership_giftstock_change", args=[obj.pk]),
                           gettext("movements"))

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request).select_related("store"), request.user, "store")


@admin.register(Gift)
class GiftAdmin(BaseAdmin):
    """The points gift catalogue (礼品); stock per store is received and counted on the gift stock pages."""

    list_display = ["code", "name", "points", "is_active", "stock_total", "stock_link"]
    list_display_links = ["code", "name"]
    list_filter = ["is_active"]
    search_fields = ["=code", "name"]
    inlines = [GiftStockInline]

    def get_queryset(self, request):
        stocks = scope_queryset(GiftStock.objects.all(), request.user, "store").values("pk")
        return super().get_queryset(request).annotate(
            stock_total=Sum("stocks__quantity", filter=Q(stocks__in=stocks))
        )

    @admin.display(description=_("in stock"), ordering="stock_total")
    def stock_total(self, obj):
        return obj.stock_total or 0

    @admin.display(description=_("stock"))
    def stock_link(self, obj):
        url = reverse("admin:membership_giftstock_changelist") + f"?gift__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("by store"))

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


class GiftStockMovementInline(ReadOnlyInline):
    model = GiftStockMovement
    fields = ["created_at", "kind", "quantity", "quantity_after", "reason", "operator"]
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]
    verbose_name_plural = _("stock history (latest first)")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("operator")


@admin.register(GiftStock)
class GiftStockAdmin(ReadOnlyAdminMixin, BaseAdmin):
    """Stock of each gift per store. Read-only here: it changes only by receiving, counting or redeeming."""

    store_path = "store"
    list_display = ["store", "gift", "quantity"]
    list_select_related = ["store", "gift"]
    list_filter = [StoreFilter, "gift"]
    inlines = [GiftStockMovementInline]
    change_list_template = "admin/membership/giftstock/change_list.html"
    change_form_template = "admin/membership/giftstock/change_form.html"

    def may_change_stock(self, request) -> bool:
        return request.user.has_perm(PERMISSION_GIFT_STOCK)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("receive/", wrap(self.receive_view), name="membership_giftstock_receive"),
            path("<path:object_id>/correct/", wrap(self.correct_view), name="membership_giftstock_correct"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_change_stock": self.may_change_stock(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "may_change_stock": self.may_change_stock(request),
            "correct_url": reverse("admin:membership_giftstock_correct", args=[object_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _page(self, request, title, form, *, obj=None, back_url, submit_label):
        return TemplateResponse(request, "admin/membership/form_page.html", {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "original": obj,
            "form": form,
            "change_url": back_url,
            "submit_label": submit_label,
        })

    def receive_view(self, request):
        """Goods in: a delivery of gifts to a store the user may act for."""
        if not self.may_change_stock(request):
            raise PermissionDenied
        stores = stores_visible_to(request.user).exclude(status=Store.Status.CLOSED).order_by("code")
        initial = {key: request.GET[key] for key in ("gift", "store") if request.GET.get(key, "").isdigit()}
        form = GiftStockReceiveForm(request.POST or None, stores=stores, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.gift_stock_receive(gift=data["gift"], store=data["store"], quantity=data["quantity"],
                                            operator=request.user, reason=data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("%(quantity)d × %(gift)s received at %(store)s.") % {
                    "quantity": data["quantity"], "gift": data["gift"].name, "store": data["store"].code,
                }, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:membership_giftstock_changelist"))
        return self._page(request, gettext("Receive gift stock"), form,
                          back_url=reverse("admin:membership_giftstock_changelist"),
                          submit_label=gettext("Receive"))

    def correct_view(self, request, object_id):
        """A stock count that differs from the books: the difference is booked as a correction."""
        if not self.may_change_stock(request):
            raise PermissionDenied
        stock = self.get_object(request, unquote(object_id))
        if stock is None:
            raise Http404
        back_url = reverse("admin:membership_giftstock_change", args=[stock.pk])
        form = GiftStockCorrectForm(request.POST or None,
                                    initial={"quantity": stock.quantity, "seen": stock.quantity})
        if request.method == "POST" and form.is_valid():
            counted, seen = form.cleaned_data["quantity"], form.cleaned_data["seen"]
            try:
                if stock.quantity != seen:
                    # A desk gave some out while the shelf was counted: the count must be checked again.
                    raise GiftInvalid(fields={"quantity": [gettext(
                        "The stock changed from %(seen)d to %(now)d while you counted; check the count again."
                    ) % {"seen": seen, "now": stock.quantity}]})
                if counted == seen:
                    raise GiftInvalid(fields={"quantity": [
                        gettext("The count matches the books: nothing to correct.")
                    ]})
                services.gift_stock_adjust(gift=stock.gift, store=stock.store, quantity=counted - seen,
                                           operator=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("Stock of %(gift)s at %(store)s is now %(quantity)d.") % {
                    "gift": stock.gift.name, "store": stock.store.code, "quantity": counted,
                }, messages.SUCCESS)
                return HttpResponseRedirect(back_url)
        return self._page(request, gettext("Correct the stock of %(stock)s") % {"stock": stock}, form, obj=stock,
                          back_url=back_url, submit_label=gettext("Book the correction"))


@admin.register(GiftRedemption)
class GiftRedemptionAdmin(MemberRowAdmin):
    store_path = "store"
    list_display = ["created_at", "member_link", "gift", "quantity", "points", "store", "operator"]
    list_filter = [StoreFilter, "gift", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "gift", "store", "operator"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at"]


# --- purchases ----------------------------------------------------------------------------------


class PurchaseReturnInline(ReadOnlyInline):
    model = PurchaseReturn
    fields = ["occurred_at", "store", "receipt_no", "amount", "points_reversed", "points_debt"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("store")


@admin.register(Purchase)
class PurchaseAdmin(MemberRowAdmin):
    """Receipts from every format's POS that named a member; written only by the POS API."""

    store_path = "store"
    list_display = ["occurred_at", "store", "format", "receipt_no", "member_link", "amount", "returned_amount",
                    "points_earned", "payment_method"]
    list_filter = ["format", StoreFilter, ("occurred_at", admin.DateFieldListFilter)]
    list_select_related = ["store", "format", "member"]
    search_fields = ["receipt_no"]
    search_help_text = _("Exact receipt number or member number.")
    sortable_by = ["occurred_at"]
    readonly_fields = ["member_link", "store", "format", "legal_entity", "terminal", "receipt_no", "amount",
                       "returned_amount", "occurred_at", "payment_method", "lines_table", "points_earned",
                       "points_entries", "created_at"]
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

    @admin.display(description=_("lines"))
    def lines_table(self, obj):
        lines = [line for line in (obj.lines or []) if isinstance(line, dict)]
        if not lines:
            return "-"
        return _table([gettext("SKU"), gettext("category"), gettext("amount"), gettext("quantity")],
                      [(line.get("sku", ""), line.get("category", ""), line.get("amount", ""),
                        line.get("quantity", "")) for line in lines])

    @admin.display(description=_("points entries"))
    def points_entries(self, obj):
        entries = PointsEntry.objects.filter(
            member_id=obj.member_id, cause_type=ContentType.objects.get_for_model(Purchase), cause_id=str(obj.pk),
        ).select_related("legal_entity").order_by("created_at", "pk")
        rows = [(_local(entry.created_at), entry.get_kind_display(), f"{entry.points:+d}",
                 entry.balance_after, entry.legal_entity.name if entry.legal_entity else "-", entry.reason or "-")
                for entry in entries]
        hold = PointsHold.objects.filter(purchase=obj).first()
        footer = None
        if hold is not None:
            footer = gettext("%(points)d points held until %(date)s: %(status)s.") % {
                "points": hold.remaining, "date": _local(hold.available_at),
                "status": hold.get_status_display(),
            }
        if not rows:
            return footer or gettext("No points entries.")
        return _table([gettext("time"), gettext("kind"), gettext("points"), gettext("balance after"),
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


@admin.register(TierSubscription)
class TierSubscriptionAdmin(MemberRowAdmin):
    """Paid tier terms sold and renewed, with their fee and the selling store."""

    store_path = "store"
    list_display = ["created_at", "member_link", "tier", "kind", "starts_on", "ends_on", "fee", "payment_method",
                    "store", "operator"]
    list_filter = ["tier", "kind", StoreFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "tier", "store", "operator"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at", "ends_on"]
