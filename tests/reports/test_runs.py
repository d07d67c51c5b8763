"""Report definitions, their beat schedules, runs, retries, the archive, downloads, mail and retention."""

import io
import json
import os
from datetime import date, timedelta

import openpyxl
import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from reports import services, tasks
from reports.frame import KINDS, ReportParams
from reports.models import ReportDefinition, ReportDownload, ReportRun
from stores.models import StaffProfile
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _definition(**fields) -> ReportDefinition:
    values = {"name": "每日储值卡报表", "kind": "cards", "period": ReportDefinition.Period.YESTERDAY,
              "frequency": ReportDefinition.Frequency.DAILY, "hour": 6, "minute": 0}
    values.update(fields)
    definition = ReportDefinition.objects.create(**values)
    services.definition_schedule_sync(definition)
    return definition


@pytest.mark.parametrize(("period", "today", "expected"), [
    ("yesterday", date(2026, 12, 7), (date(2026, 12, 6), date(2026, 12, 6))),
    ("last_7_days", date(2026, 12, 7), (date(2026, 11, 30), date(2026, 12, 6))),
    ("last_week", date(2026, 12, 7), (date(2026, 11, 30), date(2026, 12, 6))),  # 7 Dec 2026 is a Monday
    ("last_week", date(2026, 12, 9), (date(2026, 11, 30), date(2026, 12, 6))),
    ("month_to_date", date(2026, 12, 7), (date(2026, 12, 1), date(2026, 12, 6))),
    ("month_to_date", date(2026, 12, 1), (date(2026, 11, 1), date(2026, 11, 30))),
    ("last_month", date(2026, 3, 15), (date(2026, 2, 1), date(2026, 2, 28))),
    ("last_month", date(2026, 1, 1), (date(2025, 12, 1), date(2025, 12, 31))),
    ("last_quarter", date(2026, 5, 2), (date(2026, 1, 1), date(2026, 3, 31))),
])
def test_a_period_means_days_already_over(period, today, expected):
    assert services.period_dates(period, today=today) == expected


def test_a_definition_is_scheduled_in_beat_and_follows_its_changes(reference_stores):
    definition = _definition()
    task = PeriodicTask.objects.get(pk=definition.periodic_task_id)
    assert task.task == "reports.definition_run" and json.loads(task.kwargs) == {"definition_id": definition.pk}
    assert (task.crontab.hour, task.crontab.minute, task.crontab.day_of_week) == ("6", "0", "*")
    assert str(task.crontab.timezone) == "Asia/Shanghai"

    definition.frequency = ReportDefinition.Frequency.WEEKLY
    definition.weekday = ReportDefinition.Weekday.MONDAY
    definition.hour = 7
    definition.save()
    services.definition_schedule_sync(definition)
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.day_of_week, task.crontab.day_of_month) == ("7", "1", "*")

    definition.frequency = ReportDefinition.Frequency.MONTHLY
    definition.day_of_month = 3
    definition.active = False
    definition.save()
    services.definition_schedule_sync(definition)
    task.refresh_from_db()
    assert (task.crontab.day_of_month, task.crontab.day_of_week, task.enabled) == ("3", "*", False)

    definition.frequency = ReportDefinition.Frequency.NONE
    definition.save()
    services.definition_schedule_sync(definition)
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert ReportDefinition.objects.get(pk=definition.pk).periodic_task is None


