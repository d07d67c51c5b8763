"""The forms of the webhook screens; each checks with the same service that writes."""

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.errors import DomainError
from core.forms import add_service_error
from integrations.models import EventType, Subscription
from integrations.services.subscriptions import (
    NAME_MAX,
    SECRET_MAX,
    URL_MAX,
    resend_range_clean,
    secret_clean,
    subscription_values_clean,
)

# The event types as staff choose them: grouped by what they are about (the part of the type before the dot).
TYPE_GROUPS = (
    ("card", _("Prepaid cards")),
    ("points", _("Points")),
    ("member", _("Members")),
    ("coupon", _("Coupons")),
    ("voucher", _("Pickup vouchers")),
)


def event_type_choices() -> list:
    """The event types grouped, each labelled with its name and its code (what the receiver reads in "type")."""
    grouped = {key: [] for key, _title in TYPE_GROUPS}
    for value, label in EventType.choices:
        grouped[value.split(".", 1)[0]].append((value, format_html('{} <code>{}</code>', label, value)))
    return [(title, grouped[key]) for key, title in TYPE_GROUPS if grouped[key]]


class EventTypesField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        super().__init__(choices=event_type_choices, **kwargs)


class SubscriptionForm(forms.ModelForm):
    """A subscription's name, URL, event types and switch, checked by subscription_values_clean."""

    # A plain text box: the service checks the URL (an intranet host without a dot is a valid receiver).
    url = forms.CharField(label=_("URL"), max_length=URL_MAX,
                          help_text=_("Where each event is POSTed; it starts with http:// or https://."),
                          widget=forms.TextInput(attrs={"size": 80, "translate": "no"}))
    name = forms.CharField(label=_("name"), max_length=NAME_MAX,
                           help_text=_("Who receives the events, e.g. 集团APP."))
    event_types = EventTypesField(label=_("event types"),
                                  help_text=_("The event types it receives; the code beside each is what the receiver "
                                              "reads."))

    class Meta:
        model = Subscription
        fields = ["name", "url", "event_types", "is_active"]

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned.update(subscription_values_clean(
                name=cleaned.get("name"), url=cleaned.get("url"), event_types=list(cleaned.get("event_types") or []),
                is_active=bool(cleaned.get("is_active")),
            ))
        except DomainError as error:
            # A field the form already refused keeps its own message.
            for name, texts in (error.fields or {}).items():
                if name in self.fields and name not in self.errors:
                    self.add_error(name, texts)
        return cleaned


class SubscriptionAddForm(SubscriptionForm):
    secret = forms.CharField(
        label=_("secret"), max_length=SECRET_MAX, required=False,
        widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off", "translate": "no"}),
        help_text=_("Signs every event. Leave it empty to have a random one made; it is shown on the "
                    "subscription's page afterwards."),
    )

    class Meta(SubscriptionForm.Meta):
        fields = [*SubscriptionForm.Meta.fields, "secret"]

    def clean_secret(self):
        secret = self.cleaned_data.get("secret") or ""
        if secret:
            try:
                secret_clean(secret)
            except DomainError as error:
                raise forms.ValidationError((error.fields or {}).get("secret") or str(error)) from None
        return secret


class ResendForm(forms.Form):
    """A period of events to send to one subscription again."""

    since = forms.DateTimeField(
        label=_("events from"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        label=_("events until"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Both times included, at most 31 days apart."),
    )
    event_types = EventTypesField(label=_("only these event types"), required=False,
                                  help_text=_("Leave all unticked to resend every type."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            now = timezone.localtime().replace(second=0, microsecond=0)
            self.initial.setdefault("since", now - timedelta(days=1))
            self.initial.setdefault("until", now)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            resend_range_clean(since=cleaned.get("since"), until=cleaned.get("until"))
        except DomainError as error:
            add_service_error(self, error)
        return cleaned
