"""The report history of the demo (reports.demo.reports_seed): one scenario, since seeding is slow."""

from datetime import timedelta

import pytest
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from cards import demo as cards_demo
from cards.models import CardLedgerEntry, CardTransaction, SaleOrder
from core.ledgers import ledgers_check
from membership import demo as membership_demo
from membership.models import PointsEntry, Purchase
from reports.demo import reports_seed
from reports.models import ReportDefinition, ReportRun
from reports.services import TASK_NAME
from stores import demo as stores_demo


def _months(queryset, field: str) -> set:
    zone = timezone.get_current_timezone()
    return set(queryset.annotate(month=TruncMonth(field, tzinfo=zone)).values_list("month", flat=True).distinct())


def _counts() -> dict:
    return {model.__name__: model.objects.count()
            for model in (SaleOrder, CardLedgerEntry, CardTransaction, Purchase, PointsEntry, ReportDefinition,
                          ReportRun, PeriodicTask)}


@pytest.mark.django_db
def test_reports_seed_leaves_thirteen_months_of_history_and_a_second_run_adds_nothing(settings, tmp_path):
    # given: the small demo the other seeds make
    settings.MEDIA_ROOT = tmp_path
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    stores_demo.seed_stores()
    stores_demo.seed_staff(password="demo-password-1")
    membership_demo.seed_members(count=50)
    membership_demo.seed_loyalty()
    membership_demo.seed_walk_in_sales()
    cards_demo.seed_cards(count=20)

    # when
    first = reports_seed(card_stores=("DEPT001",))

    # then: every balance still equals its ledger
    assert ledgers_check().ok
    # 13 months and more of purchases (members' and walk-in) and of completed card sale orders
    assert first["sale_orders"] > 0 and first["purchases"] > 0 and first["card_payments"] > 0
    assert len(_months(Purchase.objects.all(), "occurred_at")) >= 13
    earliest = timezone.localdate() - timedelta(days=365)
    history = Purchase.objects.filter(occurred_at__date__lt=earliest)
    assert history.filter(member__isnull=False).exists() and history.filter(member__isnull=True).exists()
    completed = SaleOrder.objects.filter(status=SaleOrder.Status.COMPLETED)
    assert len(_months(completed, "completed_at")) >= 13
    assert completed.filter(channel=SaleOrder.Channel.WALK_IN).exists()
    assert completed.filter(channel=SaleOrder.Channel.GROUP).exists()
    # each order's cards were loaded with the order's amounts when it was paid
    order = completed.filter(channel=SaleOrder.Channel.GROUP, order_no__startswith="RD").order_by("pk").first()
    loads = CardLedgerEntry.objects.filter(kind=CardLedgerEntry.Kind.LOAD, receipt_no=order.order_no)
    assert sum(loads.values_list("amount", flat=True)) == order.face_total
    assert set(loads.values_list("created_at", flat=True)) == {order.completed_at}
    # card payments are POS transactions with their ledger row, the same amount on both
    payments = CardTransaction.objects.filter(transaction_id__startswith="RPT")
    assert payments.count() == first["card_payments"]
    assert CardLedgerEntry.objects.filter(transaction__in=payments).count() == payments.count()
    # the definitions, with their beat schedules
    definitions = {definition.name: definition for definition in ReportDefinition.objects.all()}
    assert set(definitions) == {"每日储值卡报表", "每周会员报表", "DEPT001 月度报表"}
    for definition in definitions.values():
        assert definition.periodic_task is not None
        assert definition.periodic_task.task == TASK_NAME and definition.periodic_task.enabled
    daily = definitions["每日储值卡报表"]
    assert (daily.kind, daily.periodic_task.crontab.hour) == ("cards", "6")
    assert list(daily.recipients.values_list("username", flat=True)) == ["finance_hq"]
    monthly = definitions["DEPT001 月度报表"]
    assert monthly.store.code == "DEPT001" and monthly.periodic_task.crontab.day_of_month == "1"
    assert definitions["每周会员报表"].periodic_task.crontab.day_of_week == "1"
    # each ran once, or was named as waiting for its report kind
    for name, definition in definitions.items():
        runs = ReportRun.objects.filter(definition=definition)
        if name in first["runs_skipped"]:
            assert not runs.exists()
        else:
            assert [run.status for run in runs] == [ReportRun.Status.DONE]

    # when: run again
    before = _counts()
    second = reports_seed(card_stores=("DEPT001",))

    # then: nothing new
    assert _counts() == before
    assert all(not second[key] for key in ("sale_orders", "top_ups", "cards", "card_payments", "purchases",
                                           "points_entries", "definitions", "runs"))
