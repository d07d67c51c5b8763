"""Webhook subscriptions: creating and changing them, their secrets, resending events.

The secret signs every delivery (CONTRACT section 5), so the sender needs it in clear: it is sealed with the
personal-data key (core.pii) rather than hashed, and only staff who may change a subscription see it.
"""

import ipaddress
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from core.pii import pii_decrypt, pii_encrypt
from integrations.errors import ResendInvalid, SubscriptionInvalid
from integrations.models import Delivery, EventType, Subscription

NAME_MAX = 100
URL_MAX = 500
SECRET_MIN = 16
SECRET_MAX = 200
RESEND_MAX_DAYS = 31
CHANGEABLE = ("name", "url", "event_types", "is_active")

_SECRET_CHARACTERS = re.compile(r"[\x21-\x7e]+")  # printable ASCII without the space
_URL_CHARACTERS = re.compile(r"[\x21-\x7e]+")
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                        r"[A-Za-z0-9])?)*\.?")


def _url_problem(url) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return gettext("Enter the URL the events are sent to.")
    if len(url) > URL_MAX:
        return gettext("The URL may have at most %(max)s characters.") % {"max": URL_MAX}
    if not _URL_CHARACTERS.fullmatch(url):
        return gettext("The URL may hold only ASCII characters without spaces: write a Chinese domain name in its "
                       "xn-- form and encode the path.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return gettext("This is not a valid URL.")
    if parts.scheme.lower() not in ("http", "https"):
        return gettext("The URL must start with http:// or https://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return gettext("The URL must not hold a user name or password: the secret signs the events.")
    host = parts.hostname or ""
    if not host:
        return gettext("The URL must name a host.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.fullmatch(host) or len(host) > 253:
            return gettext("The URL's host name is not valid.")
    if port == 0:
        return gettext("The URL's port is not valid.")
    if parts.fragment:
        return gettext("The URL must not end with a # part: receivers never see it.")
    return None


def _event_types_clean(event_types) -> tuple[list[str] | None, str | None]:
    if isinstance(event_types, str) or not isinstance(event_types, (list, tuple)):
        return None, gettext("Give the event types as a list.")
    if not event_types:
        return None, gettext("Choose at least one event type.")
    known = set(EventType.values)
    unknown = sorted({str(name) for name in event_types if name not in known})
    if unknown:
        return None, gettext("Unknown event types: %(types)s.") % {"types": ", ".join(unknown)}
    if len(set(event_types)) != len(event_types):
        return None, gettext("Each event type may be chosen once.")
    order = {name: index for index, name in enumerate(EventType.values)}
    return sorted(event_types, key=order.__getitem__), None


def subscription_values_clean(*, name, url, event_types, is_active) -> dict:
    """The checked values of a subscription (name, url, event_types, is_active). Raise SubscriptionInvalid naming
    each field that is wrong."""
    errors: dict[str, list[str]] = {}
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = [gettext("Enter a name, e.g. who receives the events.")]
    elif len(name) > NAME_MAX:
        errors["name"] = [gettext("The name may have at most %(max)s characters.") % {"max": NAME_MAX}]
    url = url.strip() if isinstance(url, str) else url
    problem = _url_problem(url)
    if problem:
        errors["url"] = [problem]
    types, problem = _event_types_clean(event_types)
    if problem:
        errors["event_types"] = [problem]
    if not isinstance(is_active, bool):
        errors["is_active"] = [gettext("Say whether the subscription is active.")]
    if errors:
        raise SubscriptionInvalid(fields=errors)
    return {"name": name, "url": url, "event_types": types, "is_active": is_active}


def secret_clean(secret) -> str:
    """A secret given by staff, or a new random one when none is given. Raise SubscriptionInvalid (field secret)."""
    if secret is None or secret == "":
        return secrets.token_urlsafe(32)
    if not isinstance(secret, str) or not SECRET_MIN <= len(secret) <= SECRET_MAX:
        raise SubscriptionInvalid(fields={"secret": [
            gettext("The secret must have between %(min)s and %(max)s characters; leave it empty to have one "
                    "made.") % {"min": SECRET_MIN, "max": SECRET_MAX}]})
    if not _SECRET_CHARACTERS.fullmatch(secret):
        raise SubscriptionInvalid(fields={"secret": [
            gettext("The secret may hold only ASCII letters, digits and punctuation, without spaces.")]})
    return secret


@transaction.atomic
def subscription_create(*, name: str, url: str, event_types: list[str], secret: str = "", is_active: bool = True,
                        actor=None) -> Subscription:
    """Create a webhook subscription; a blank secret is made at random. Raise SubscriptionInvalid naming the
    field."""
    errors: dict = {}
    try:
        values = subscription_values_clean(name=name, url=url, event_types=event_types, is_active=is_active)
    except SubscriptionInvalid as error:
        errors.update(error.fields or {})
    try:
        secret = secret_clean(secret)
    except SubscriptionInvalid as error:
        errors.update(error.fields or {})
    if errors:
        raise SubscriptionInvalid(fields=errors)
    subscription = Subscription(**values, secret_sealed=pii_encrypt(secret), created_by=actor)
    subscription._history_user = actor
    subscription.save()
    return subscription


def _lock(subscription: Subscription) -> Subscription:
    return Subscription.objects.select_for_update().get(pk=subscription.pk)


@transaction.atomic
def subscription_update(*, subscription: Subscription, actor=None, **changes) -> Subscription:
    """Change a subscription's name, url, event_types or is_active. Raise SubscriptionInvalid naming the field."""
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise TypeError(f"subscription_update() cannot change {', '.join(unknown)}")
    locked = _lock(subscription)
    current = {name: getattr(locked, name) for name in CHANGEABLE}
    values = subscription_values_clean(**{**current, **changes})
    changed = [name for name in CHANGEABLE if values[name] != current[name]]
    if changed:
        for name in changed:
            setattr(locked, name, values[name])
        locked._history_user = actor
        locked.save(update_fields=[*changed, "updated_at"])
    return locked


def subscription_secret(subscription: Subscription) -> str:
    """The secret the subscription's deliveries are signed with."""
    return pii_decrypt(subscription.secret_sealed)


@transaction.atomic
def subscription_secret_rotate(*, subscription: Subscription, actor=None) -> str:
    """Give the subscription a new random secret; the next deliveries are signed with it. Return it."""
    locked = _lock(subscription)
    secret = secrets.token_urlsafe(32)
    locked.secret_sealed = pii_encrypt(secret)
    locked._history_user = actor
    locked._change_reason = gettext("new secret")
    locked.save(update_fields=["secret_sealed", "updated_at"])
    subscription.secret_sealed = locked.secret_sealed
    return secret


@transaction.atomic
def deliveries_resend(*, deliveries: QuerySet | Iterable[Delivery], actor=None) -> int:
    """Send the deliveries again from now on: pending, due at once, with a new day of tries (the tries made stay in
    their log). Return how many; the sender is called for their subscriptions after commit."""
    if isinstance(deliveries, QuerySet) and not deliveries.query.is_sliced:
        rows = Delivery.objects.filter(pk__in=deliveries.order_by().values("pk"))
    else:
        rows = Delivery.objects.filter(pk__in=[delivery.pk for delivery in deliveries])
    subscription_ids = sorted(set(rows.values_list("subscription_id", flat=True).distinct()))
    if not subscription_ids:
        return 0
    now = timezone.now()
    count = rows.update(status=Delivery.Status.PENDING, next_attempt_at=now, window_start=now, delivered_at=None)
    transaction.on_commit(lambda: _send(subscription_ids))
    return count


def _send(subscription_ids: list[int]) -> None:
    from integrations.tasks import deliveries_send

    for pk in subscription_ids:
        deliveries_send.delay(pk)


def resend_range_clean(*, since, until) -> tuple[datetime, datetime]:
    """Since and until as aware times (a naive one is local time). Raise ResendInvalid unless since <= until at most
    RESEND_MAX_DAYS apart."""
    errors: dict[str, list[str]] = {}
    if not isinstance(since, datetime):
        errors["since"] = [gettext("Give the time the events start from.")]
    if not isinstance(until, datetime):
        errors["until"] = [gettext("Give the time the events end at.")]
    if errors:
        raise ResendInvalid(fields=errors)
    since, until = (timezone.make_aware(moment) if timezone.is_naive(moment) else moment for moment in (since, until))
    if since > until:
        raise ResendInvalid(fields={"until": [gettext("The end must not be before the start.")]})
    if until - since > timedelta(days=RESEND_MAX_DAYS):
        raise ResendInvalid(fields={"until": [
            gettext("Resend at most %(days)s days of events at once.") % {"days": RESEND_MAX_DAYS}]})
    return since, until


@transaction.atomic
def events_resend(*, subscription: Subscription, since: datetime, until: datetime,
                  event_types: list[str] | None = None, actor=None) -> int:
    """Resend the subscription's deliveries of the events written between since and until (both included), of
    `event_types` when given. Raise ResendInvalid for a reversed range, one over RESEND_MAX_DAYS days or an unknown
    type."""
    since, until = resend_range_clean(since=since, until=until)
    deliveries = Delivery.objects.filter(subscription=subscription, event__created_at__gte=since,
                                         event__created_at__lte=until)
    if event_types:
        types, problem = _event_types_clean(list(event_types))
        if problem:
            raise ResendInvalid(fields={"event_types": [problem]})
        deliveries = deliveries.filter(event__type__in=types)
    return deliveries_resend(deliveries=deliveries, actor=actor)
