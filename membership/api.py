"""POS API for members: find a member, record purchases and returns, turn points into cash (CONTRACT section 3)."""

import re
from decimal import ROUND_DOWN

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import (
    NOT_BLANK_PATTERN,
    QUERY_SPACE,
    WRITE_ERRORS,
    ErrorEnvelopeSerializer,
    InputSerializer,
    PosPostView,
    validated,
)
from core.fields import (
    LinesField,
    LocalTimeField,
    MoneyField,
    OffsetDateTimeField,
    PointsField,
    PositiveMoneyField,
    ReceiptField,
)
from core.pii import InvalidPersonalData, mask_name, normalize_id_number, phone_validate, resident_id_parse
from core.schema import IDEMPOTENCY_PARAMETER
from membership import queries, services
from membership.models import Member, PurchaseClaim
from membership.services.benefits import member_benefits, members_benefits
from membership.services.claims import claim_window_days, purchase_claim
from membership.services.enrolment import member_enrol_at_till
from membership.services.points import POINTS_MAX

# A family may share one phone, a legacy number may exist in several old systems:
# a till never needs more than a short list to pick from.
LOOKUP_LIMIT = 20
# Oldest record first, so a family always appears in the same order at every till.
LOOKUP_ORDER = ("registered_at", "pk")
# What the answer shows: sealed ID numbers and addresses stay in the database.
LOOKUP_COLUMNS = (
    "member_no", "name", "points", "status", "registered_at", "tier__code", "tier__name", "tier__discount_rate",
    "paid_tier", "paid_tier_until",
)
LOOKUPS = {
    "phone": queries.members_by_phone,
    "member_no": queries.members_by_member_no,
    "card_no": queries.members_by_card_no,
    "id_number": queries.members_by_id_number,
}

_PRINTABLE_NUMBER = re.compile(r"^[\x21-\x7e]+$")
_CARD_NO = re.compile(r"^[0-9A-Za-z-]+$")
_OTHER_ID_NUMBER = re.compile(r"^[A-Z0-9]{5,17}$")
_RESIDENT_ID_LIKE = re.compile(r"^[0-9]{14,}[0-9X]$")


def member_lookup(*, field: str, value: str) -> QuerySet:
    """The members a till may mean by one lookup value, oldest first, at most LOOKUP_LIMIT."""
    return LOOKUPS[field](value).only(*LOOKUP_COLUMNS).order_by(*LOOKUP_ORDER)[:LOOKUP_LIMIT]


# The lookup's parameters as the schema states them (ECMA 262 patterns); LookupQuerySerializer is what the server
# checks. A value is read as the serializer reads it: empty is not given, spaces around it are dropped and what is
# left has at most max_length characters; phones and ID numbers may hold spaces (and phones brackets) inside too.
_S = f"[{QUERY_SPACE}]*"
_P = f"[{QUERY_SPACE}()]*"


def _query_value(core: str, *, max_length: int) -> str:
    return rf"^(?:{_S}(?=[\s\S]{{1,{max_length}}}{_S}$)(?:{core}){_S})?$"


