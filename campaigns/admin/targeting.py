"""Admin screens for targeted campaigns (营销 → 精准营销), their members and the calls made from their call lists.

A campaign is a draft while marketing shapes it (saved through campaign_save, whose refusals stand next to the
fields), then goes for approval (campaign_submit, after the page has shown the estimated cost and the campaigns
that reach the same members in the same days), runs and ends by the nightly switch. Its page shows the results
against the control group, overall, per store and per format, and downloads them as Excel.

The reach files carry full names, phones and addresses: each needs `campaigns.export_campaign_contacts`, is kept
in the personal-data access log and marks the members it lists as reached (contacts_mark_reached). Campaigns are
headquarters' records; the members on a campaign and the calls made are store-scoped, so a store manager sees their
own store's rows only.
"""

import csv
import io
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from approvals.admin import ApprovalHistoryInline, approval_outcome_message
from campaigns.models import CallAttempt, CampaignMember, CouponTemplate, TargetedCampaign
from campaigns.queries import coupon_discount_text
from campaigns.queries_targeting import call_list, campaign_results
from campaigns.services.targeting import (
    campaign_cancel,
    campaign_estimate,
    campaign_overlaps,
    campaign_save,
    campaign_submit,
    contacts_mark_reached,
    message_fill,
)
from core.admin import (
    CappedCountPaginator,
    ReadOnlyAdminMixin,
    ServiceCallsMixin,
    ServiceRefusalMixin,
    change_page,
    copy_saved,
    local_time,
    summary_table,
)
from core.errors import DomainError
from core.files import escape_cell, xlsx_cells, xlsx_file_response, xlsx_money
from core.forms import add_service_error
from core.http import client_ip
from core.models import PersonalDataAccess
from core.numbers import money_display
from core.services import personal_data_access_log
from stores.admin_base import BaseAdmin, HeadquartersRecordsMixin, StoreFilter
from stores.models import Store
from stores.queries import user_is_hq

TEMPLATES = "admin/campaigns/targetedcampaign"
PERMISSION_CHANGE = "campaigns.change_targetedcampaign"
PERMISSION_EXPORT = "campaigns.export_campaign_contacts"
PERCENT_XLSX_FORMAT = "0.00%"
LETTERS_PER_PAGE = 500

Status = TargetedCampaign.Status
Channel = CampaignMember.Channel

TERMS = ["name", "description", "segment", "control_percent", "starts_on", "ends_on", "budget", "legal_entity",
         "coupon_template", "points", "tag", "message_text", "call_list", "call_script", "result_days"]
STATE = ["code", "status", "scenario", "snapshot", "target_count", "control_count", "started_at", "ended_at",
         "created_by", "created_at"]
CANCELLABLE = (Status.DRAFT, Status.PENDING, Status.SCHEDULED)
STARTED = (Status.RUNNING, Status.ENDED)


# --- results as people read them ------------------------------------------------------------------------------

# (key of campaign_results' rows, label, kind): kind says how the figure shows on the page and in Excel.
RESULT_FIGURES = [
    ("targeted", _("targeted"), "count"),
    ("control", _("control group"), "count"),
    ("reached", _("reached"), "count"),
    ("coupons_redeemed", _("coupons redeemed"), "count"),
    ("buyers_target", _("buyers (targeted)"), "count"),
    ("buyers_control", _("buyers (control group)"), "count"),
    ("conversion_target", _("conversion (targeted)"), "rate"),
    ("conversion_control", _("conversion (control group)"), "rate"),
    ("uplift_conversion", _("uplift in conversion"), "uplift_rate"),
    ("sales_target", _("sales (targeted)"), "money"),
    ("sales_control", _("sales (control group)"), "money"),
    ("sales_per_member_target", _("sales per member (targeted)"), "money"),
    ("sales_per_member_control", _("sales per member (control group)"), "money"),
    ("uplift_sales_per_member", _("uplift in sales per member"), "uplift_money"),
    ("cost", _("cost"), "money"),
]
# The narrower tables per store and per format: the figures that answer "where did it work".
RESULT_COLUMNS = ["targeted", "control", "reached", "coupons_redeemed", "conversion_target", "conversion_control",
                  "uplift_conversion", "sales_target", "sales_per_member_target", "sales_per_member_control",
                  "uplift_sales_per_member", "cost"]
