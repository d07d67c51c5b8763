"""The hand-written statements of the hot paths give the same instances and rows as the ORM."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.sql import JoinedSelect, Part, insert_returning_pk, keyset_chunks
from membership.models import Member, Purchase, Tier
from stores.models import Format, LegalEntity, Store, Terminal
from stores.services import terminal_create, terminal_for_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("reference_stores")]

MEMBER_WITH_TIERS = JoinedSelect(
    [
        Part("m", Member, ("member_no", "name", "tier", "paid_tier", "paid_tier_until", "points", "points_debt")),
        Part("t", Tier, ("code", "points_multiplier"), via="m.tier"),
        Part("p", Tier, ("code",), via="m.paid_tier"),
    ],
    'FROM {m} m LEFT JOIN {t} t ON t."id" = m."tier_id" LEFT JOIN {p} p ON p."id" = m."paid_tier_id" '
    'WHERE m."member_no" = %s',
)


def test_a_joined_row_loads_the_instances_select_related_gives():
    gold = Tier.objects.get(code="GOLD")
    member = Member.objects.create(member_no="800000000018", name="张秀英", tier=gold,
                                   paid_tier_until=timezone.localdate() + timedelta(days=30))

    found = MEMBER_WITH_TIERS.fetch(["800000000018"])

    loaded = found["m"]
    assert loaded.pk == member.pk and loaded.name == "张秀英" and loaded.points == 0
    assert loaded.paid_tier_until == member.paid_tier_until  # a date, also where SQLite returns text
    assert loaded.tier is found["t"] and loaded.tier.code == "GOLD"
    assert loaded.tier.points_multiplier == gold.points_multiplier
    assert isinstance(loaded.tier.points_multiplier, Decimal)
    assert found["p"] is None and loaded.paid_tier is None  # the LEFT JOIN found nothing: no query later
    assert loaded.get_deferred_fields() >= {"phone", "address"}
    assert not loaded._state.adding


def test_no_matching_row_is_none():
    assert MEMBER_WITH_TIERS.fetch(["000000000000"]) is None


def test_terminal_for_key_loads_store_and_format_without_more_queries():
    terminal, key = terminal_create(store_code="SUPER001", name="T-SQL")

    found = terminal_for_key(key)

    assert found.pk == terminal.pk
    with CaptureQueriesContext(connection) as queries:
        assert found.store.code == "SUPER001"
        assert found.store.format.code == "SUPER"
        assert found.created_at is not None and timezone.is_aware(found.created_at)
    assert len(queries) == 0
    assert terminal_for_key(key + "x") is None


def test_a_disabled_terminal_or_closed_store_has_no_terminal():
    terminal, key = terminal_create(store_code="DEPT001", name="T-OFF")
    Terminal.objects.filter(pk=terminal.pk).update(is_active=False)
    assert terminal_for_key(key) is None

    terminal, key = terminal_create(store_code="DEPT001", name="T-ON")
    Store.objects.filter(code="DEPT001").update(status=Store.Status.CLOSED)
    assert terminal_for_key(key) is None


def _purchase(receipt_no: str) -> Purchase:
    store = Store.objects.select_related("format").get(code="DEPT001")
    member, _ = Member.objects.get_or_create(member_no="800000000026",
                                             defaults={"name": "李华", "tier": Tier.objects.get(code="NORMAL")})
    return Purchase(member=member, store=store, format=store.format, legal_entity_id=store.format.legal_entity_id,
                    receipt_no=receipt_no, amount=Decimal("12.50"), occurred_at=timezone.now(),
                    lines=[{"sku": "1", "amount": "12.50"}], created_at=timezone.now())


def test_insert_returning_pk_writes_the_row_the_orm_reads_back():
    purchase = _purchase("R-SQL-1")

    pk = insert_returning_pk(purchase)

    assert purchase.pk == pk and not purchase._state.adding
    stored = Purchase.objects.get(pk=pk)
    assert stored.amount == Decimal("12.50") and stored.lines == [{"sku": "1", "amount": "12.50"}]
    assert stored.returned_amount == Decimal("0.00") and stored.format == Format.objects.get(code="DEPT")


def test_a_row_that_breaks_the_named_unique_constraint_is_skipped_without_an_error():
    first = _purchase("R-SQL-2")
    insert_returning_pk(first, skip_on_conflict=("store_id", "receipt_no"))
    again = _purchase("R-SQL-2")

    with transaction.atomic():  # the transaction stays usable: no savepoint was needed
        assert insert_returning_pk(again, skip_on_conflict=("store_id", "receipt_no")) is None
        assert Purchase.objects.filter(receipt_no="R-SQL-2").count() == 1
    assert again.pk is None


@pytest.mark.django_db
def test_keyset_chunks_reads_every_row_once_in_key_order_even_when_rows_change_between_chunks():
    company = LegalEntity.objects.create(code="LE-K", name="键集测试公司")
    made = [Format.objects.create(code=f"K{number:02d}", name=f"业态{number}", legal_entity=company).pk
            for number in range(7)]
    formats = Format.objects.filter(pk__in=made)

    seen = []
    for chunk in keyset_chunks(formats, size=3):
        seen.append(chunk)
        Format.objects.filter(pk__in=chunk).update(name="已读")  # the caller changes what it has read
    assert seen == [made[0:3], made[3:6], made[6:7]]
    pairs = list(keyset_chunks(formats, ("pk", "code"), size=5))
    assert pairs == [[(pk, f"K{number:02d}") for number, pk in enumerate(made[:5])],
                     [(pk, f"K{number:02d}") for number, pk in enumerate(made[5:], start=5)]]
    with pytest.raises(ValueError):
        next(keyset_chunks(formats, ("code",), size=2))


# --- prepared statements after the schema changes under them -------------------------------------------------


@pytest.mark.postgres
def test_a_prepared_statement_whose_result_type_a_migration_changed_closes_its_connection_after_the_request():
    from django.db import NotSupportedError

    from core.sql import execute_prepared

    # given: a statement prepared on this connection, then a column it returns changes type (as a migration
    # run while the process serves would change it)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE prepared_probe (id serial PRIMARY KEY, v integer)")
    statement = "INSERT INTO prepared_probe (v) VALUES (%s) RETURNING id, v"
    assert execute_prepared(statement, [1])[0][1] == 1
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE prepared_probe ALTER COLUMN v TYPE bigint")
    due = connection.close_at  # CONN_MAX_AGE's, for after the test
    connection.close_at = None  # not due: only the failure below may make it so

    # when: the statement runs again
    with pytest.raises(NotSupportedError), transaction.atomic():
        execute_prepared(statement, [2])

    # then: the error is Django's, and the connection is due to close when the request ends (Django's
    # close_if_unusable_or_obsolete), so the next request prepares on a new one
    assert connection.close_at is not None and connection.close_at <= time.monotonic()
    connection.close_at = due  # the test's own transaction goes on, on this connection


def test_an_ordinary_database_error_leaves_the_connection_as_it_was():
    from django.db import IntegrityError

    from core.sql import execute_prepared

    before = connection.close_at
    with pytest.raises(IntegrityError), transaction.atomic():
        execute_prepared(f'INSERT INTO {Member._meta.db_table} ("id") VALUES (%s)', [None])

    assert connection.close_at == before