# A mobile: 1, then ten digits (the first 3-9) with at most two dashes among them; a landline: 0, a two- or
# three-digit area code, an optional dash, seven or eight digits, an optional dash and extension. Either may
# follow +86 or 0086 (what is left is then read without another prefix).
_MOBILE = rf"1(?=[^-]*(?:-[^-]*){{0,2}}$)[{QUERY_SPACE}()-]*[3-9](?:[{QUERY_SPACE}()-]*[0-9]){{9}}[{QUERY_SPACE}()-]*"
_LANDLINE = (rf"0(?:{_P}[0-9]){{2,3}}(?:{_P}-)?(?:{_P}[0-9]){{7,8}}(?:{_P}-(?:{_P}[0-9]){{1,6}})?")
_PHONE = rf"(?:{_MOBILE}|{_LANDLINE})"
PHONE_PATTERN = _query_value(
    rf"{_P}(?:\+{_P}8{_P}6{_P}{_PHONE}|0{_P}0{_P}8{_P}6{_P}{_PHONE}|(?!0{_P}0{_P}8{_P}6){_PHONE}){_P}", max_length=32
)
# A phone in a body (enrolment), as the till's own software writes it: an 11-digit mobile, or a landline with its
# area code (one dash after it, and one before an extension, allowed); no spaces, brackets or +86. 0086... would be
# read as a country code.
BODY_PHONE_PATTERN = r"^(?:1[3-9][0-9]{9}|(?!0086)0[0-9]{2,3}-?[0-9]{7,8}(?:-[0-9]{1,6})?)$"
# An 18-character resident ID (17 digits, then a digit or X), or 5-17 letters and digits that are not a resident ID
# with digits missing (15-17 digits).
_RESIDENT_ID = rf"[0-9](?:{_S}[0-9]){{16}}{_S}[0-9Xx]"
_OTHER_ID = rf"(?!(?:[0-9]{_S}){{14,16}}[0-9Xx]{_S}$)[A-Za-z0-9](?:{_S}[A-Za-z0-9]){{4,16}}"
ID_NUMBER_PATTERN = _query_value(rf"{_RESIDENT_ID}|{_OTHER_ID}", max_length=32)
LOOKUP_PARAMETERS = [
    OpenApiParameter(
        "phone", type={"type": "string", "pattern": PHONE_PATTERN},
        description=_("Mobile (11 digits, 13x to 19x) or landline with area code (010-12345678, an extension "
                      "after a dash); +86 or 0086 in front is dropped, and so are spaces and brackets."),
    ),
    OpenApiParameter(
        "member_no", type={"type": "string", "pattern": _query_value(r"[\x21-\x7e]+", max_length=64)},
        description=_("Our member number or a number from a legacy member system (printable ASCII)."),
    ),
    OpenApiParameter(
        "card_no", type={"type": "string", "pattern": _query_value(r"[0-9A-Za-z-]+", max_length=32)},
        description=_("Member card number: letters, digits and dashes."),
    ),
    OpenApiParameter(
        "id_number", type={"type": "string", "pattern": ID_NUMBER_PATTERN},
        description=_("Resident ID number (18 characters, a final x is read as X; its province, birth date and "
                      "check digit must be right) or a passport or permit number (5-17 letters and digits)."),
    ),
]


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
        # Before upper case: "ß" and "ſ" would become ASCII letters there.
        if not "".join(value.split()).isascii():
            raise serializers.ValidationError(
                _("Give an 18-character resident ID number or a passport or permit number (5-17 letters and digits).")
            )
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
    # Two decimals (CONTRACT); a finer rate is rounded down, so a till never gives more than the tier's discount.
    discount_rate = serializers.DecimalField(
        max_digits=5, decimal_places=2, coerce_to_string=True, rounding=ROUND_DOWN,
        help_text=_('The tier\'s discount at the till as a decimal string: "0.05" for 5 percent off, "0.00" for none.'),
    )


class LookupBenefitSerializer(serializers.Serializer):
    code = serializers.CharField(source="benefit.code")
    name = serializers.CharField(source="benefit.name")
    remaining = serializers.IntegerField(help_text=_("What is left of the member's quota in this period."))


class MemberAnswerSerializer(serializers.Serializer):
    """A member as a till sees one: the lookup's results and the enrolment's answer."""

    member_no = serializers.CharField()
    name_masked = serializers.SerializerMethodField()
    tier = TierSerializer()
    points = serializers.IntegerField()
    status = serializers.CharField(help_text=_("active, frozen or closed (merged records lead to the survivor)."))

    def get_name_masked(self, member) -> str:
        return mask_name(member.name)


class LookupMemberSerializer(MemberAnswerSerializer):
    benefits = serializers.SerializerMethodField(
        help_text=_("The benefits the member's tiers give (the paid tier while its term runs), with what is left "
                    "of each quota in this period; empty when none."),
    )

    @extend_schema_field(LookupBenefitSerializer(many=True))
    def get_benefits(self, member) -> list:
        # The view reads every result's benefits at once (membership.services.benefits.members_benefits).
        balances = self.context.get("benefits", {}).get(member.pk)
        if balances is None:
            balances = member_benefits(member)
        return LookupBenefitSerializer(balances, many=True).data


