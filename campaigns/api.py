"""POS API for coupons (CONTRACT section 3, "Coupons and vouchers"): what a coupon takes off a receipt, using it,
a member's coupons usable at the terminal's store, and claiming one with a public claim code.

A refusal of a coupon is 422 coupon_not_applicable with a machine-readable `reason` in the error object and
changes nothing; every POST is idempotent (core.api.PosPostView), a validation too, so that a till's retry of
either gets the first answer again.
"""

import re

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import queries
from campaigns.services import coupon_claim, coupon_quote, coupon_redeem
from core.api import NOT_BLANK_PATTERN, WRITE_ERRORS, ErrorEnvelopeSerializer, PosPostView, validated
from core.fields import (
    LinesField,
    LocalTimeField,
    MoneyField,
    PositiveMoneyField,
    ReceiptField,
)
from core.numbers import QUANTITY_MAX
from core.schema import IDEMPOTENCY_PARAMETER
from membership.services import member_for_pos

# Path values as the server reads them: core.middleware lets only printable ASCII through, and a longer value
# than the column holds is refused here, naming the parameter (CODE_MAX: Coupon.code; MEMBER_NO_MAX: what a
# till may send as a member number, ours or a legacy one).
CODE_MAX = 40
MEMBER_NO_MAX = 64
CLAIM_CODE_MAX = 32
_PATH_VALUE = r"^[\x21-\x7e]{1,%d}$"
CODE_PATTERN = _PATH_VALUE % CODE_MAX
MEMBER_NO_PATTERN = _PATH_VALUE % MEMBER_NO_MAX

CODE_PARAMETER = OpenApiParameter(
    name="code", location=OpenApiParameter.PATH, type={"type": "string", "pattern": CODE_PATTERN},
    description=_("The coupon code as printed or shown to the member (1-40 printable ASCII characters; small "
                  "letters are read as capitals)."),
)
MEMBER_NO_PARAMETER = OpenApiParameter(
    name="member_no", location=OpenApiParameter.PATH, type={"type": "string", "pattern": MEMBER_NO_PATTERN},
    description=_("Our member number or a number from a legacy member system (1-64 printable ASCII characters)."),
)
REFUSAL = OpenApiResponse(
    ErrorEnvelopeSerializer,
    description=(
        "coupon_not_applicable: the coupon cannot be used on this receipt; nothing changed. The error object's "
        "`reason` says why: already_redeemed, expired, not_started, wrong_store, below_threshold, not_owner, "
        "no_eligible_items or budget_exhausted."
    ),
)
COUPON_ERRORS = {**WRITE_ERRORS, 422: REFUSAL}


def _path_value(value: str, *, name: str, maximum: int) -> str:
    """A path value within its pattern, or 400 validation_error naming it (the middleware checked the characters)."""
    if not re.fullmatch(_PATH_VALUE % maximum, value):
        raise serializers.ValidationError({name: [
            gettext("Use 1 to %(max)s printable ASCII characters.") % {"max": maximum}
        ]})
    return value


def _member_no(member_no: str) -> str:
    return _path_value(member_no, name="member_no", maximum=MEMBER_NO_MAX)


# --- redeem and validate ------------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """Text only: a JSON number is refused as the schema says, not read as its digits."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "maxLength": MEMBER_NO_MAX, "pattern": NOT_BLANK_PATTERN})
class MemberNoField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("Our member number or a number from a legacy member system."))
        super().__init__(max_length=MEMBER_NO_MAX, **kwargs)


class CouponLinesField(LinesField):
    """A receipt's lines as purchases take them; a whole-number quantity above the schema's maximum is refused
    here, naming the line (the coupon services read any quantity above 0)."""

    def to_internal_value(self, data) -> list[dict]:
        lines = super().to_internal_value(data)
        for number, line in enumerate(lines, start=1):
            if line["quantity"] > QUANTITY_MAX:
                self.fail("quantity", n=number)
        return lines


class CouponUseInputSerializer(serializers.Serializer):
    member_no = MemberNoField(
        required=False, allow_null=True,
        help_text=_("The member showing the coupon; needed for a coupon issued to a member, null or absent for a "
                    "printed code anyone may use."),
    )
    receipt_no = ReceiptField()
    basket_amount = PositiveMoneyField(help_text=_("What the whole receipt costs before the coupon, greater than 0."))
    lines = CouponLinesField(
        required=False, allow_null=True,
        help_text=_("The receipt's lines (optional): a coupon for listed SKUs or categories counts only the lines "
                    "it covers, and without lines it cannot tell (no_eligible_items)."),
    )


class CouponUseOutputSerializer(serializers.Serializer):
    coupon_code = serializers.CharField()
    discount = MoneyField(help_text=_("What the coupon takes off this receipt."))


def _use_request(request, code: str) -> tuple[dict, str]:
    """The coupon_quote arguments of a redeem or validate, and its receipt number (or 400 validation_error)."""
    data = validated(CouponUseInputSerializer, request)
    return {
        "code": _path_value(code, name="code", maximum=CODE_MAX), "store": request.auth.store,
        "member_no": data.get("member_no"), "basket_amount": data["basket_amount"], "lines": data.get("lines"),
    }, data["receipt_no"]


