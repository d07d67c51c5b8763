from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from campaigns.api import CouponRedeemView, CouponValidateView, MemberCouponClaimView, MemberCouponsView
from cards.api import CardDebitView, CardRefundView, CardView, TransactionReverseView, VoucherRedeemView
from core.api import api_not_found
from membership.api import (
    MemberEnrolView,
    MemberLookupView,
    PointsRedeemView,
    PurchaseClaimView,
    PurchaseCreateView,
    PurchaseReturnCreateView,
)
from membership.api_benefits import BenefitUseView
from stores.api import TerminalView

admin.site.site_header = _("Retail group back office")
admin.site.site_title = _("Retail back office")
admin.site.index_title = _("Headquarters administration")

api_v1 = [
    path("terminal", TerminalView.as_view(), name="terminal"),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api-v1:schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    path("members/lookup", MemberLookupView.as_view(), name="members-lookup"),
    path("members", MemberEnrolView.as_view(), name="members"),
    path("purchases", PurchaseCreateView.as_view(), name="purchases"),
    path("purchases/returns", PurchaseReturnCreateView.as_view(), name="purchases-returns"),
    path("purchases/<str:receipt_no>/claim", PurchaseClaimView.as_view(), name="purchase-claim"),
    path("points/redeem", PointsRedeemView.as_view(), name="points-redeem"),
    path("cards/<str:card_no>", CardView.as_view(), name="card"),
    path("cards/<str:card_no>/debit", CardDebitView.as_view(), name="card-debit"),
    path("cards/<str:card_no>/refund", CardRefundView.as_view(), name="card-refund"),
    path("transactions/<str:transaction_id>/reverse", TransactionReverseView.as_view(), name="transaction-reverse"),
    path("vouchers/<str:code>/redeem", VoucherRedeemView.as_view(), name="voucher-redeem"),
    path("coupons/<str:code>/redeem", CouponRedeemView.as_view(), name="coupon-redeem"),
    path("coupons/<str:code>/validate", CouponValidateView.as_view(), name="coupon-validate"),
    path("members/<str:member_no>/coupons", MemberCouponsView.as_view(), name="member-coupons"),
    path("members/<str:member_no>/coupons/claim", MemberCouponClaimView.as_view(), name="member-coupons-claim"),
    path("members/<str:member_no>/benefits/<str:code>/use", BenefitUseView.as_view(), name="member-benefit-use"),
    re_path(r"^.*$", api_not_found),
]

# Refused and missing pages in the admin's look and the user's language (core/views.py; 500: templates/500.html).
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"

urlpatterns = [
    path("", include("core.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include((api_v1, "api-v1"))),
    path("admin/", admin.site.urls),
    path("reports/", include("reports.urls")),
    path("desk/cards/", include("cards.urls")),
    path("desk/coupons/", include("campaigns.urls")),
    path("desk/calls/", include("campaigns.urls_calls")),
    path("desk/", include("membership.urls")),
]
