"""POS API for tier benefits: record a member's use of a benefit (CONTRACT section 3)."""

import re

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.response import Response

from core.api import WRITE_ERRORS, PosPostView, validated
from core.fields import ReceiptField, WholeNumberField
from core.schema import IDEMPOTENCY_PARAMETER
from membership.services import member_for_pos
from membership.services.benefits import BENEFIT_USE_MAX, benefit_use

# Path values as the server reads them (core.middleware lets only printable ASCII through): a member number of
# ours or of a legacy system, and a benefit's code (any other printable code is an unknown benefit: 404).
MEMBER_NO_MAX = 64
BENEFIT_CODE_MAX = 40
MEMBER_NO_PATTERN = rf"^[\x21-\x7e]{{1,{MEMBER_NO_MAX}}}$"
BENEFIT_CODE_PATTERN = rf"^[\x21-\x7e]{{1,{BENEFIT_CODE_MAX}}}$"

MEMBER_NO_PARAMETER = OpenApiParameter(
    name="member_no", location=OpenApiParameter.PATH, type={"type": "string", "pattern": MEMBER_NO_PATTERN},
    description=_("Our member number or a number from a legacy member system (1-64 printable ASCII characters)."),
)
BENEFIT_CODE_PARAMETER = OpenApiParameter(
    name="code", location=OpenApiParameter.PATH, type={"type": "string", "pattern": BENEFIT_CODE_PATTERN},
    description=_("The benefit's code, e.g. PARKING (1-40 printable ASCII characters)."),
)


def _path_value(value: str, *, name: str, pattern: str, maximum: int) -> str:
    if not re.fullmatch(pattern, value):
        raise serializers.ValidationError({name: [
            gettext("Use 1 to %(max)s characters as the schema states.") % {"max": maximum}
        ]})
    return value


class BenefitQuantityField(WholeNumberField):
    """Whole units of the benefit (hours, times, visits) as a JSON integer: 1.5, "2", true and 0 are refused."""

    default_error_messages = {"invalid": _("Give the quantity as a whole number from 1 to 1000.")}


class BenefitUseInputSerializer(serializers.Serializer):
    quantity = BenefitQuantityField(
        maximum=BENEFIT_USE_MAX,
        help_text=_("How much of the benefit is used now, in its unit (hours, times, visits)."),
    )
    receipt_no = ReceiptField()


class BenefitUseOutputSerializer(serializers.Serializer):
    benefit = serializers.CharField(help_text=_("The benefit's code."))
    used = serializers.IntegerField(help_text=_("The quantity this call used."))
    remaining = serializers.IntegerField(help_text=_("What is left of the member's quota in this period."))


@extend_schema_view(post=extend_schema(
    operation_id="members_benefits_use",
    request=BenefitUseInputSerializer,
    responses={201: BenefitUseOutputSerializer, **WRITE_ERRORS},
    parameters=[MEMBER_NO_PARAMETER, BENEFIT_CODE_PARAMETER, IDEMPOTENCY_PARAMETER],
    description=(
        "Record a member's use of a tier benefit (free parking hours, gift wrapping, a home-service visit, lounge "
        "entry) at the terminal's store. The quota comes from the member's earned tier and their paid tier while "
        "its term runs (the larger one when both give the benefit), per local calendar day, month, quarter or "
        "year. More than what is left of the quota is 422 benefit_exhausted (the message says how many are left) "
        "and records nothing; a benefit none of the member's tiers gives, or one switched off, is 422 "
        "not_entitled. Unknown member or benefit: 404 not_found; frozen or closed member: 409 validation_error."
    ),
))
class BenefitUseView(PosPostView):
    """POST /api/v1/members/{member_no}/benefits/{code}/use."""

    def create(self, request, member_no: str, code: str):
        member_no = _path_value(member_no, name="member_no", pattern=MEMBER_NO_PATTERN, maximum=MEMBER_NO_MAX)
        code = _path_value(code, name="code", pattern=BENEFIT_CODE_PATTERN, maximum=BENEFIT_CODE_MAX)
        data = validated(BenefitUseInputSerializer, request)
        result = benefit_use(
            member=member_for_pos(member_no), code=code, quantity=data["quantity"], store=request.auth.store,
            terminal=request.auth, receipt_no=data["receipt_no"],
        )
        return Response(BenefitUseOutputSerializer({
            "benefit": result.use.benefit.code, "used": result.used, "remaining": result.remaining,
        }).data, status=201)