@extend_schema_view(post=extend_schema(
    operation_id="coupons_redeem",
    request=CouponUseInputSerializer,
    responses={201: CouponUseOutputSerializer, **COUPON_ERRORS},
    parameters=[CODE_PARAMETER, IDEMPOTENCY_PARAMETER],
    description=(
        "Use a coupon on a receipt at the terminal's store: the coupon is closed and its discount paid from the "
        "campaign's budget. A coupon that cannot be used is 422 coupon_not_applicable with `reason` in the error "
        "object (already_redeemed, expired, not_started, wrong_store, below_threshold, not_owner, "
        "no_eligible_items, budget_exhausted) and changes nothing. An unknown code or member is 404 not_found. If "
        "the receipt's purchase comes back, the coupon is given back."
    ),
))
class CouponRedeemView(PosPostView):
    """POST /api/v1/coupons/{code}/redeem."""

    def create(self, request, code: str):
        arguments, receipt_no = _use_request(request, code)
        redemption = coupon_redeem(**arguments, receipt_no=receipt_no, terminal=request.auth)
        # CouponUseOutputSerializer's answer, built without it (the schema still names the serializer,
        # tests/core/test_redeem_hotpath.py holds the two equal).
        return Response({"coupon_code": str(redemption.coupon.code), "discount": f"{redemption.discount:.2f}"},
                        status=201)


@extend_schema_view(post=extend_schema(
    operation_id="coupons_validate",
    request=CouponUseInputSerializer,
    responses={200: CouponUseOutputSerializer, **COUPON_ERRORS},
    parameters=[CODE_PARAMETER, IDEMPOTENCY_PARAMETER],
    description=(
        "What a coupon would take off this receipt at the terminal's store, without using it: the same body and "
        "the same refusals as redeem (422 coupon_not_applicable with `reason`, 404 not_found); nothing changes."
    ),
))
class CouponValidateView(PosPostView):
    """POST /api/v1/coupons/{code}/validate."""

    def create(self, request, code: str):
        arguments, _receipt_no = _use_request(request, code)
        quote = coupon_quote(**arguments)
        return Response(CouponUseOutputSerializer({
            "coupon_code": quote.coupon.code, "discount": quote.discount,
        }).data, status=200)


# --- a member's coupons, claiming one -----------------------------------------------------------------------


class CouponValidUntilField(LocalTimeField):
    """The end of a coupon's validity: its own, else its template's (empty: no end)."""

    def get_attribute(self, coupon):
        return coupon.valid_until or coupon.template.valid_until


# A coupon a member holds, as a till shows it to the member.
class MemberCouponSerializer(serializers.Serializer):
    coupon_code = serializers.CharField(source="code")
    name = serializers.CharField(source="template.name", help_text=_("The coupon's name."))
    discount_text = serializers.SerializerMethodField(help_text=_("What it is worth, e.g. 满200减30."))
    valid_until = CouponValidUntilField(allow_null=True, help_text=_("Usable until then; empty: no end."))

    def get_discount_text(self, coupon) -> str:
        return str(queries.coupon_discount_text(coupon.template))


class MemberCouponsOutputSerializer(serializers.Serializer):
    results = MemberCouponSerializer(many=True)


class MemberCouponsView(APIView):
    """GET /api/v1/members/{member_no}/coupons."""

    @extend_schema(
        operation_id="members_coupons_list",
        parameters=[MEMBER_NO_PARAMETER],
        responses={200: MemberCouponsOutputSerializer, 400: ErrorEnvelopeSerializer, 401: ErrorEnvelopeSerializer,
                   404: ErrorEnvelopeSerializer},
        description=(
            "The member's open coupons usable now at the terminal's store, soonest-expiring first (a merged "
            "member's number leads to the member it went into). Unknown member: 404 not_found; none: an empty list."
        ),
    )
    def get(self, request, member_no: str):
        coupons = queries.member_coupons_usable(member_id=member_for_pos(_member_no(member_no)),
                                                store=request.auth.store)
        return Response(MemberCouponsOutputSerializer({"results": coupons}).data)


@extend_schema_field({"type": "string", "maxLength": CLAIM_CODE_MAX, "pattern": NOT_BLANK_PATTERN})
class ClaimCodeField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=CLAIM_CODE_MAX, **kwargs)


class CouponClaimInputSerializer(serializers.Serializer):
    claim_code = ClaimCodeField(help_text=_("The public claim code printed on the poster."))


@extend_schema_view(post=extend_schema(
    operation_id="members_coupons_claim",
    request=CouponClaimInputSerializer,
    responses={201: MemberCouponSerializer, **WRITE_ERRORS},
    parameters=[MEMBER_NO_PARAMETER, IDEMPOTENCY_PARAMETER],
    description=(
        "Claim a coupon for a member with a campaign's public claim code (扫码领券 at the till). One coupon per "
        "member and claim code: a second claim is 409 already_claimed. No running campaign with this code, or an "
        "unknown member: 404 not_found. The member already holding as many as the campaign allows, or the "
        "campaign's coupons all issued: 422 limit_exceeded."
    ),
))
class MemberCouponClaimView(PosPostView):
    """POST /api/v1/members/{member_no}/coupons/claim."""

    def create(self, request, member_no: str):
        data = validated(CouponClaimInputSerializer, request)
        coupon = coupon_claim(claim_code=data["claim_code"], member=_member_no(member_no),
                              store=request.auth.store)
        return Response(MemberCouponSerializer(coupon).data, status=201)
