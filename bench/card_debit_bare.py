"""The Django anchor of bench/card_debit.py: settings, URLconf and one bare view in a single module.

The view answers POST /api/v1/cards/{card_no}/debit with only the statements that move the money: the
conditional UPDATE of the card's balance and the INSERT of its ledger row, in one transaction. No
middleware, no REST framework, no authentication, no idempotency record, no card checks: what the product
costs beyond this is the price of its framework, checks and records.

Used only by the benchmark: DJANGO_SETTINGS_MODULE=bench.card_debit_bare.
"""

import json
from decimal import Decimal

from django.db import connection, transaction
from django.http import JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.card_debit_bare"
MIDDLEWARE: list[str] = []
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in ("axes",)]  # noqa: F405

UPDATE = (
    "UPDATE cards_card SET balance = balance - %s, updated_at = %s WHERE card_no = %s AND balance >= %s "
    "RETURNING id, balance"
)
# The product's ledger row: the same columns, the same foreign keys checked at commit.
INSERT = (
    "INSERT INTO cards_cardledgerentry (card_id, kind, amount, balance_after, store_id, terminal_id, receipt_no, "
    "legal_entity_id, reason, cause_id, created_at) VALUES (%s, 'debit', %s, %s, %s, %s, %s, %s, '', '', %s)"
)
TERMINAL = (
    "SELECT t.id, t.store_id, f.legal_entity_id FROM stores_terminal t JOIN stores_store s ON s.id = t.store_id "
    "JOIN stores_format f ON f.id = s.format_id ORDER BY t.id LIMIT 1"
)
_till: list = []


def till() -> tuple[int, int, int]:
    """A terminal, its store and company, read once per process: the anchor authenticates nobody."""
    if not _till:
        with connection.cursor() as cursor:
            cursor.execute(TERMINAL)
            _till.extend(cursor.fetchone())
    return tuple(_till)


@csrf_exempt
def debit_bare(request, card_no: str):
    body = json.loads(request.body)
    amount = Decimal(body["amount"])
    now = timezone.now()
    terminal_id, store_id, legal_entity_id = till()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(UPDATE, [amount, now, card_no, amount])
        card_id, balance = cursor.fetchone()
        cursor.execute(INSERT, [card_id, -amount, balance, store_id, terminal_id, body["receipt_no"], legal_entity_id,
                                now])
    response = JsonResponse({"card_no": card_no, "amount": body["amount"], "balance": f"{balance:.2f}"}, status=201)
    # What CommonMiddleware adds in the product: a length instead of a chunked body.
    response["Content-Length"] = str(len(response.content))
    return response


urlpatterns = [path("api/v1/cards/<str:card_no>/debit", debit_bare)]
