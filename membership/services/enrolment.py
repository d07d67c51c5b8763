"""Enrolment at the till (POST /api/v1/members): a customer becomes a member with a name and a phone.

A phone already held by a member answers that member and creates nothing: a till cannot see who is in front of
it, so a second person with the same phone (a family member) is registered at the desk, as before. Only a
member's own phone counts here, not a family contact phone.
"""

import hashlib
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from core.pii import InvalidPersonalData, phone_validate
from membership.errors import MemberInvalid
from membership.models import Member
from membership.services.members import MemberInput, member_register, member_values_clean

__all__ = ["Enrolment", "member_enrol_at_till"]

# The first key of the two-key advisory locks taken on a phone's hash while enrolling ("enrl").
_PHONE_LOCK_SPACE = 0x656E726C


@dataclass(frozen=True)
class Enrolment:
    member: Member
    created: bool


@transaction.atomic
def member_enrol_at_till(*, name: str, phone: str, consent: bool, store, terminal=None) -> Enrolment:
    """Register a customer at a till of `store`, or find the member who already has this phone.

    The member found is the oldest active one with this phone as their own; else the member a merged record
    with it went into, if active; else the oldest frozen one (a new record would get round the freeze). Closed
    records are not reopened: the customer is registered anew. Two tills enrolling the same phone at once give
    one member (a lock on the phone's hash, on PostgreSQL). Consent to marketing and its time are recorded;
    the contact channel is SMS. Raise MemberInvalid.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(consent, bool):
        errors["consent"] = [gettext("Give true or false: did the customer agree to hear about offers?")]
    if not (phone or "").strip():
        errors["phone"] = [gettext("Give the customer's mobile or landline number.")]
    else:
        try:
            phone = phone_validate(phone)
        except InvalidPersonalData as error:
            errors["phone"] = [str(error.message)]
    values, name_errors = member_values_clean(name=name, today=timezone.localdate(), require_contact=False)
    if name_errors:
        errors.update(name_errors)
    if errors:
        raise MemberInvalid(fields=errors)
    _phone_lock(phone)
    existing = member_holding_phone(phone)
    if existing is not None:
        return Enrolment(member=existing, created=False)
    member = member_register(
        data=MemberInput(name=values["name"], phone=phone, contact_channel=Member.ContactChannel.SMS,
                         marketing_consent=consent),
        store=store, channel=Member.Channel.POS,
    )
    return Enrolment(member=member, created=True)


def member_holding_phone(phone: str) -> Member | None:
    """The member a till means by a phone (see member_enrol_at_till), or None."""
    rows = list(Member.objects.filter(phone=phone).order_by("registered_at", "pk")
                .values_list("pk", "status", "merged_into_id"))
    wanted = [merged_into if status == Member.Status.MERGED else pk for pk, status, merged_into in rows]
    members = Member.objects.select_related("tier").in_bulk([pk for pk in wanted if pk is not None])
    for status in (Member.Status.ACTIVE, Member.Status.FROZEN):
        for pk in wanted:
            member = members.get(pk)
            if member is not None and member.status == status:
                return member
    return None


def _phone_lock(phone: str) -> None:
    # Held to the end of the transaction: a second enrolment of the phone waits, then finds the first member.
    if connection.vendor != "postgresql":
        return
    key = int.from_bytes(hashlib.blake2b(phone.encode(), digest_size=4).digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_PHONE_LOCK_SPACE, key])