def test_a_manager_schedules_the_daily_card_report_in_the_admin(client, reference_stores, hq_admin):
    client.force_login(hq_admin)
    response = client.post(reverse("admin:reports_reportdefinition_add"), {
        "name": "每日储值卡报表", "kind": "cards", "period": "yesterday", "active": "on", "scope": "hq",
        "frequency": "daily", "hour": "6", "minute": "30", "weekday": "1", "day_of_month": "1",
        "recipients": [hq_admin.pk],
    })
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    definition = ReportDefinition.objects.get(name="每日储值卡报表")
    assert definition.created_by == hq_admin
    task = definition.periodic_task
    assert task is not None and task.enabled and (task.crontab.hour, task.crontab.minute) == ("6", "30")

    # Bad input is named, nothing written: a store scope without a store, an hour of 25.
    response = client.post(reverse("admin:reports_reportdefinition_add"), {
        "name": "坏的", "kind": "cards", "period": "yesterday", "scope": "store", "frequency": "daily",
        "hour": "25", "minute": "0", "weekday": "1", "day_of_month": "1",
    })
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "store" in errors and "hour" in errors
    assert not ReportDefinition.objects.filter(name="坏的").exists()

    # Deleting it removes its beat task; its runs would stay.
    client.post(reverse("admin:reports_reportdefinition_delete", args=[definition.pk]), {"post": "yes"})
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_beats_task_produces_the_report_in_the_archive_and_mails_a_link(client, reference_stores, hq_admin):
    hq_admin.email = "hq@example.com"
    hq_admin.save()
    definition = _definition()
    definition.recipients.add(hq_admin)
    task = PeriodicTask.objects.get(pk=definition.periodic_task_id)

    run_id = tasks.definition_run.apply(kwargs=json.loads(task.kwargs)).get()

    run = ReportRun.objects.get(pk=run_id)
    assert run.status == ReportRun.Status.DONE, run.error
    assert run.trigger == ReportRun.Trigger.SCHEDULE and run.definition == definition
    yesterday = timezone.localdate() - timedelta(days=1)
    assert (run.period_start, run.period_end) == (yesterday, yesterday)
    assert run.file and run.file_size > 0 and run.store is None
    assert [message.to for message in mail.outbox] == [["hq@example.com"]]
    assert reverse("reports:download", args=[run.pk]) in mail.outbox[0].body

    client.force_login(hq_admin)
    page = client.get(reverse("reports:archive"))
    assert page.status_code == 200 and run in page.context["page"].object_list
    download = client.get(reverse("reports:download", args=[run.pk]))
    assert download.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(download.streaming_content)), read_only=True)
    assert len(workbook.sheetnames) >= 1
    assert ReportDownload.objects.filter(run=run, user=hq_admin).count() == 1


def test_a_switched_off_definition_runs_nothing(reference_stores):
    definition = _definition(active=False)
    assert tasks.definition_run.apply(kwargs={"definition_id": definition.pk}).get() is None
    assert tasks.definition_run.apply(kwargs={"definition_id": 999999}).get() is None
    assert not ReportRun.objects.exists()


def test_a_store_manager_sees_and_downloads_only_their_stores_reports(client, dept001, super001, dept001_manager):
    dept = services.definition_run(definition=_definition(
        name="DEPT001 月度", kind="members", scope="store", store=dept001, period="last_month"))
    superstore = services.definition_run(definition=_definition(
        name="SUPER001 月度", kind="members", scope="store", store=super001, period="last_month"))
    headquarters = services.definition_run(definition=_definition(name="总部会员", kind="members"))
    assert dept.store == dept001 and dept.params["store_ids"] == [dept001.pk]

    client.force_login(dept001_manager)
    listed = list(client.get(reverse("reports:archive")).context["page"].object_list)
    assert listed == [dept]
    assert client.get(reverse("reports:download", args=[dept.pk])).status_code == 200
    for other in (superstore, headquarters):
        assert client.get(reverse("reports:download", args=[other.pk])).status_code == 404
        assert client.get(reverse("admin:reports_reportrun_change", args=[other.pk])).status_code in (302, 404)
    assert ReportDownload.objects.filter(user=dept001_manager).count() == 1
    # The admin's run list is scoped the same way, and definitions are headquarters' screen.
    changelist = client.get(reverse("admin:reports_reportrun_changelist"))
    assert list(changelist.context["cl"].result_list) == [dept]
    assert client.get(reverse("admin:reports_reportdefinition_changelist")).status_code == 403


