"""Admin screens for segments (营销 → 人群): the rule builder with its live count, snapshots and the Excel of their
members, and the scenario gallery that starts a targeted campaign from a ready scenario.

Thin: the form checks the rules with campaigns.segments.rules_clean and saves through
campaigns.services.segments.segment_save; the count, snapshot, export and scenario buttons call their services and
show their refusals as messages. Segments are headquarters' marketing: store staff see none of them, whatever
permissions their role holds. A snapshot's members leave only as an Excel file whose phone numbers are masked
unless the user holds campaigns.export_segment_members, and every export is written to the personal-data access
log before the file leaves.
"""

import json
import time

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.forms.fields import InvalidJSONInput
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from campaigns.errors import SegmentInvalid
from campaigns.models import Segment, SegmentSnapshot
from campaigns.scenarios import SCENARIOS, scenario_use, scenarios_by_group
from campaigns.segments import conditions_schema, rules_clean, rules_count, rules_describe
from campaigns.services.segments import (
    SEGMENT_MEMBER_COLUMNS,
    segment_count,
    segment_members_rows,
    segment_save,
    segment_snapshot_request,
)
from core.admin import (
    ReadOnlyAdminMixin,
    ServiceCallsMixin,
    ServiceRefusalMixin,
    change_page,
    copy_saved,
    local_time,
    summary_table,
)
from core.errors import DomainError
from core.files import table_xlsx_response
from core.forms import add_service_error
from core.http import client_ip
from core.models import PersonalDataAccess
from core.services import personal_data_access_log
from stores.admin_base import BaseAdmin, HeadquartersOnlyMixin
from stores.queries import user_is_hq

TEMPLATES = "admin/campaigns/segment"
PERMISSION_EXPORT_FULL = "campaigns.export_segment_members"
PERMISSION_USE_SCENARIO = "campaigns.add_targetedcampaign"
# A segment's rules are a few dozen conditions: anything much longer is not a segment (and JSON nested thousands
# deep would exhaust Python's recursion before the rules are even read).
RULES_TEXT_MAX = 64 * 1024
SNAPSHOTS_SHOWN = 10


def _reject_constant(name: str):
    raise ValueError(name)


