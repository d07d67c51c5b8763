"""Admin screens of the webhooks (集成): the subscriptions, the events written to the outbox and their deliveries.

Headquarters only: a subscription receives every store's events. Thin: the forms check with the services that
write (integrations.services.subscriptions); creating, changing, a new secret and every resend go through them.
Events, deliveries and their tries are read-only records of what was sent.
"""

import json
import re
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from core.admin import (
    CappedCountPaginator,
    ReadOnlyAdminMixin,
    ServiceCallsMixin,
    ServiceRefusalMixin,
    change_page,
    copy_saved,
    local_time,
)
from core.errors import DomainError
from core.forms import add_service_error
from integrations.forms import ResendForm, SubscriptionAddForm, SubscriptionForm
from integrations.models import Attempt, Delivery, Event, EventType, Subscription
from integrations.services import subscriptions as services
from stores.admin_base import BaseAdmin, HeadquartersOnlyMixin, HeadquartersRecordsMixin
from stores.queries import user_is_hq

TEMPLATES = "admin/integrations"
PERMISSION_RESEND = "integrations.resend_webhook"
PERMISSION_SECRET = "integrations.change_subscription"
COUNT_CAP = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SUBJECT_KINDS = ("card", "member", "coupon", "voucher")


def may_resend(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_RESEND)


def may_see_secret(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_SECRET)


def capped_count(queryset) -> str:
    """How many rows, counted up to COUNT_CAP ("10,000+" beyond): deliveries grow with every event."""
    counted = queryset[: COUNT_CAP + 1].count()
    return f"{COUNT_CAP:,}+" if counted > COUNT_CAP else f"{counted:,}"


def deliveries_url(**filters) -> str:
    """The deliveries list filtered as its filters would (subscription__id__exact=..., status__exact=...)."""
    return reverse("admin:integrations_delivery_changelist") + "?" + urlencode(filters)


def event_search(queryset, term: str, *, prefix: str = ""):
    """Rows of an event by its id ("evt_..."), or by what it is about: "card:8697..." as written, or a bare card
    number, member number, coupon or voucher code. Exact matches on indexed columns only."""
    term = _CONTROL.sub("", term or "").strip()[:100]
    if not term:
        return queryset
    if ":" in term:
        subjects = [term]
    else:
        subjects = [f"{kind}:{term}" for kind in _SUBJECT_KINDS]
    return queryset.filter(Q(**{f"{prefix}public_id": term}) | Q(**{f"{prefix}subject__in": subjects}))


def page_response(request, model_admin, template: str, title, **context):
    return TemplateResponse(request, f"{TEMPLATES}/{template}", {
        **model_admin.admin_site.each_context(request), "title": title, "opts": model_admin.opts, **context,
    })


class PlainParametersMixin:
    """A list asked with control characters in its search or filters (no person types them; PostgreSQL refuses a
    NUL in a query) is shown unfiltered instead of failing."""

    def changelist_view(self, request, extra_context=None):
        if any(_CONTROL.search(value) for _name, values in request.GET.lists() for value in values):
            return HttpResponseRedirect(request.path)
        return super().changelist_view(request, extra_context)