class LookupOutputSerializer(serializers.Serializer):
    results = LookupMemberSerializer(many=True)


class MemberLookupView(APIView):
    """Find members by exactly one of phone, member number, member card number or ID number."""

    @extend_schema(
        operation_id="members_lookup",
        parameters=LOOKUP_PARAMETERS,
        responses={200: LookupOutputSerializer, 400: ErrorEnvelopeSerializer, 401: ErrorEnvelopeSerializer},
        description=format_lazy(_(
            "Exactly one of phone, member_no, card_no or id_number, given once (an empty one counts as not "
            "given); none, two or a repeated one is 400 validation_error. A phone shared by a family lists every "
            "member using it (as their phone or as their family contact phone); a merged member's number leads to "
            "the member it was merged into. At most {limit} results, oldest registration first; no match is an "
            "empty list."
        ), limit=LOOKUP_LIMIT),
    )
    def get(self, request):
        query = LookupQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        (field, value), = query.validated_data.items()
        members = list(member_lookup(field=field, value=value))
        return Response(LookupOutputSerializer({"results": members},
                                               context={"benefits": members_benefits(members)}).data)


# --- POS writes: purchases, returns, points to cash ---------------------------------------------------------


@extend_schema_field({"type": "string", "maxLength": 64, "pattern": NOT_BLANK_PATTERN})
class MemberNoField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("Our member number or a number from a legacy member system."))
        super().__init__(max_length=64, **kwargs)


@extend_schema_field({"type": "string", "maxLength": 64, "pattern": NOT_BLANK_PATTERN, "nullable": True})
class OptionalMemberNoField(MemberNoField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("Our member number or a number from a legacy member system; null or left "
                                         "out for a customer who showed no membership."))
        super().__init__(required=False, allow_null=True, default=None, **kwargs)


class PurchaseInputSerializer(InputSerializer):
    member_no = OptionalMemberNoField()
    receipt_no = ReceiptField()
    amount = PositiveMoneyField(help_text=_("What the customer paid, greater than 0."))
    occurred_at = OffsetDateTimeField(
        help_text=_("Time of sale, ISO 8601 with offset; not in the future (five minutes' clock difference allowed).")
    )
    payment_method = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    lines = LinesField(required=False, default=list)


class IssuedCouponSerializer(serializers.Serializer):
    coupon_code = serializers.CharField()
    name = serializers.CharField()
    discount_text = serializers.CharField(help_text=_("What the coupon gives, as the receipt prints it."))
    valid_until = LocalTimeField(allow_null=True, help_text=_("Empty for a coupon without an end."))


class PurchaseOutputSerializer(serializers.Serializer):
    purchase_id = serializers.IntegerField()
    points_earned = serializers.IntegerField(
        help_text=_("Points this purchase earned, pending ones included; 0 without a member.")
    )
    points = serializers.IntegerField(
        allow_null=True, help_text=_("The member's usable points balance after the purchase; null without a member.")
    )
    points_pending = serializers.IntegerField(
        help_text=_("Points of this purchase held until the format's return window has passed (not in points).")
    )
    coupons = IssuedCouponSerializer(
        many=True, help_text=_("Coupons this purchase gave (to print on the receipt); empty when none.")
    )


@extend_schema_view(post=extend_schema(
    operation_id="purchases_create",
    request=PurchaseInputSerializer,
    responses={201: PurchaseOutputSerializer, **WRITE_ERRORS},
    parameters=[IDEMPOTENCY_PARAMETER],
    description=(
        "Record a receipt and credit its points to the member it names (the format's earn rule, the member's tier "
        "or paid-tier multiplier, points promotions; rounded down). member_no null or left out: a customer who "
        "showed no membership; the sale is recorded and earns nothing (points_earned 0, points null). The same "
        "receipt_no at the same store is never counted twice: a second one with another Idempotency-Key is 409 "
        "validation_error naming the purchase already recorded. In a format with a return window the points are "
        "pending (points_pending) until it has passed. coupons lists the coupons the sale gave. Unknown member: "
        "404 not_found; frozen or closed member: 409 validation_error."
    ),
))
class PurchaseCreateView(PosPostView):
    """POST /api/v1/purchases."""

    def create(self, request):
        data = validated(PurchaseInputSerializer, request)
        purchase = services.purchase_record(
            store=request.auth.store, terminal=request.auth, member=data["member_no"], receipt_no=data["receipt_no"],
            amount=data["amount"], occurred_at=data["occurred_at"], payment_method=data["payment_method"],
            lines=data["lines"],
        )
        return Response(purchase_answer(purchase), status=201)


