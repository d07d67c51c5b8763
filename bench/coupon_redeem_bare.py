"""The Django anchor of bench/coupon_redeem.py: settings, URLconf and one bare view in a single module.

The view answers POST /api/v1/coupons/{code}/redeem with only the product's writes, in one transaction: the
coupon's conditional UPDATE from open to redeemed, the template's counters' conditional UPDATE within its
budget, and the INSERT of the redemption row (same columns, same foreign keys). No middleware, no REST
framework, no authentication, no idempotency record, no reading of the coupon or the member, no checks:
what the product costs beyond this is the price of its framework, checks and records.

Used only by the benchmark: DJANGO_SETTINGS_MODULE=bench.coupon_redeem_bare.
"""

import json
from decimal import Decimal

from django.db import connection, transaction
from django.http import JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.coupon_redeem_bare"
MIDDLEWARE: list[str] = []
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in ("axes",)]  # noqa: F405

# The product's three writes (campaigns.services.coupon_redeem), the coupon found by its code instead of its id.
COUPON = (
    "UPDATE campaigns_coupon SET status = 'redeemed', closed_at = %s WHERE code = %s AND status = 'open' "
    "RETURNING id, template_id, member_id"
)
TEMPLATE = (
    "UPDATE campaigns_coupontemplate SET redeemed_count = redeemed_count + 1, discount_spent = discount_spent + %s "
    "WHERE id = %s AND (total_budget IS NULL OR discount_spent <= total_budget - %s)"
)
INSERT = (
    "INSERT INTO campaigns_couponredemption (coupon_id, template_id, member_id, store_id, terminal_id, receipt_no, "
    "basket_amount, discount, status, created_at, release_reason) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'redeemed', %s, '')"
)
TERMINAL = "SELECT t.id, t.store_id FROM stores_terminal t ORDER BY t.id LIMIT 1"
AMOUNT = "SELECT amount FROM campaigns_coupontemplate WHERE id = %s"
_till: list = []
_amounts: dict[int, Decimal] = {}


def till() -> tuple[int, int]:
    """A terminal and its store, read once per process: the anchor authenticates nobody."""
    if not _till:
        with connection.cursor() as cursor:
            cursor.execute(TERMINAL)
            _till.extend(cursor.fetchone())
    return tuple(_till)


def amount_of(template_id: int) -> Decimal:
    """A template's amount off, read once per process: the anchor checks nothing of the coupon."""
    if template_id not in _amounts:
        with connection.cursor() as cursor:
            cursor.execute(AMOUNT, [template_id])
            _amounts[template_id] = cursor.fetchone()[0]
    return _amounts[template_id]


@csrf_exempt
def redeem_bare(request, code: str):
    body = json.loads(request.body)
    basket = Decimal(body["basket_amount"])
    now = timezone.now()
    terminal_id, store_id = till()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(COUPON, [now, code])
        row = cursor.fetchone()
        if row is None:
            return JsonResponse({"error": {"code": "coupon_not_applicable", "reason": "already_redeemed"}},
                                status=422)
        coupon_id, template_id, member_id = row
        discount = min(amount_of(template_id), basket)
        cursor.execute(TEMPLATE, [discount, template_id, discount])
        if cursor.rowcount != 1:
            transaction.set_rollback(True)
            return JsonResponse({"error": {"code": "coupon_not_applicable", "reason": "budget_exhausted"}},
                                status=422)
        cursor.execute(INSERT, [coupon_id, template_id, member_id, store_id, terminal_id, body["receipt_no"], basket,
                                discount, now])
    response = JsonResponse({"coupon_code": code, "discount": f"{discount:.2f}"}, status=201)
    # What CommonMiddleware adds in the product: a length instead of a chunked body.
    response["Content-Length"] = str(len(response.content))
    return response


urlpatterns = [path("api/v1/coupons/<str:code>/redeem", redeem_bare)]