def rules_json_load(text) -> object:
    """The rules a browser sent, read from JSON text; ValueError when it is not JSON (NaN and Infinity are not),
    too long, or nested too deep to read."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if len(text) > RULES_TEXT_MAX:
        raise ValueError("too long")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deep") from None


def _error_texts(error: DomainError) -> list[str]:
    texts = [str(text) for values in (error.fields or {}).values()
             for text in (values if isinstance(values, list | tuple) else [values])]
    return texts or [str(error)]


class RulesField(forms.JSONField):
    """The rules as JSON text: what the rule builder (campaigns/static/campaigns/segment_builder.js) writes, and
    what staff edit by hand where the browser runs no script."""

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict):
            return value
        try:
            return rules_json_load(str(value))
        except ValueError:
            raise ValidationError(
                gettext("The rules are not readable: write them as a JSON object such as "
                        "{\"match\": \"all\", \"conditions\": [...]}, at most 64 KB."), code="invalid") from None

    def bound_data(self, data, initial):
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return rules_json_load(data)
        except ValueError:
            return InvalidJSONInput(data)


class SegmentForm(forms.ModelForm):
    rules = RulesField(
        label=_("rules"), required=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 90, "class": "segment-rules-json", "spellcheck": "false",
                                     "translate": "no"}),
        help_text=_("Who belongs to the segment. Build the conditions below; the number of members who match is "
                    "counted as you change them."),
    )

    class Meta:
        model = Segment
        fields = ["name", "description", "purpose", "rules"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None and not self.initial.get("rules"):
            # A new segment starts with the one condition every marketing segment needs.
            self.initial["rules"] = {"match": "all", "conditions": [{"field": "marketing_consent", "value": True}]}

    def clean(self):
        cleaned = super().clean()
        if "rules" in self.errors:
            return cleaned
        rules = cleaned.get("rules") or {}
        if not isinstance(rules, dict):
            self.add_error("rules", gettext("The rules must be a JSON object with \"match\" and \"conditions\"."))
            return cleaned
        try:
            cleaned["rules"] = rules_clean(rules, purpose=cleaned.get("purpose") or Segment.Purpose.MARKETING)
        except SegmentInvalid as error:
            add_service_error(self, error)
        return cleaned


def _snapshot_export_links(snapshot, user) -> str:
    if snapshot.status != SegmentSnapshot.Status.DONE:
        return "-"
    url = reverse("admin:campaigns_segmentsnapshot_export", args=[snapshot.pk])
    links = format_html('<a href="{}">{}</a>', url, gettext("Excel (phones masked)"))
    if user.has_perm(PERMISSION_EXPORT_FULL):
        links = format_html('{} · <a href="{}?full=1">{}</a>', links, url, gettext("Excel with full phone numbers"))
    return links


def _duration_text(snapshot) -> str:
    if snapshot.duration_ms is None:
        return "-"
    return gettext("%(seconds).1f s") % {"seconds": snapshot.duration_ms / 1000}


def snapshots_table(segment, user) -> str:
    """The segment's latest snapshots on its page, each with its members' Excel when it is done."""
    snapshots = list(segment.snapshots.select_related("requested_by")[:SNAPSHOTS_SHOWN])
    if not snapshots:
        return format_html("<p>{}</p>", gettext("No snapshot yet: take one to record who is in the segment now."))
    rows = [[
        format_html('<a href="{}">{}</a>', reverse("admin:campaigns_segmentsnapshot_change", args=[snap.pk]),
                    snap.get_status_display()),
        snap.member_count if snap.status == SegmentSnapshot.Status.DONE else "-",
        local_time(snap.requested_at), snap.requested_by or "-", local_time(snap.finished_at) or "-",
        _duration_text(snap), _snapshot_export_links(snap, user),
    ] for snap in snapshots]
    footer = format_html('<a href="{}?segment__id__exact={}">{}</a>',
                         reverse("admin:campaigns_segmentsnapshot_changelist"), segment.pk,
                         gettext("All snapshots of this segment"))
    return summary_table([gettext("status"), gettext("members"), gettext("requested at"), gettext("requested by"),
                          gettext("finished at"), gettext("duration"), gettext("members as Excel")], rows,
                         css_class="segment-snapshots", footer=footer)


def may_view_scenarios(user) -> bool:
    """Headquarters staff who may read segments or start campaigns see the scenario gallery."""
    return user_is_hq(user) and (user.has_perm("campaigns.view_segment") or user.has_perm(PERMISSION_USE_SCENARIO))


def may_use_scenarios(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_USE_SCENARIO)


@admin.register(Segment)
class SegmentAdmin(HeadquartersOnlyMixin, ServiceCallsMixin, ServiceRefusalMixin, BaseAdmin):
    form = SegmentForm
    change_form_template = f"{TEMPLATES}/change_form.html"
    change_list_template = f"{TEMPLATES}/change_list.html"
    list_display = ["name", "purpose", "last_count", "last_counted_at", "created_by", "created_at"]
    list_filter = ["purpose"]
    list_select_related = ["created_by"]
    search_fields = ["name", "description"]
    search_help_text = _("Part of the segment's name or description.")

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["name", "description", "purpose"]}),
            (_("who belongs to it"), {
                "fields": ["rules"] if obj is None else ["rules", "rules_description"],
                "description": _("Only active members are ever in a segment. A marketing segment must require the "
                                 "members' marketing consent; a segment for staff service calls need not."),
            }),
        ]
        if obj is not None:
            fieldsets += [
                (_("count"), {"fields": ["last_count", "last_counted_at"]}),
                (_("record"), {"fields": ["scenario_name", "created_by", "created_at"]}),
            ]
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["rules_description", "last_count", "last_counted_at", "scenario_name", "created_by", "created_at"]

    @admin.display(description=_("the rules in words"))
    def rules_description(self, obj):
        sentences = rules_describe(obj.rules) if obj.rules else []
        if not sentences:
            return "-"
        return format_html("<ol class=\"segment-rules-words\">{}</ol>",
                           format_html_join("", "<li>{}</li>", ((sentence,) for sentence in sentences)))

    @admin.display(description=_("scenario"))
    def scenario_name(self, obj):
        scenario = SCENARIOS.get(obj.scenario)
        return scenario.name if scenario is not None else (obj.scenario or "-")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = segment_save(
            segment=Segment.objects.get(pk=obj.pk) if change else None, name=data["name"],
            description=data.get("description", ""), purpose=data["purpose"], rules=data["rules"],
            operator=request.user, scenario=obj.scenario,
        )
        copy_saved(obj, saved)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context.update(
            segment_builder=self._builder_config(),
            can_snapshot=obj is not None and self.has_change_permission(request, obj),
            can_count=obj is not None and self.has_view_or_change_permission(request, obj),
            snapshots_table=snapshots_table(obj, request.user) if obj is not None else "",
            scenarios_url=reverse("admin:campaigns_segment_scenarios") if may_view_scenarios(request.user) else "",
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "scenarios_url": reverse("admin:campaigns_segment_scenarios") if may_view_scenarios(request.user) else "",
        }
        return super().changelist_view(request, extra_context)

    def _builder_config(self) -> dict:
        """What the rule builder needs: the conditions it offers, the count's address and its words."""
        return {
            "schema": conditions_schema(),
            "countUrl": reverse("admin:campaigns_segment_count"),
            "labels": {
                "intro": gettext("Members who meet"),
                "all": gettext("all of these conditions"),
                "any": gettext("any of these conditions"),
                "groupAll": gettext("all of"),
                "groupAny": gettext("any of"),
                "group": gettext("group"),
                "chooseField": gettext("choose a condition"),
                "addCondition": gettext("Add a condition"),
                "addGroup": gettext("Add a group"),
                "addToGroup": gettext("Add a condition to the group"),
                "remove": gettext("Remove"),
                "removeGroup": gettext("Remove the group"),
                "yes": gettext("yes"),
                "no": gettext("no"),
                "any_value": gettext("(any)"),
                "unknown": gettext("A condition the builder cannot show; it is kept as it is:"),
                "empty": gettext("No condition yet: add one."),
                "counting": gettext("Counting…"),
                "count": gettext("Members who match now: %(count)s (counted in %(ms)s ms)."),
                "countFailed": gettext("The count failed; try again in a moment."),
                "forbidden": gettext("You may not count segments."),
                "unreadable": gettext("The rules cannot be shown in the builder; correct the JSON below."),
                "showJson": gettext("Show the rules as JSON"),
                "hideJson": gettext("Hide the JSON"),
                "applyJson": gettext("Apply the JSON"),
                "filter": gettext("Type to narrow the list"),
            },
        }

    # --- buttons and pages ---------------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "campaigns_segment"
        return [
            path("count/", wrap(require_POST(self.count_view)), name=f"{name}_count"),
            path("scenarios/", wrap(self.scenarios_view), name=f"{name}_scenarios"),
            path("scenarios/<str:code>/use/", wrap(require_POST(self.scenario_use_view)),
                 name=f"{name}_scenario_use"),
            path("<path:object_id>/snapshot/", wrap(require_POST(self.snapshot_view)), name=f"{name}_snapshot"),
            path("<path:object_id>/count-now/", wrap(require_POST(self.count_now_view)), name=f"{name}_count_now"),
            *super().get_urls(),
        ]

    def count_view(self, request):
        """POST {"rules": {...}, "purpose": "marketing"}: {"count": n, "ms": t}, or {"errors": [...]} with 400."""
        if not self.has_view_or_change_permission(request):
            return JsonResponse({"errors": [gettext("You may not count segments.")]}, status=403)
        refused = JsonResponse({"errors": [gettext(
            "Send the rules as a JSON object {\"rules\": {...}, \"purpose\": \"marketing\"} of at most 64 KB.")]},
            status=400)
        length = str(request.META.get("CONTENT_LENGTH") or "0")
        if not length.isdigit() or int(length) > RULES_TEXT_MAX:
            return refused
        try:
            payload = rules_json_load(request.body)
        except (ValueError, RequestDataTooBig):
            return refused
        if not isinstance(payload, dict):
            return refused
        rules = payload["rules"] if "rules" in payload else payload
        purpose = payload.get("purpose", Segment.Purpose.MARKETING)
        if purpose not in Segment.Purpose.values:
            return JsonResponse({"errors": [gettext("The purpose must be one of: %(choices)s.")
                                            % {"choices": ", ".join(Segment.Purpose.values)}]}, status=400)
        if not isinstance(rules, dict):
            return JsonResponse({"errors": [gettext(
                "The rules must be a JSON object with \"match\" and \"conditions\".")]}, status=400)
        try:
            started = time.monotonic()
            count = rules_count(rules_clean(rules, purpose=purpose))
        except DomainError as error:
            return JsonResponse({"errors": _error_texts(error)}, status=400)
        return JsonResponse({"count": count, "ms": round((time.monotonic() - started) * 1000)})

    def _segment(self, request, object_id, *, change: bool) -> Segment:
        segment = self.object_or_404(request, object_id)
        allowed = self.has_change_permission(request, segment) if change else \
            self.has_view_or_change_permission(request, segment)
        if not allowed:
            raise PermissionDenied
        return segment

    def snapshot_view(self, request, object_id):
        segment = self._segment(request, object_id, change=True)
        try:
            segment_snapshot_request(segment=segment, requested_by=request.user)
        except DomainError as error:
            self.message_user(request, " ".join(_error_texts(error)), messages.ERROR)
        else:
            self.message_user(request, gettext(
                "A snapshot of %(name)s is being taken: it records who is in the segment now. Reload the page in a "
                "moment to see it done.") % {"name": segment.name}, messages.SUCCESS)
        return change_page(segment)

    def count_now_view(self, request, object_id):
        segment = self._segment(request, object_id, change=False)
        try:
            count = segment_count(segment=segment)
        except DomainError as error:
            self.message_user(request, " ".join(_error_texts(error)), messages.ERROR)
        else:
            self.message_user(request, ngettext("%(count)s member matches %(name)s now.",
                                                "%(count)s members match %(name)s now.", count)
                              % {"count": f"{count:,}", "name": segment.name}, messages.SUCCESS)
        return change_page(segment)

    def scenarios_view(self, request):
        if not may_view_scenarios(request.user):
            raise PermissionDenied
        groups = [{"code": code, "label": label, "scenarios": scenarios}
                  for code, label, scenarios in scenarios_by_group() if scenarios]
        return TemplateResponse(request, f"{TEMPLATES}/scenarios.html", {
            **self.admin_site.each_context(request),
            "title": gettext("Scenario gallery"), "opts": self.opts,
            "groups": groups,
            "can_use": may_use_scenarios(request.user),
        })

    def scenario_use_view(self, request, code):
        if not may_use_scenarios(request.user):
            raise PermissionDenied
        scenario = SCENARIOS.get(code)
        if scenario is None:
            raise Http404
        try:
            campaign = scenario_use(code=code, operator=request.user)
        except DomainError as error:
            self.message_user(request, " ".join(_error_texts(error)), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:campaigns_segment_scenarios"))
        self.message_user(request, gettext(
            "Campaign %(code)s is a draft made from the scenario %(name)s, with a segment of its own: check the "
            "segment and the actions, then submit it for approval.") % {"code": campaign.code, "name": scenario.name},
            messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:campaigns_targetedcampaign_change", args=[campaign.pk]))


@admin.register(SegmentSnapshot)
class SegmentSnapshotAdmin(HeadquartersOnlyMixin, ReadOnlyAdminMixin, BaseAdmin):
    """Who was in a segment at a moment: written by the snapshot task, read here, its members exported."""

    change_form_template = f"{TEMPLATES}/snapshot_change_form.html"
    list_display = ["segment", "status", "member_count", "requested_by", "requested_at", "finished_at",
                    "duration"]
    list_filter = ["status"]
    list_select_related = ["segment", "requested_by"]
    search_fields = ["segment__name"]
    search_help_text = _("Part of the segment's name.")
    fields = ["segment", "status", "member_count", "requested_by", "requested_at", "finished_at", "duration",
              "error", "rules_description"]
    readonly_fields = fields

    def get_list_display(self, request):
        def export_links(obj):
            return _snapshot_export_links(obj, request.user)

        export_links.short_description = _("members as Excel")
        return [*self.list_display, export_links]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        snapshot = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}),
                         "export_links": _snapshot_export_links(snapshot, request.user) if snapshot else ""}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("duration"))
    def duration(self, obj):
        return _duration_text(obj)

    @admin.display(description=_("the rules in words"))
    def rules_description(self, obj):
        sentences = rules_describe(obj.rules) if obj.rules else []
        if not sentences:
            return "-"
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((text,) for text in sentences)))

    def get_urls(self):
        return [
            path("<path:object_id>/export/", self.admin_site.admin_view(self.export_view),
                 name="campaigns_segmentsnapshot_export"),
            *super().get_urls(),
        ]

    def export_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        snapshot = self.get_object(request, unquote(object_id))
        if snapshot is None:
            raise Http404
        full = request.GET.get("full") == "1"
        if full and not request.user.has_perm(PERMISSION_EXPORT_FULL):
            raise PermissionDenied
        if snapshot.status != SegmentSnapshot.Status.DONE:
            self.message_user(request, gettext("Only a finished snapshot's members can be exported (this one is "
                                               "%(status)s).") % {"status": snapshot.get_status_display()},
                              messages.ERROR)
            return change_page(snapshot)
        # Logged before the file leaves: member numbers with names and phones are personal data.
        personal_data_access_log(
            user=request.user, action=PersonalDataAccess.Action.EXPORT, subject=snapshot,
            detail=f"segment members, {snapshot.member_count} rows, {'full' if full else 'masked'}",
            ip_address=client_ip(request),
        )
        rows = ([row.get(key, "") for key, _label in SEGMENT_MEMBER_COLUMNS]
                for row in segment_members_rows(snapshot=snapshot, unmasked=full))
        preamble = [
            [gettext("segment"), snapshot.segment.name],
            [gettext("snapshot taken at"), local_time(snapshot.finished_at or snapshot.requested_at)],
            [gettext("members"), snapshot.member_count],
            *([gettext("rule"), sentence] for sentence in (rules_describe(snapshot.rules) if snapshot.rules else [])),
        ]
        return table_xlsx_response(
            filename=f"segment-{snapshot.segment_id}-snapshot-{snapshot.pk}.xlsx", title=gettext("Segment members"),
            header=[label for _key, label in SEGMENT_MEMBER_COLUMNS], rows=rows, preamble=preamble,
        )