def purchase_answer(purchase) -> dict:
    """What PurchaseOutputSerializer makes of a recorded purchase, built without it: every POS purchase answers
    with it, and the serializer takes ten times as long. The schema still names the serializer; the two are held
    equal, byte for byte, by tests/membership/test_purchase_hotpath.py."""
    return {
        "purchase_id": int(purchase.pk),
        "points_earned": int(purchase.points_earned),
        "points": int(purchase.member.points) if purchase.member_id else None,
        "points_pending": int(services.purchase_points_pending(purchase)),
        "coupons": [
            {
                "coupon_code": str(coupon["coupon_code"]), "name": str(coupon["name"]),
                "discount_text": str(coupon["discount_text"]),
                "valid_until": None if coupon["valid_until"] is None
                else timezone.localtime(coupon["valid_until"]).isoformat(),
            }
            for coupon in getattr(purchase, "issued_coupons", [])
        ],
    }


class ReturnInputSerializer(serializers.Serializer):
    original_receipt_no = ReceiptField(help_text=_("The receipt of the sale, at this same store."))
    receipt_no = ReceiptField(help_text=_("The return's own receipt number."))
    amount = PositiveMoneyField(help_text=_("The part of the purchase brought back, greater than 0."))
    occurred_at = OffsetDateTimeField(
        required=False,
        help_text=_("Time of the return, ISO 8601 with offset; not before the sale, not in the future; now if left "
                    "out."),
    )


class ReturnOutputSerializer(serializers.Serializer):
    return_id = serializers.IntegerField()
    purchase_id = serializers.IntegerField()
    points_reversed = serializers.IntegerField(
        help_text=_("Points taken back: from the balance, or cancelled while still pending.")
    )
    points_owed = serializers.IntegerField(
        help_text=_("Points the member had already spent: recorded as owed and paid off by later earnings.")
    )
    points = serializers.IntegerField(
        allow_null=True, help_text=_("The member's points balance after the return; null for a sale without a member.")
    )


@extend_schema_view(post=extend_schema(
    operation_id="purchases_returns_create",
    request=ReturnInputSerializer,
    responses={201: ReturnOutputSerializer, **WRITE_ERRORS},
    parameters=[IDEMPOTENCY_PARAMETER],
    description=(
        "Goods of a purchase brought back, at the store of the sale. Takes back the points the returned part "
        "earned: floor(points_earned x returned so far / amount) less what earlier returns took, so a purchase "
        "returned in full gives back exactly what it earned. Pending points are cancelled; credited points are "
        "taken from the balance, and what the balance cannot cover is recorded as points owed (the balance never "
        "goes below zero). Unknown original receipt: 404 not_found. More than what is left of the purchase: "
        "422 validation_error naming amount. A return receipt_no already recorded: 409 validation_error."
    ),
))
class PurchaseReturnCreateView(PosPostView):
    """POST /api/v1/purchases/returns."""

    def create(self, request):
        data = validated(ReturnInputSerializer, request)
        record = services.purchase_return(
            store=request.auth.store, terminal=request.auth, original_receipt_no=data["original_receipt_no"],
            receipt_no=data["receipt_no"], amount=data["amount"], occurred_at=data.get("occurred_at"),
        )
        member_id = record.purchase.member_id
        balance = (Member.objects.filter(pk=member_id).values_list("points", flat=True).get()
                   if member_id is not None else None)
        return Response(ReturnOutputSerializer({
            "return_id": record.pk, "purchase_id": record.purchase_id, "points_reversed": record.points_reversed,
            "points_owed": record.points_debt, "points": balance,
        }).data, status=201)


