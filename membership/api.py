"""POS API for members: find a member at the till (CONTRACT section 3)."""

import re

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ErrorEnvelopeSerializer
from core.pii import InvalidPersonalData, mask_name, normalize_id_number, phone_validate, resident_id_parse
from membership import queries

# A family may share one phone, a legacy number may exist in several old systems:
# a till never needs more than a short list to pick from.
LOOKUP_LIMIT = 20
# Oldest record first, so a family always appears in the same order at every till.
LOOKUP_ORDER = ("registered_at", "pk")
# What the answer shows: sealed ID numbers and addresses stay in the database.
LOOKUP_COLUMNS = ("member_no", "name", "points", "status", "registered_at", "tier__code", "tier__name")
LOOKUPS = {
    "phone": queries.members_by_phone,
    "member_no": queries.members_by_member_no,
    "card_no": queries.members_by_card_no,
    "id_number": queries.members_by_id_number,
}

_PRINTABLE_NUMBER = re.compile(r"^[\x21-\x7e]+$")
_CARD_NO = re.compile(r"^[0-9A-Za-z-]+$")
_OTHER_ID_NUMBER = re.compile(r"^[A-Z0-9]{5,17}$")
_RESIDENT_ID_LIKE = re.compile(r"^\d{14,}[\dX]$")


def member_lookup(*, field: str, value: str) -> QuerySet:
    """The members a till may mean by one lookup value, oldest first, at most LOOKUP_LIMIT."""
    return LOOKUPS[field](value).only(*LOOKUP_COLUMNS).order_by(*LOOKUP_ORDER)[:LOOKUP_LIMIT]


class LookupQuerySerializer(serializers.Serializer):
    phone = serializers.CharField(
        required=False, max_length=32, help_text=_("Mobile (11 digits) or landline with area code.")
    )
    member_no = serializers.CharField(
        required=False, max_length=64, help_text=_("Our member number or a number from a legacy member system.")
    )
    card_no = serializers.CharField(required=False, max_length=32, help_text=_("Member card number."))
    id_number = serializers.CharField(
        required=False, max_length=32, help_text=_("Resident ID number (a final x is read as X) or passport number.")
    )

    def to_internal_value(self, data):
        repeated = {name: [_("Give this parameter once.")] for name in self.fields if len(data.getlist(name)) > 1}
        if repeated:
            raise serializers.ValidationError(repeated)
        return super().to_internal_value(data)

    def validate_phone(self, value: str) -> str:
        try:
            return phone_validate(value)
        except InvalidPersonalData as error:
            raise serializers.ValidationError(str(error.message)) from None

    def validate_member_no(self, value: str) -> str:
        if not _PRINTABLE_NUMBER.match(value):
            raise serializers.ValidationError(_("A member number has only letters, digits and punctuation."))
        return value

    def validate_card_no(self, value: str) -> str:
        if not _CARD_NO.match(value):
            raise serializers.ValidationError(_("A member card number has only letters, digits and dashes."))
        return value

    def validate_id_number(self, value: str) -> str:
        number = normalize_id_number(value)
        # A long run of digits is a resident ID with a typo, not a passport: say what is wrong with it.
        if _RESIDENT_ID_LIKE.match(number):
            try:
                return resident_id_parse(number).number
            except InvalidPersonalData as error:
                raise serializers.ValidationError(str(error.message)) from None
        if not _OTHER_ID_NUMBER.match(number):
            raise serializers.ValidationError(
                _("Give an 18-character resident ID number or a passport or permit number (5-17 letters and digits).")
            )
        return number

    def validate(self, attrs):
        given = [name for name in LOOKUPS if name in attrs]
        if len(given) == 1:
            return attrs
        if not given:
            message = _("Give exactly one of phone, member_no, card_no or id_number.")
            raise serializers.ValidationError({name: [message] for name in LOOKUPS})
        message = _("Give only one of %(fields)s.") % {"fields": ", ".join(given)}
        raise serializers.ValidationError({name: [message] for name in given})


class TierSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class LookupMemberSerializer(serializers.Serializer):
    member_no = serializers.CharField()
    name_masked = serializers.SerializerMethodField()
    tier = TierSerializer()
    points = serializers.IntegerField()
    status = serializers.CharField(help_text=_("active, frozen or closed (merged records lead to the survivor)."))

    def get_name_masked(self, member) -> str:
        return mask_name(member.name)


class LookupOutputSerializer(serializers.Serializer):
    results = LookupMemberSerializer(many=True)


class MemberLookupView(APIView):
    """Find members by exactly one of phone, member number, member card number or ID number."""

    @extend_schema(
        operation_id="members_lookup",
        parameters=[LookupQuerySerializer],
        responses={200: LookupOutputSerializer, 400: ErrorEnvelopeSerializer, 401: ErrorEnvelopeSerializer},
        description=(
            "Exactly one parameter. A phone shared by a family lists every member using it (as their phone "
            "or as their family contact phone); a merged member's number leads to the member it was merged "
            f"into. At most {LOOKUP_LIMIT} results, oldest registration first; no match is an empty list."
        ),
    )
    def get(self, request):
        query = LookupQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        (field, value), = query.validated_data.items()
        members = member_lookup(field=field, value=value)
        return Response(LookupOutputSerializer({"results": members}).data)