def test_the_archive_wants_a_login_and_the_permission(client, reference_stores):
    response = client.get(reverse("reports:archive"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    nobody = StaffFactory(username="nobody", scope=StaffProfile.Scope.HQ)
    client.force_login(nobody)
    assert client.get(reverse("reports:archive")).status_code == 403
    assert client.get(reverse("reports:download", args=[1])).status_code == 403
    viewer = StaffFactory(username="viewer", group="报表查看", scope=StaffProfile.Scope.HQ)
    client.force_login(viewer)
    assert client.get(reverse("reports:archive")).status_code == 200
    assert client.get(reverse("reports:download", args=[999999])).status_code == 404
    assert client.get(reverse("reports:archive") + "?kind=%00<script>&page=x").status_code == 200


def test_a_failed_run_is_kept_and_can_be_retried(client, reference_stores, hq_admin, monkeypatch):
    params = ReportParams(start=date(2026, 11, 1), end=date(2026, 11, 30))
    services.report_run_create(kind="members", params=params)  # loads the kinds
    kind = KINDS["members"]

    def broken(params):
        raise RuntimeError("database went away")

    monkeypatch.setitem(KINDS, "members", kind.__class__(code="members", label=kind.label, build=broken))
    failed = services.report_run_create(kind="members", params=params, user=hq_admin)
    assert failed.status == ReportRun.Status.FAILED and "database went away" in failed.error
    assert not failed.file and not failed.downloadable

    client.force_login(hq_admin)
    assert client.get(reverse("reports:download", args=[failed.pk])).status_code == 404
    monkeypatch.setitem(KINDS, "members", kind)
    response = client.post(reverse("admin:reports_reportrun_changelist"),
                           {"action": "retry", "_selected_action": [failed.pk]}, follow=True)
    assert response.status_code == 200
    retry = ReportRun.objects.get(retry_of=failed)
    assert retry.status == ReportRun.Status.DONE and retry.trigger == ReportRun.Trigger.RETRY
    assert retry.params == failed.params

    # A done run is not retried: the refusal is a message, nothing is run.
    response = client.post(reverse("admin:reports_reportrun_changelist"),
                           {"action": "retry", "_selected_action": [retry.pk]}, follow=True)
    assert any("failed" in str(message) or "失败" in str(message) for message in response.context["messages"])
    assert not ReportRun.objects.filter(retry_of=retry).exists()


def test_the_same_parameters_give_the_same_numbers(reference_stores):
    params = ReportParams(start=date(2026, 11, 1), end=date(2026, 11, 30))
    for kind in ("cards", "members", "points"):
        first = services.report_run_create(kind=kind, params=params)
        second = services.report_run_create(kind=kind, params=params)
        assert first.status == second.status == ReportRun.Status.DONE, (first.error, second.error)
        assert first.figures == second.figures and first.rows == second.rows


def test_old_files_are_pruned_and_their_runs_stay(client, reference_stores, hq_admin, settings):
    settings.REPORTS_RETENTION_DAYS = 30
    params = ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31))
    old = services.report_run_create(kind="members", params=params)
    fresh = services.report_run_create(kind="members", params=params)
    ReportRun.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=31))
    path = old.file.path

    assert tasks.runs_prune.apply().get() == 1

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.pruned_at is not None and not old.file and not old.downloadable
    assert not os.path.exists(path)
    assert fresh.downloadable
    client.force_login(hq_admin)
    assert client.get(reverse("reports:download", args=[old.pk])).status_code == 404
    assert services.runs_prune() == 0


def test_the_definition_and_run_pages_open_in_chinese(client, reference_stores, hq_admin):
    definition = _definition()
    run = services.definition_run(definition=definition, trigger=ReportRun.Trigger.MANUAL)
    client.force_login(hq_admin)
    for url in (reverse("admin:reports_reportdefinition_changelist"),
                reverse("admin:reports_reportdefinition_change", args=[definition.pk]),
                reverse("admin:reports_reportrun_changelist"),
                reverse("admin:reports_reportrun_change", args=[run.pk]),
                reverse("admin:reports_reportdownload_changelist"),
                reverse("reports:archive")):
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, url
    # "Run now" from the definitions' list.
    response = client.post(reverse("admin:reports_reportdefinition_changelist"),
                           {"action": "run_now", "_selected_action": [definition.pk]}, follow=True)
    assert response.status_code == 200
    assert ReportRun.objects.filter(definition=definition).count() == 2