class RedeemInputSerializer(serializers.Serializer):
    member_no = MemberNoField()
    points = PointsField(maximum=POINTS_MAX, help_text=_("Points to turn into cash, a whole number greater than 0."))
    receipt_no = ReceiptField()


class RedeemOutputSerializer(serializers.Serializer):
    transaction_id = serializers.IntegerField(help_text=_("The points ledger entry."))
    points = serializers.IntegerField(help_text=_("Points turned into cash."))
    cash_value = MoneyField(help_text=_("What they are worth, rounded down to the cent."))
    balance = serializers.IntegerField(help_text=_("The member's points balance after."))


@extend_schema_view(post=extend_schema(
    operation_id="points_redeem",
    request=RedeemInputSerializer,
    responses={201: RedeemOutputSerializer, **WRITE_ERRORS},
    parameters=[IDEMPOTENCY_PARAMETER],
    description=(
        "Turn points into cash on a receipt (积分抵现), in any format: points x cash value / points per unit of "
        "the points policy (default 100 points = 1.00 yuan), or of a points-to-cash day at the store when it gives "
        "more cash per point, rounded down to the cent. Fewer points than the "
        "minimum per receipt, more than the maximum per receipt (all redemptions on one receipt together), or a "
        "value under 0.01 is 422 limit_exceeded naming the rule; more points than the balance is 422 "
        "insufficient_points. The redeeming store's company is recorded as honouring the points."
    ),
))
class PointsRedeemView(PosPostView):
    """POST /api/v1/points/redeem."""

    def create(self, request):
        data = validated(RedeemInputSerializer, request)
        result = services.points_cash_out(
            member_no=data["member_no"], points=data["points"], store=request.auth.store,
            terminal=request.auth, receipt_no=data["receipt_no"],
        )
        # RedeemOutputSerializer's answer, built without it (every cash-out at a till answers with it; the schema
        # still names the serializer, tests/core/test_redeem_hotpath.py holds the two equal).
        return Response({
            "transaction_id": int(result.entry.pk), "points": int(data["points"]),
            "cash_value": f"{result.cash_value:.2f}", "balance": int(result.balance),
        }, status=201)


# --- enrolment at the till and missed receipts ----------------------------------------------------------------

NAME_MAX = 50
_BODY_PHONE = re.compile(BODY_PHONE_PATTERN)
RECEIPT_PATH_PATTERN = r"^[\x21-\x7e]{1,64}$"
_RECEIPT_PATH = re.compile(RECEIPT_PATH_PATTERN)


@extend_schema_field({"type": "string", "maxLength": NAME_MAX, "pattern": NOT_BLANK_PATTERN})
class NameField(serializers.CharField):
    """The customer's name as typed: at most NAME_MAX characters as sent, spaces inside collapsed by the service."""

    def __init__(self, **kwargs):
        super().__init__(max_length=NAME_MAX, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if len(data) > NAME_MAX:
            self.fail("max_length", max_length=NAME_MAX)
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "pattern": BODY_PHONE_PATTERN})
class PhoneField(serializers.Field):
    default_error_messages = {
        "invalid": _("Give an 11-digit mobile (13x to 19x) or a landline with its area code (010-12345678), digits "
                     "and dashes only."),
    }

    def to_internal_value(self, data):
        if not isinstance(data, str) or not _BODY_PHONE.fullmatch(data):
            self.fail("invalid")
        try:
            return phone_validate(data)
        except InvalidPersonalData as error:
            raise serializers.ValidationError(str(error.message)) from None

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "boolean"})
class StrictBooleanField(serializers.Field):
    """JSON true or false only: "yes", 1 or "true" as text are refused, so consent is never guessed."""

    default_error_messages = {"invalid": _("Give true or false.")}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class EnrolInputSerializer(serializers.Serializer):
    name = NameField(help_text=_("The customer's name, at most 50 characters."))
    phone = PhoneField(help_text=_("The customer's own mobile (11 digits, 13x to 19x) or landline with area code "
                                   "(010-12345678, an extension after a dash), digits and dashes only."))
    consent = StrictBooleanField(help_text=_("Whether the customer agreed to hear about offers (recorded with the "
                                             "time)."))


