"""The anchor of bench/purchases_api.py: settings, URLconf and one bare view in a single module.

The view answers POST /api/v1/purchases with the same rows the product writes (the terminal found by its
key hash, the member by number, an idempotency record, the purchase, the member's points and an earn
entry, in one transaction) with plain SQL: no middleware, no REST framework, no services. What the
product costs beyond this is the price of its framework, validation and rules. The statements are
`purchase_write`'s, which bench/purchases_api.py also runs with psycopg alone (its SQL anchor).

Used only by the benchmark: DJANGO_SETTINGS_MODULE=bench.purchases_bare.
"""

import hashlib
import json
from decimal import ROUND_FLOOR, Decimal

from django.db import connection, transaction
from django.http import JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.purchases_bare"
MIDDLEWARE: list[str] = []
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in ("axes",)]  # noqa: F405


TERMINAL = (
    "SELECT t.id, s.id, s.format_id, f.legal_entity_id FROM stores_terminal t "
    "JOIN stores_store s ON s.id = t.store_id JOIN stores_format f ON f.id = s.format_id "
    "WHERE t.key_hash = %s AND t.is_active"
)
CLAIM = (
    "INSERT INTO core_idempotencyrecord (terminal_id, key, fingerprint, created_at) "
    "VALUES (%s, %s, %s, %s) RETURNING id"
)
MEMBER = "SELECT id FROM membership_member WHERE member_no = %s"
PURCHASE = (
    "INSERT INTO membership_purchase (member_id, store_id, format_id, legal_entity_id, terminal_id, "
    "receipt_no, amount, returned_amount, occurred_at, payment_method, lines, points_earned, promotions_text, "
    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s, '', %s) RETURNING id"
)
CREDIT = "UPDATE membership_member SET points = points + %s WHERE id = %s RETURNING points"
ENTRY = (
    "INSERT INTO membership_pointsentry (member_id, kind, points, balance_after, store_id, terminal_id, "
    "receipt_no, legal_entity_id, reason, cause_id, created_at) "
    "VALUES (%s, 'earn', %s, %s, %s, %s, %s, %s, '', %s, %s)"
)
ANSWER = "UPDATE core_idempotencyrecord SET response_status = 201, response_body = %s WHERE id = %s"


def purchase_write(cursor, *, key: str, idempotency_key: str, raw_body: bytes) -> dict:
    """The view's statements on a DB-API cursor inside the caller's transaction; return the answer.

    Shared with the SQL anchor of bench/purchases_api.py, which runs them with psycopg alone.
    """
    body = json.loads(raw_body)
    amount = Decimal(body["amount"])
    points = int(amount.to_integral_value(rounding=ROUND_FLOOR))
    now = timezone.now()
    cursor.execute(TERMINAL, [hashlib.sha256(key.encode()).hexdigest()])
    terminal_id, store_id, format_id, legal_entity_id = cursor.fetchone()
    cursor.execute(CLAIM, [terminal_id, idempotency_key, hashlib.sha256(raw_body).hexdigest(), now])
    record_id = cursor.fetchone()[0]
    cursor.execute(MEMBER, [body["member_no"]])
    member_id = cursor.fetchone()[0]
    cursor.execute(PURCHASE, [member_id, store_id, format_id, legal_entity_id, terminal_id, body["receipt_no"],
                              amount, body["occurred_at"], body["payment_method"], json.dumps(body["lines"]), points,
                              now])
    purchase_id = cursor.fetchone()[0]
    cursor.execute(CREDIT, [points, member_id])
    balance = cursor.fetchone()[0]
    cursor.execute(ENTRY, [member_id, points, balance, store_id, terminal_id, body["receipt_no"], legal_entity_id,
                           str(purchase_id), now])
    answer = {"purchase_id": purchase_id, "points_earned": points, "points": balance}
    cursor.execute(ANSWER, [json.dumps(answer), record_id])
    return answer


@csrf_exempt
def purchase_bare(request):
    with transaction.atomic(), connection.cursor() as cursor:
        answer = purchase_write(cursor, key=request.headers["Authorization"].split()[1],
                                idempotency_key=request.headers["Idempotency-Key"], raw_body=request.body)
    response = JsonResponse(answer, status=201)
    # What CommonMiddleware adds in the product: a length instead of a chunked body.
    response["Content-Length"] = str(len(response.content))
    return response


urlpatterns = [path("api/v1/purchases", purchase_bare)]