FIGURES = {key: (label, kind) for key, label, kind in RESULT_FIGURES}


def _interval(row: dict, key: str) -> tuple:
    """The 95% interval of an uplift: (low, high), either None when it cannot be computed."""
    return row.get(f"{key}_low"), row.get(f"{key}_high")


def _percent(value, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{Decimal(str(value)) * 100:{'+' if signed else ''}.1f}%"


def _figure_text(row: dict, key: str) -> str:
    """A result figure as the page shows it: counts as they are, money as money, shares as percentages, an uplift
    with its 95% interval."""
    _label, kind = FIGURES[key]
    value = row.get(key)
    if kind == "money":
        return money_display(value) if value is not None else "-"
    if kind == "rate":
        return _percent(value)
    if kind in ("uplift_rate", "uplift_money"):
        if value is None:
            return "-"
        low, high = _interval(row, key)
        if kind == "uplift_rate":
            text, low_text, high_text = (_percent(item, signed=True) for item in (value, low, high))
        else:
            text, low_text, high_text = (money_display(item, signed=True) if item is not None else "-"
                                         for item in (value, low, high))
        if low is None or high is None:
            return text
        return gettext("%(value)s (95%% interval %(low)s to %(high)s)") % {
            "value": text, "low": low_text, "high": high_text}
    return "-" if value is None else value


def _row_label(row: dict) -> str:
    """The store or the format a row of results is about."""
    return str(row.get("label") or "-")


def _xlsx_figure_cells(sheet, row: dict, key: str) -> list:
    """A figure as Excel cells: numbers as numbers (money '#,##0.00', shares '0.00%'); an uplift is three cells,
    the value and its interval."""
    from openpyxl.cell import WriteOnlyCell

    _label, kind = FIGURES[key]
    value = row.get(key)

    def percent_cell(number):
        if number is None:
            return ""
        cell = WriteOnlyCell(sheet, value=float(number))
        cell.number_format = PERCENT_XLSX_FORMAT
        return cell

    if kind == "money":
        return xlsx_cells(sheet, [xlsx_money(value)])
    if kind == "rate":
        return [percent_cell(value)]
    if kind == "uplift_rate":
        return [percent_cell(item) for item in (value, *_interval(row, key))]
    if kind == "uplift_money":
        return xlsx_cells(sheet, [xlsx_money(item) for item in (value, *_interval(row, key))])
    return [value if value is not None else ""]


def _xlsx_header(key: str) -> list[str]:
    label, kind = FIGURES[key]
    if kind in ("uplift_rate", "uplift_money"):
        return [str(label), gettext("%(figure)s, 95%% low") % {"figure": label},
                gettext("%(figure)s, 95%% high") % {"figure": label}]
    return [str(label)]


# --- the campaign's form ---------------------------------------------------------------------------------------


class TargetedCampaignForm(forms.ModelForm):
    """A draft's terms. Saving goes through campaign_save once the fields themselves are valid; what it refuses
    stands next to the field it names."""

    operator = None  # the user saving, set by the admin

    class Meta:
        model = TargetedCampaign
        fields = TERMS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.saved = None
        if "coupon_template" in self.fields:
            current = self.instance.coupon_template_id if self.instance.pk else None
            self.fields["coupon_template"].queryset = CouponTemplate.objects.filter(
                Q(status__in=[CouponTemplate.Status.DRAFT, CouponTemplate.Status.PENDING,
                              CouponTemplate.Status.ACTIVE, CouponTemplate.Status.PAUSED]) | Q(pk=current))

    def _post_clean(self):
        # The service is the one check of a draft's terms (the model's constraints would only repeat its dates
        # check in words nobody reads); the admin then copies its saved row (save_model).
        if self.errors:
            return
        values = {name: self.cleaned_data.get(name) for name in TERMS if name in self.fields}
        try:
            self.saved = campaign_save(campaign=self.instance if self.instance.pk else None, values=values,
                                       operator=self.operator)
        except DomainError as error:
            add_service_error(self, error)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=200, widget=forms.TextInput(attrs={"size": 60}))


class SubmitForm(forms.Form):
    reason = forms.CharField(
        label=_("note for the approver"), max_length=200, required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text=_("Why this campaign, and why despite any overlap shown above."),
    )