class EnrolledMemberSerializer(MemberAnswerSerializer):
    status = serializers.CharField(help_text=_("active for a new member; active or frozen for one found by phone."))


@extend_schema_view(post=extend_schema(
    operation_id="members_create",
    request=EnrolInputSerializer,
    responses={201: EnrolledMemberSerializer, 200: EnrolledMemberSerializer, **WRITE_ERRORS},
    parameters=[IDEMPOTENCY_PARAMETER],
    description=(
        "Enrolment at the till: the customer becomes a member registered at this terminal's store through the POS, "
        "with the tier new members get, SMS as the contact channel and the marketing consent given (with its "
        "time): 201. A phone that already is a member's own phone answers 200 with that member and creates "
        "nothing (a family contact phone does not count): the oldest active member with it, else the member a "
        "merged record with it went into, else the oldest frozen one; a phone held only by closed members enrols "
        "anew. A second person sharing a family phone is registered at the service desk. A bad name, phone or "
        "consent is 400 validation_error naming the field."
    ),
))
class MemberEnrolView(PosPostView):
    """POST /api/v1/members."""

    def create(self, request):
        data = validated(EnrolInputSerializer, request)
        enrolment = member_enrol_at_till(name=data["name"], phone=data["phone"], consent=data["consent"],
                                         store=request.auth.store, terminal=request.auth)
        return Response(EnrolledMemberSerializer(enrolment.member).data, status=201 if enrolment.created else 200)


class ClaimInputSerializer(serializers.Serializer):
    member_no = MemberNoField()


class ClaimOutputSerializer(serializers.Serializer):
    purchase_id = serializers.IntegerField()
    points_earned = serializers.IntegerField(
        help_text=_("Points the claim credited, pending ones included (less the part of any return made before)."),
    )
    points = serializers.IntegerField(help_text=_("The member's usable points balance after the claim."))
    points_pending = serializers.IntegerField(
        help_text=_("Points of this receipt held until the format's return window has passed (not in points)."),
    )


@extend_schema_view(post=extend_schema(
    operation_id="purchases_claim",
    request=ClaimInputSerializer,
    responses={201: ClaimOutputSerializer, **WRITE_ERRORS},
    parameters=[
        OpenApiParameter(name="receipt_no", location=OpenApiParameter.PATH,
                         type={"type": "string", "pattern": RECEIPT_PATH_PATTERN},
                         description=_("The receipt number of a sale at this terminal's store (1-64 printable ASCII "
                                       "characters).")),
        IDEMPOTENCY_PARAMETER,
    ],
    description=format_lazy(_(
        "Missed-receipt points (补积分): a sale this terminal's store sent without a member is credited to the member "
        "as if shown at the till (the format's earn rule, the member's tier multiplier, the points promotions of the "
        "time of sale; pending while the sale's return window is open; a part returned before is taken off). "
        "Within {days} days of the sale (setting PURCHASE_CLAIM_WINDOW_DAYS), later is 422 limit_exceeded. Once "
        "per receipt, whoever asks: a receipt already claimed, or recorded for a member at the till, is 409 "
        "already_claimed (the other member is never named). Unknown receipt or member: 404 not_found; frozen or "
        "closed member: 409 validation_error; a sale returned in full: 422 validation_error. After-payment "
        "coupons are not given again."
    ), days=claim_window_days()),
))
class PurchaseClaimView(PosPostView):
    """POST /api/v1/purchases/{receipt_no}/claim."""

    def create(self, request, receipt_no: str):
        if not _RECEIPT_PATH.fullmatch(receipt_no):
            raise serializers.ValidationError({"receipt_no": [_("Use 1 to 64 printable ASCII characters.")]})
        data = validated(ClaimInputSerializer, request)
        claim = purchase_claim(store=request.auth.store, receipt_no=receipt_no, member=data["member_no"],
                               channel=PurchaseClaim.Channel.POS, terminal=request.auth)
        balance = Member.objects.filter(pk=claim.member_id).values_list("points", flat=True).get()
        return Response(ClaimOutputSerializer({
            "purchase_id": claim.purchase_id, "points_earned": claim.points, "points": balance,
            "points_pending": services.purchase_points_pending(claim.purchase),
        }).data, status=201)