class ResendActionMixin(ServiceCallsMixin):
    """The resend action and button of events and deliveries (`deliveries_of(queryset)` says which)."""

    def has_resend_permission(self, request) -> bool:
        return may_resend(request.user)

    def deliveries_of(self, queryset):
        raise NotImplementedError

    def resend(self, request, queryset) -> None:
        try:
            count = services.deliveries_resend(deliveries=self.deliveries_of(queryset), actor=request.user)
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        if count:
            self.message_user(request, gettext("%(count)s deliveries are sent again.") % {"count": count},
                              messages.SUCCESS)
        else:
            self.message_user(request, gettext("Nothing to resend: no subscription received these events."),
                              messages.WARNING)

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [path("<path:object_id>/resend/", self.admin_site.admin_view(require_POST(self.resend_view)),
                     name=f"{info}_resend"), *super().get_urls()]

    def resend_view(self, request, object_id):
        if not self.has_view_permission(request) or not may_resend(request.user):
            raise PermissionDenied
        obj = self.object_or_404(request, object_id)
        self.resend(request, self.model._default_manager.filter(pk=obj.pk))
        return change_page(obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "may_resend": may_resend(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)


# --- subscriptions ------------------------------------------------------------------------------------------------


@admin.register(Subscription)
class SubscriptionAdmin(HeadquartersRecordsMixin, PlainParametersMixin, ServiceCallsMixin, ServiceRefusalMixin,
                        BaseAdmin):
    """Who receives which events. A subscription that is no longer wanted is switched off, never deleted: its
    deliveries are the log of what was sent."""

    change_form_template = f"{TEMPLATES}/subscription/change_form.html"
    list_display = ["name", "url_shown", "types_count", "is_active", "pending_shown", "failed_shown", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    readonly_fields = ["types_shown", "secret_shown", "deliveries_summary", "created_by", "created_at",
                       "updated_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = SubscriptionForm if obj is not None else SubscriptionAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["name", "url", "event_types", "is_active", "secret"]})]
        editable = self.has_change_permission(request, obj)
        return [
            (None, {"fields": ["name", "url", "event_types" if editable else "types_shown", "is_active"]}),
            (_("signature"), {"fields": ["secret_shown"]}),
            (_("deliveries"), {"fields": ["deliveries_summary"]}),
            (_("record"), {"fields": ["created_by", "created_at", "updated_at"]}),
        ]

    def get_object(self, request, object_id, from_field=None):
        # The secret is shown to the users who may change the subscription (secret_shown reads the viewer).
        subscription = super().get_object(request, object_id, from_field)
        if subscription is not None:
            subscription.viewer = request.user
        return subscription

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, _CONTROL.sub("", search_term or ""))

    # --- list columns -----------------------------------------------------------------------------------------

    @admin.display(description=_("URL"), ordering="url")
    def url_shown(self, obj):
        return format_html('<span translate="no">{}</span>', obj.url)

    @admin.display(description=_("event types"))
    def types_count(self, obj):
        return len(obj.event_types or ())

    @admin.display(description=_("waiting to send"))
    def pending_shown(self, obj):
        count = capped_count(obj.deliveries.filter(status=Delivery.Status.PENDING))
        return format_html('<a href="{}">{}</a>', deliveries_url(subscription__id__exact=obj.pk,
                                                                  status__exact=Delivery.Status.PENDING), count)

    @admin.display(description=_("failed"))
    def failed_shown(self, obj):
        count = capped_count(obj.deliveries.filter(status=Delivery.Status.FAILED))
        return format_html('<a href="{}">{}</a>', deliveries_url(subscription__id__exact=obj.pk,
                                                                  status__exact=Delivery.Status.FAILED), count)

    # --- change page ------------------------------------------------------------------------------------------

    @admin.display(description=_("event types"))
    def types_shown(self, obj):
        labels = dict(EventType.choices)
        return format_html_join(", ", "{} <code>{}</code>", ((labels.get(name, name), name)
                                                             for name in obj.event_types or ()))

    @admin.display(description=_("secret"))
    def secret_shown(self, obj):
        viewer = getattr(obj, "viewer", None)
        if viewer is None or not may_see_secret(viewer):
            return gettext("Hidden: only staff who may change webhook subscriptions see it.")
        try:
            secret = services.subscription_secret(obj)
        except DomainError as error:
            return str(error)
        return format_html(
            '<input type="text" id="webhook-secret" readonly value="{}" size="60" translate="no">'
            '<div class="help">{}</div>', secret,
            gettext("Give it to the receiver to check the signature of every event."))

    @admin.display(description=_("by status"))
    def deliveries_summary(self, obj):
        rows = format_html_join("", '<li>{}: <a href="{}">{}</a></li>', (
            (label, deliveries_url(subscription__id__exact=obj.pk, status__exact=value),
             capped_count(obj.deliveries.filter(status=value)))
            for value, label in Delivery.Status.choices))
        return format_html("<ul>{}</ul>", rows)

    # --- saving through the services ----------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        values = {name: data[name] for name in ("name", "url", "event_types", "is_active")}
        if change:
            saved = services.subscription_update(subscription=obj, actor=request.user, **values)
        else:
            saved = services.subscription_create(**values, secret=data.get("secret") or "", actor=request.user)
        copy_saved(obj, saved)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, gettext("Webhook subscription %(name)s was created. Its secret is shown below: "
                                           "give it to the receiver.") % {"name": obj.name}, messages.SUCCESS)
        return change_page(obj)

    # --- the secret and resending --------------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        subscription = self.get_object(request, object_id)
        if subscription is not None:
            extra_context = {
                **(extra_context or {}),
                "may_rotate": self.has_change_permission(request, subscription),
                "may_resend": may_resend(request.user),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/secret/", wrap(require_POST(self.rotate_view)),
                 name="integrations_subscription_rotate"),
            path("<path:object_id>/resend/", wrap(self.resend_view), name="integrations_subscription_resend"),
            *super().get_urls(),
        ]

    def rotate_view(self, request, object_id):
        subscription = self.object_or_404(request, object_id)
        if not self.has_change_permission(request, subscription):
            raise PermissionDenied
        return self.service_call(
            request, lambda: services.subscription_secret_rotate(subscription=subscription, actor=request.user),
            gettext("A new secret was made: give it to the receiver. Events are signed with it from now on."),
            change_page(subscription))

    def resend_view(self, request, object_id):
        if not self.has_view_permission(request) or not may_resend(request.user):
            raise PermissionDenied
        subscription = self.object_or_404(request, object_id)
        form = ResendForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                count = services.events_resend(subscription=subscription, since=data["since"], until=data["until"],
                                               event_types=data.get("event_types") or None, actor=request.user)
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("%(count)s deliveries to %(name)s are sent again.")
                                  % {"count": count, "name": subscription.name},
                                  messages.SUCCESS if count else messages.WARNING)
                return change_page(subscription)
        return page_response(
            request, self, "form_page.html",
            gettext("Resend the events of a period to %(name)s") % {"name": subscription.name},
            form=form, original=subscription, submit_label=gettext("Resend"),
            note=None if subscription.is_active else gettext(
                "This subscription is switched off: the events are sent once it is switched on again."),
            cancel_url=reverse("admin:integrations_subscription_change", args=[subscription.pk]))


