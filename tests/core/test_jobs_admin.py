"""The scheduled jobs in the admin (config/admin.py) and `manage.py run_job`: last run and result, run now,
headquarters only. Tests have no broker, so "run now" runs the job in process."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from stores.models import StaffProfile
from tests.factories import StaffFactory

JOBS_URL = "/admin/django_celery_beat/periodictask/"
RESULTS_URL = "/admin/django_celery_results/taskresult/"
CHECK = "core: check ledgers"


def _result(task_id, *, status, job=CHECK, task="core.check_ledgers", minutes_ago=0):
    result = TaskResult.objects.create(task_id=task_id, task_name=task, periodic_task_name=job, status=status,
                                       result="{}")
    TaskResult.objects.filter(pk=result.pk).update(date_done=timezone.now() - timedelta(minutes=minutes_ago))
    return result


@pytest.mark.django_db
def test_the_jobs_list_shows_schedule_last_run_and_latest_result(client, hq_admin):
    PeriodicTask.objects.filter(name=CHECK).update(last_run_at=timezone.now() - timedelta(hours=3))
    _result("older", status="FAILURE", minutes_ago=90)
    latest = _result("latest", status="SUCCESS", minutes_ago=5)
    # a manual run of another job's task, and a result of another schedule, are not this job's
    _result("other", status="FAILURE", job="membership: expire points", task="membership.points_expire")
    client.force_login(hq_admin)

    response = client.get(JOBS_URL, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    page = response.content.decode()
    row = page[page.index(">Check ledgers<"):].split("</tr>")[0]  # a job shows by its label
    assert "Every day at 04:30 (Asia/Shanghai)" in row
    assert f'<a href="{RESULTS_URL}{latest.pk}/change/">Succeeded</a>' in row
    expire_row = page[page.index(">Expire points<"):].split("</tr>")[0]
    assert "Failed" in expire_row
    assert "No result stored" in page[page.index(">Evaluate member tiers<"):].split("</tr>")[0]
    for column in ("Last run", "Last result", "Last result at"):
        assert column in page


@pytest.mark.django_db
def test_the_jobs_list_is_chinese_by_default(client, hq_admin):
    client.force_login(hq_admin)

    response = client.get(JOBS_URL)

    assert response.status_code == 200
    assert 'lang="zh-hans"' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("url", [JOBS_URL, RESULTS_URL, "/admin/django_celery_beat/crontabschedule/"])
def test_only_headquarters_see_the_jobs_even_with_the_permissions(client, dept001, url):
    # a store-scoped user given the headquarters role's permissions
    store_user = StaffFactory(username="store_with_hq_perms", group="总部管理员", scope=StaffProfile.Scope.STORES,
                              stores=[dept001])
    client.force_login(store_user)

    assert client.get(url).status_code == 403
    assert "django_celery_beat" not in client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_a_store_manager_cannot_open_the_jobs(client, dept001_manager):
    client.force_login(dept001_manager)

    assert client.get(JOBS_URL).status_code == 403


@pytest.mark.django_db
def test_run_now_runs_the_job_here_without_a_broker(client, hq_admin):
    job = PeriodicTask.objects.get(name=CHECK)
    client.force_login(hq_admin)

    response = client.post(JOBS_URL, {"action": "run_tasks", "_selected_action": [job.pk]}, follow=True,
                           HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "Check ledgers ran." in [str(message) for message in response.context["messages"]]  # its label


@pytest.mark.django_db
def test_run_now_reports_a_failing_job_instead_of_an_error_page(client, hq_admin, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("ledger table missing")

    job = PeriodicTask.objects.get(name=CHECK)
    unknown = PeriodicTask.objects.create(name="gone", task="nothing.registered", interval=job.interval,
                                          crontab=job.crontab)
    client.force_login(hq_admin)

    # only for the request: the check after every test needs the real ledgers_check
    with monkeypatch.context() as patch:
        patch.setattr("core.ledgers.ledgers_check", broken)
        response = client.post(JOBS_URL, {"action": "run_tasks", "_selected_action": [job.pk, unknown.pk]},
                               follow=True, HTTP_ACCEPT_LANGUAGE="en")

    shown = [str(message) for message in response.context["messages"]]
    assert "Check ledgers failed: ledger table missing" in shown  # the job by its label
    assert "gone: no installed app has the task nothing.registered." in shown


@pytest.mark.django_db
def test_run_now_needs_the_change_permission(client):
    viewer = StaffFactory(username="hq_viewer", scope=StaffProfile.Scope.HQ,
                          permissions=["django_celery_beat.view_periodictask"])
    client.force_login(viewer)

    response = client.get(JOBS_URL)

    assert response.status_code == 200
    assert 'value="run_tasks"' not in response.content.decode()


@pytest.mark.django_db
def test_run_job_command_runs_a_job_by_name_or_task():
    out = io.StringIO()

    call_command("run_job", CHECK, stdout=out)
    call_command("run_job", "membership.merge_candidates_detect", stdout=out)

    assert f"{CHECK} ran here: {{'checked'" in out.getvalue()
    assert "membership: detect merge candidates ran here: 0" in out.getvalue()


@pytest.mark.django_db
def test_run_job_command_names_the_jobs_when_it_knows_none():
    with pytest.raises(CommandError, match=r"No scheduled job named 'nightly'; there are: .*core: check ledgers"):
        call_command("run_job", "nightly")
