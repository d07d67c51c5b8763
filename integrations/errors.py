"""Every way a webhook subscription or a resend can refuse."""

from django.utils.translation import gettext_lazy as _

from core.errors import ValidationFailed


class SubscriptionInvalid(ValidationFailed):
    default_message = _("Some fields of the webhook subscription are not valid.")


class ResendInvalid(ValidationFailed):
    default_message = _("The events to resend are not valid.")