# --- events -------------------------------------------------------------------------------------------------------


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class DeliveryInline(ReadOnlyInline):
    model = Delivery
    fields = ["subscription", "status", "attempts", "last_status_code", "last_attempt_at", "next_try",
              "delivered_at"]
    readonly_fields = fields
    show_change_link = True
    verbose_name_plural = _("deliveries")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("subscription")

    @admin.display(description=_("next try at"))
    def next_try(self, obj):
        return local_time(obj.next_attempt_at) if obj.status == Delivery.Status.PENDING else "-"


def _status_list(deliveries) -> str:
    """Each subscription the event went to and how its delivery stands (the names are data, not language)."""
    rows = ((delivery.subscription.name, delivery.get_status_display()) for delivery in deliveries)
    return format_html_join(", ", '<span translate="no">{}</span>: {}', rows) or "-"


@admin.register(Event)
class EventAdmin(HeadquartersOnlyMixin, ReadOnlyAdminMixin, PlainParametersMixin, ResendActionMixin, BaseAdmin):
    """The outbox: every event written for a subscription, with where it went."""

    change_form_template = f"{TEMPLATES}/resend_change_form.html"
    list_display = ["created_shown", "type_shown", "subject_shown", "public_id_shown", "deliveries_shown"]
    list_filter = ["type", "created_at"]
    search_fields = ["public_id"]  # shows the search box; get_search_results says how
    search_help_text = _("An event id, or what it is about: a card number, member number, coupon or voucher code.")
    fields = ["public_id", "type", "subject", "created_at", "data_shown"]
    readonly_fields = ["data_shown"]
    inlines = [DeliveryInline]
    actions = ["resend_selected"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(
            Prefetch("deliveries", queryset=Delivery.objects.select_related("subscription")
                     .order_by("subscription__name", "pk")))

    def get_search_results(self, request, queryset, search_term):
        return event_search(queryset, search_term), False

    def deliveries_of(self, queryset):
        return Delivery.objects.filter(event__in=queryset.order_by().values("pk"))

    @admin.action(description=_("Resend"), permissions=["resend"])
    def resend_selected(self, request, queryset):
        self.resend(request, queryset)

    @admin.display(description=_("created at"), ordering="created_at")
    def created_shown(self, obj):
        return local_time(obj.created_at, seconds=True)

    @admin.display(description=_("type"), ordering="type")
    def type_shown(self, obj):
        return obj.get_type_display()

    @admin.display(description=_("subject"))
    def subject_shown(self, obj):
        return format_html('<span translate="no">{}</span>', obj.subject)

    @admin.display(description=_("event id"))
    def public_id_shown(self, obj):
        return format_html('<span translate="no">{}</span>', obj.public_id)

    @admin.display(description=_("deliveries"))
    def deliveries_shown(self, obj):
        return _status_list(obj.deliveries.all())

    @admin.display(description=_("data"))
    def data_shown(self, obj):
        return format_html('<pre translate="no">{}</pre>',
                           json.dumps(obj.data, ensure_ascii=False, indent=2, sort_keys=True))


# --- deliveries ---------------------------------------------------------------------------------------------------


class AttemptInline(ReadOnlyInline):
    model = Attempt
    fields = ["number", "tried_at", "status_code", "duration_ms", "answer_shown", "error_shown"]
    readonly_fields = fields

    @admin.display(description=_("answer"))
    def answer_shown(self, obj):
        return format_html('<pre translate="no">{}</pre>', obj.response_body) if obj.response_body else "-"

    @admin.display(description=_("error"))
    def error_shown(self, obj):
        return format_html('<span translate="no">{}</span>', obj.error) if obj.error else "-"


@admin.register(Delivery)
class DeliveryAdmin(HeadquartersOnlyMixin, ReadOnlyAdminMixin, PlainParametersMixin, ResendActionMixin, BaseAdmin):
    """投递记录: each event for each subscription, and every try with the receiver's answer."""

    change_form_template = f"{TEMPLATES}/resend_change_form.html"
    list_display = ["event_time", "event_type", "event_shown", "subscription", "status", "attempts",
                    "last_status_code", "next_try", "delivered_at"]
    list_filter = ["status", "subscription", "event__type"]
    list_select_related = ["event", "subscription"]
    search_fields = ["event__public_id"]  # shows the search box; get_search_results says how
    search_help_text = EventAdmin.search_help_text
    fields = ["event_shown", "event_type", "subscription", "status", "attempts", "window_start", "next_try",
              "last_attempt_at", "last_status_code", "last_error_shown", "delivered_at"]
    readonly_fields = ["event_shown", "event_type", "next_try", "last_error_shown"]
    inlines = [AttemptInline]
    actions = ["resend_selected"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        return event_search(queryset, search_term, prefix="event__"), False

    def deliveries_of(self, queryset):
        return queryset

    @admin.action(description=_("Resend the selected"), permissions=["resend"])
    def resend_selected(self, request, queryset):
        self.resend(request, queryset)

    @admin.display(description=_("event time"), ordering="event__created_at")
    def event_time(self, obj):
        return local_time(obj.event.created_at, seconds=True)

    @admin.display(description=_("type"), ordering="event__type")
    def event_type(self, obj):
        return obj.event.get_type_display()

    @admin.display(description=_("event"))
    def event_shown(self, obj):
        return format_html('<a href="{}" translate="no">{}</a>',
                           reverse("admin:integrations_event_change", args=[obj.event_id]), obj.event.public_id)

    @admin.display(description=_("next try at"), ordering="next_attempt_at")
    def next_try(self, obj):
        return local_time(obj.next_attempt_at) if obj.status == Delivery.Status.PENDING else "-"

    @admin.display(description=_("last error"))
    def last_error_shown(self, obj):
        return format_html('<span translate="no">{}</span>', obj.last_error) if obj.last_error else "-"