@admin.register(TargetedCampaign)
class TargetedCampaignAdmin(HeadquartersRecordsMixin, ServiceCallsMixin, ServiceRefusalMixin, BaseAdmin):
    form = TargetedCampaignForm
    change_form_template = f"{TEMPLATES}/change_form.html"
    list_display = ["code", "name", "segment", "status", "starts_on", "ends_on", "target_count", "control_count",
                    "budget"]
    list_filter = ["status", "starts_on", "segment", "call_list"]
    list_select_related = ["segment"]
    search_fields = ["code", "name"]

    # --- the page ------------------------------------------------------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"operator": request.user})

    def get_fieldsets(self, request, obj=None):
        terms = [
            (None, {"fields": ["name", "description", "segment"] if obj is None
                    else ["code", "status", "name", "description", "segment", "scenario"]}),
            (_("days and control group"), {"fields": ["starts_on", "ends_on", "control_percent", "result_days"]}),
            (_("actions"), {"fields": ["coupon_template", "points", "tag", "budget", "legal_entity"],
                            "description": _("What each targeted member gets: a coupon, points, a tag; the "
                                             "control group gets nothing.")}),
            (_("reach"), {"fields": ["message_text", "call_list", "call_script"],
                          "description": _("Each member is reached by the channel they prefer: the SMS or WeChat "
                                           "message file, a printed letter, or a call by their store's clerks.")}),
        ]
        if obj is None:
            return terms
        if obj.status in (Status.DRAFT, Status.PENDING, Status.SCHEDULED):
            terms.append((_("before approval"), {"fields": ["estimate", "overlaps"]}))
        if obj.status in STARTED or obj.target_count:
            terms.append((_("members"), {"fields": ["snapshot", "target_count", "control_count", "started_at",
                                                    "ended_at"]}))
            terms.append((_("results"), {"fields": ["results_overall", "results_by_store", "results_by_format"],
                                         "description": _("Purchases from the first day for the results window, "
                                                          "targeted members against the control group.")}))
        terms.append((_("record"), {"fields": ["created_by", "created_at"]}))
        return terms

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        shown = [*STATE, "estimate", "overlaps", "results_overall", "results_by_store", "results_by_format"]
        if obj.status == Status.DRAFT and self.has_change_permission(request, obj):
            return shown
        return [*TERMS, *shown]

    def has_change_permission(self, request, obj=None):
        # Once submitted the terms are what was approved: the page is read-only, the buttons still work.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == Status.DRAFT)

    def get_inlines(self, request, obj):
        return [ApprovalHistoryInline] if obj is not None else []

    def save_model(self, request, obj, form, change):
        copy_saved(obj, form.saved)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, gettext("Campaign %(code)s is a draft: check the estimate and any overlap on its "
                                           "page, then submit it for approval.") % {"code": obj.code},
                          messages.SUCCESS)
        return change_page(obj)

    # --- read-only parts of the page ------------------------------------------------------------------------------

    @admin.display(description=_("estimate"))
    def estimate(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        try:
            figures = campaign_estimate(campaign=obj)
        except DomainError as error:
            return str(error)
        rows = [
            (gettext("members in the segment now"), figures.get("members", 0)),
            (gettext("targeted"), figures.get("target", 0)),
            (gettext("control group"), figures.get("control", 0)),
            (gettext("highest cost"), figures.get("cost_max")),
            (gettext("budget"), obj.budget),
        ]
        table = summary_table([gettext("figure"), gettext("value")], rows, css_class="campaign-estimate")
        cost_max = figures.get("cost_max")
        if not figures.get("coupon_bounded", True):
            return format_html('{}<p class="errornote">{}</p>', table, gettext(
                "The coupon takes a percent off without a largest discount: the cost has no upper bound."))
        if cost_max is not None and cost_max > obj.budget:
            return format_html('{}<p class="errornote">{}</p>', table, gettext(
                "The highest cost (%(cost)s) is above the budget (%(budget)s): raise the budget or give less.")
                % {"cost": money_display(cost_max), "budget": money_display(obj.budget)})
        return table

    @admin.display(description=_("overlapping campaigns"))
    def overlaps(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        found = self._overlaps(obj)
        if not found:
            return gettext("No other campaign reaches these members in the same days.")
        rows = [(other.code, other.name, other.get_status_display(), other.starts_on, other.ends_on, shared)
                for other, shared in found]
        return summary_table([gettext("code"), gettext("name"), gettext("status"), gettext("first day"),
                              gettext("last day"), gettext("members in both")], rows, css_class="campaign-overlaps")

    def _overlaps(self, obj) -> list:
        try:
            return list(campaign_overlaps(campaign=obj))
        except DomainError:
            return []

    def _results(self, obj, by=None) -> list[dict]:
        cache = obj.__dict__.setdefault("_results_cache", {})
        if by not in cache:
            cache[by] = list(campaign_results(campaign=obj, by=by))
        return cache[by]

    @admin.display(description=_("overall"))
    def results_overall(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        rows = self._results(obj)
        if not rows:
            return "-"
        footer = format_html('<a href="{}">{}</a>', reverse("admin:campaigns_targetedcampaign_results_export",
                                                            args=[obj.pk]), gettext("Download the results (Excel)"))
        return summary_table([gettext("figure"), gettext("value")],
                             [(label, _figure_text(rows[0], key)) for key, label, _kind in RESULT_FIGURES],
                             css_class="campaign-results", footer=footer)

    def _results_table(self, obj, by: str, heading: str):
        rows = self._results(obj, by)
        return summary_table(
            [heading, *(FIGURES[key][0] for key in RESULT_COLUMNS)],
            [(_row_label(row), *(_figure_text(row, key) for key in RESULT_COLUMNS)) for row in rows],
            css_class=f"campaign-results-{by}", empty=gettext("No members yet."))

    @admin.display(description=_("per store"))
    def results_by_store(self, obj):
        return "-" if obj is None or obj.pk is None else self._results_table(obj, "store", gettext("store"))

    @admin.display(description=_("per format"))
    def results_by_format(self, obj):
        return "-" if obj is None or obj.pk is None else self._results_table(obj, "format", gettext("format"))

    # --- who may -------------------------------------------------------------------------------------------------

    def _may(self, request, permission: str) -> bool:
        return user_is_hq(request.user) and request.user.has_perm(permission)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, object_id)
        if campaign is not None:
            manage = self._may(request, PERMISSION_CHANGE)
            export = self._may(request, PERMISSION_EXPORT) and campaign.status in STARTED
            extra_context = {
                **(extra_context or {}),
                "can_submit": manage and campaign.status == Status.DRAFT,
                "can_cancel": manage and campaign.status in CANCELLABLE,
                "can_export": export,
                "can_call_lists": export and campaign.call_list,
                "show_results": campaign.status in STARTED or bool(campaign.target_count),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- pages and buttons -----------------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "campaigns_targetedcampaign"
        return [
            path("<path:object_id>/submit/", wrap(self.submit_view), name=f"{name}_submit"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name=f"{name}_cancel"),
            path("<path:object_id>/results/export/", wrap(self.results_export_view), name=f"{name}_results_export"),
            path("<path:object_id>/export/messages/", wrap(self.messages_export_view),
                 name=f"{name}_export_messages"),
            path("<path:object_id>/export/mail/", wrap(self.mail_export_view), name=f"{name}_export_mail"),
            path("<path:object_id>/export/letters/", wrap(require_GET(self.letters_view)), name=f"{name}_letters"),
            path("<path:object_id>/export/calls/", wrap(self.calls_export_view), name=f"{name}_export_calls"),
            *super().get_urls(),
        ]

    def _campaign(self, request, object_id, permission: str | None = None) -> TargetedCampaign:
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = self.object_or_404(request, object_id)
        if permission is not None and not self._may(request, permission):
            raise PermissionDenied
        return campaign

    def _page(self, request, campaign, title: str, template_name: str, **context):
        return TemplateResponse(request, f"{TEMPLATES}/{template_name}", {
            **self.admin_site.each_context(request),
            "title": title, "opts": self.opts, "original": campaign,
            "change_url": reverse("admin:campaigns_targetedcampaign_change", args=[campaign.pk]),
            **context,
        })

    def submit_view(self, request, object_id):
        """The estimate and the overlapping campaigns first; the request for approval once the user confirms."""
        campaign = self._campaign(request, object_id, PERMISSION_CHANGE)
        if campaign.status != Status.DRAFT:
            self.message_user(request, gettext("Only a draft can be submitted (this campaign is %(status)s).")
                              % {"status": campaign.get_status_display()}, messages.ERROR)
            return change_page(campaign)
        form = SubmitForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                approval = campaign_submit(campaign=campaign, operator=request.user,
                                           reason=form.cleaned_data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                campaign.refresh_from_db()
                done = gettext("Campaign %(code)s is %(status)s: it starts on %(day)s.") % {
                    "code": campaign.code, "status": campaign.get_status_display(), "day": campaign.starts_on}
                if approval is None:
                    self.message_user(request, done, messages.SUCCESS)
                else:
                    approval_outcome_message(
                        self, request, approval,
                        pending=gettext("Campaign %(code)s waits for another person's approval; it is scheduled "
                                        "when it is approved.") % {"code": campaign.code},
                        done=done)
                return change_page(campaign)
        return self._page(request, campaign, gettext("Submit %(code)s for approval") % {"code": campaign.code},
                          "submit.html", form=form, estimate=self.estimate(campaign),
                          overlaps=self._overlaps(campaign))

    def cancel_view(self, request, object_id):
        campaign = self._campaign(request, object_id, PERMISSION_CHANGE)
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                campaign_cancel(campaign=campaign, operator=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("Campaign %(code)s is cancelled.") % {"code": campaign.code},
                                  messages.SUCCESS)
                return change_page(campaign)
        return self._page(request, campaign, gettext("Cancel %(code)s") % {"code": campaign.code},
                          "form_page.html", form=form, submit_label=gettext("Cancel the campaign"))

    def results_export_view(self, request, object_id):
        """The results as Excel: a summary sheet, then one sheet per store and one per format."""
        from openpyxl import Workbook

        campaign = self._campaign(request, object_id)
        workbook = Workbook(write_only=True)
        summary = workbook.create_sheet(title=gettext("Summary")[:31])
        for line in [(gettext("campaign"), f"{campaign.code} {campaign.name}"),
                     (gettext("segment"), str(campaign.segment)),
                     (gettext("days"), f"{campaign.starts_on:%Y-%m-%d} - {campaign.ends_on:%Y-%m-%d}"),
                     (gettext("results window (days)"), campaign.result_days),
                     (gettext("status"), campaign.get_status_display()),
                     (gettext("as of"), local_time(timezone.now()))]:
            summary.append(xlsx_cells(summary, line))
        summary.append([])
        summary.append([gettext("figure"), gettext("value"), gettext("interval low (95 percent)"),
                        gettext("interval high (95 percent)")])
        overall = self._results(campaign)
        for key, label, _kind in RESULT_FIGURES:
            summary.append([escape_cell(str(label)), *_xlsx_figure_cells(summary, overall[0] if overall else {},
                                                                          key)])
        for by, title, heading in (("store", gettext("Per store"), gettext("store")),
                                   ("format", gettext("Per format"), gettext("format"))):
            sheet = workbook.create_sheet(title=title[:31])
            sheet.append([heading, *(text for key in RESULT_COLUMNS for text in _xlsx_header(key))])
            for row in self._results(campaign, by):
                sheet.append([escape_cell(_row_label(row)),
                              *(cell for key in RESULT_COLUMNS for cell in _xlsx_figure_cells(sheet, row, key))])
        return xlsx_file_response(workbook, f"campaign-results-{campaign.code}-{timezone.localdate():%Y%m%d}.xlsx")

    # --- the reach files ---------------------------------------------------------------------------------------------

    def _contacts(self, request, object_id) -> TargetedCampaign:
        campaign = self._campaign(request, object_id, PERMISSION_EXPORT)
        if campaign.status not in STARTED:
            raise Http404
        return campaign

    def _reach(self, campaign, channels) -> object:
        return (CampaignMember.objects.filter(campaign=campaign, group=CampaignMember.Group.TARGET,
                                              channel__in=channels)
                .select_related("member", "store").order_by("store__code", "member__member_no", "pk"))

    def _log(self, request, campaign, what: str, count: int) -> None:
        personal_data_access_log(user=request.user, action=PersonalDataAccess.Action.EXPORT, subject=campaign,
                                 detail=f"{what}, {count} rows", ip_address=client_ip(request))

    def messages_export_view(self, request, object_id):
        """The SMS and WeChat members with their message, for the sending platform (nothing is sent from here)."""
        campaign = self._contacts(request, object_id)
        members = self._reach(campaign, [Channel.SMS, Channel.WECHAT])
        as_excel = request.GET.get("format") == "xlsx"
        self._log(request, campaign, f"campaign message file ({'xlsx' if as_excel else 'csv'})", members.count())
        for channel in (Channel.SMS, Channel.WECHAT):
            contacts_mark_reached(campaign=campaign, channel=channel)
        header = [gettext("member number"), gettext("member name"), gettext("phone"), gettext("channel"),
                  gettext("message")]

        def rows():
            for item in members.iterator(chunk_size=2000):
                member = item.member
                yield (member.member_no, member.name, member.phone, item.get_channel_display(),
                       message_fill(campaign.message_text, member.name))

        filename = f"campaign-messages-{campaign.code}-{timezone.localdate():%Y%m%d}"
        if as_excel:
            return self._xlsx(gettext("Messages"), header, rows(), f"{filename}.xlsx")

        def lines():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(header)
            yield "\ufeff" + buffer.getvalue()
            for row in rows():
                buffer.seek(0)
                buffer.truncate()
                writer.writerow([escape_cell(value) for value in row])
                yield buffer.getvalue()

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        response["Cache-Control"] = "no-store"
        return response

    def _xlsx(self, title: str, header: list, rows, filename: str, sheets=None):
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        for sheet_title, sheet_rows in sheets if sheets is not None else [(title, rows)]:
            sheet = workbook.create_sheet(title=sheet_title[:31])
            sheet.append([escape_cell(str(cell)) for cell in header])
            for row in sheet_rows:
                sheet.append(xlsx_cells(sheet, row))
        response = xlsx_file_response(workbook, filename)
        response["Cache-Control"] = "no-store"
        return response

    def mail_export_view(self, request, object_id):
        """The paper-mail list: who gets a printed letter, and where to send it."""
        campaign = self._contacts(request, object_id)
        members = self._reach(campaign, [Channel.MAIL])
        self._log(request, campaign, "campaign paper-mail list", members.count())
        contacts_mark_reached(campaign=campaign, channel=Channel.MAIL)
        rows = ((item.member.name, item.member.address, item.member.member_no,
                 f"{item.store.code} {item.store.name}" if item.store_id else "")
                for item in members.iterator(chunk_size=2000))
        return self._xlsx(gettext("Paper mail"), [gettext("member name"), gettext("address"),
                                                  gettext("member number"), gettext("store")], rows,
                          f"campaign-mail-{campaign.code}-{timezone.localdate():%Y%m%d}.xlsx")

    def letters_view(self, request, object_id):
        """The letters to print, one per page, in large type (many of these members are elderly)."""
        campaign = self._contacts(request, object_id)
        members = self._reach(campaign, [Channel.MAIL])
        page = Paginator(members, LETTERS_PER_PAGE).get_page(request.GET.get("page"))
        self._log(request, campaign, f"campaign letters, page {page.number}", len(page.object_list))
        # The members whose letters this page prints, not the pages not opened yet.
        contacts_mark_reached(campaign=campaign, channel=Channel.MAIL,
                              campaign_member_ids=[item.pk for item in page.object_list])
        offer = []
        if campaign.coupon_template_id:
            offer.append(gettext("A coupon for you: %(name)s, %(discount)s.") % {
                "name": campaign.coupon_template.name, "discount": coupon_discount_text(campaign.coupon_template)})
        if campaign.points:
            offer.append(ngettext("%(points)s point added to your account.", "%(points)s points added to your account.",
                                  campaign.points) % {"points": campaign.points})
        letters = [{
            "member": item.member, "store": item.store,
            "text": message_fill(campaign.message_text, item.member.name),
        } for item in page.object_list]
        return TemplateResponse(request, f"{TEMPLATES}/letters.html", {
            "campaign": campaign, "letters": letters, "offer": offer, "page": page,
            "change_url": reverse("admin:campaigns_targetedcampaign_change", args=[campaign.pk]),
        })

    def calls_export_view(self, request, object_id):
        """The call lists as Excel: one sheet per store, or the store asked for."""
        campaign = self._contacts(request, object_id)
        store_ids = (CampaignMember.objects.filter(campaign=campaign, group=CampaignMember.Group.TARGET,
                                                   channel=Channel.CALL)
                     .values_list("store_id", flat=True).distinct())
        stores = Store.objects.filter(pk__in=store_ids).order_by("code")
        asked = (request.GET.get("store") or "").strip()
        if asked:
            stores = stores.filter(code=asked.upper())
            if not stores.exists():
                raise Http404
        header = [gettext("member number"), gettext("member name"), gettext("phone"), gettext("family contact phone"),
                  gettext("tier"), gettext("last outcome"), gettext("reached at")]
        sheets = []
        count = 0
        for store in stores:
            rows = call_list(campaign=campaign, store=store).select_related("member", "member__tier").order_by(
                "member__member_no", "pk")
            count += rows.count()
            sheets.append((f"{store.code}", [
                (item.member.member_no, item.member.name, item.member.phone, item.member.family_phone,
                 item.member.tier.name if item.member.tier_id else "", item.get_call_outcome_display(),
                 local_time(item.reached_at)) for item in rows.iterator(chunk_size=2000)]))
        self._log(request, campaign, f"campaign call lists ({asked or 'all stores'})", count)
        if not sheets:
            sheets = [(gettext("Call list"), [])]
        return self._xlsx("", header, None, f"campaign-calls-{campaign.code}{'-' + asked.upper() if asked else ''}"
                          f"-{timezone.localdate():%Y%m%d}.xlsx", sheets=sheets)


# --- the members of campaigns and the calls made: store-scoped, read-only --------------------------------------------


class StartedCampaignFilter(admin.SimpleListFilter):
    """The campaigns that have members (running or ended), newest first."""

    title = _("campaign")
    parameter_name = "campaign"
    campaign_field = "campaign_id"

    def lookups(self, request, model_admin):
        campaigns = TargetedCampaign.objects.filter(status__in=STARTED).order_by("-starts_on", "-pk")[:100]
        return [(str(campaign.pk), f"{campaign.code} {campaign.name}") for campaign in campaigns]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{self.campaign_field: int(value)})


class CallCampaignFilter(StartedCampaignFilter):
    campaign_field = "campaign_member__campaign_id"


class MissingIsNotFoundMixin:
    """Another store's row (or none) by URL is 404, the same for "does not exist" and "not yours"."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._ensure_visible(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(CampaignMember)
class CampaignMemberAdmin(MissingIsNotFoundMixin, ReadOnlyAdminMixin, BaseAdmin):
    """Who is on which campaign, in which group, reached how; store staff see their own store's members."""

    store_path = "store"
    list_display = ["campaign", "member_no", "member_name", "group", "channel", "store", "points_given",
                    "reached_at", "call_outcome"]
    list_filter = [StoreFilter, StartedCampaignFilter, "group", "channel", "call_outcome"]
    list_select_related = ["campaign", "member", "store"]
    search_fields = ["=member__member_no"]
    search_help_text = _("Exact member number.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ["campaign", "member_no", "member_name", "group", "channel", "store", "coupon_text", "points_given",
              "reached_at", "call_outcome"]
    readonly_fields = fields

    @admin.display(description=_("member number"), ordering="member__member_no")
    def member_no(self, obj):
        return obj.member.member_no

    @admin.display(description=_("member name"))
    def member_name(self, obj):
        return obj.member.name

    @admin.display(description=_("coupon"))
    def coupon_text(self, obj):
        return gettext("issued") if obj.coupon_id else "-"

    def get_inlines(self, request, obj):
        return [CallAttemptInline] if obj is not None else []


class CallAttemptInline(admin.TabularInline):
    model = CallAttempt
    fields = ["called_at", "outcome", "note", "store", "called_by"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = _("calls")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CallAttempt)
class CallAttemptAdmin(MissingIsNotFoundMixin, ReadOnlyAdminMixin, BaseAdmin):
    """The calls clerks made from the call lists and how each went; store staff see their own store's calls."""

    store_path = "store"
    list_display = ["called_at", "campaign", "member_no", "member_name", "outcome", "note", "store", "called_by"]
    list_filter = [StoreFilter, CallCampaignFilter, "outcome"]
    list_select_related = ["campaign_member__campaign", "campaign_member__member", "store", "called_by"]
    search_fields = ["=campaign_member__member__member_no"]
    search_help_text = _("Exact member number.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ["called_at", "campaign", "member_no", "member_name", "outcome", "note", "store", "called_by"]
    readonly_fields = fields

    @admin.display(description=_("campaign"))
    def campaign(self, obj):
        return obj.campaign_member.campaign

    @admin.display(description=_("member number"))
    def member_no(self, obj):
        return obj.campaign_member.member.member_no

    @admin.display(description=_("member name"))
    def member_name(self, obj):
        return obj.campaign_member.member.name

