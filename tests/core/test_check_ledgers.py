"""manage.py check_ledgers (CONTRACT section 1) and the registry of ledger checks in core.ledgers."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from core import ledgers
from core.ledgers import LedgerBatch, LedgerDifference, LedgersOutOfBalance, ledgers_check
from core.tasks import check_ledgers as check_ledgers_task
from membership.models import Member, PointsEntry
from membership.services import points_post
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def members_with_points():
    members = [register(name=f"会员{i}", phone=f"1380000000{i}") for i in range(5)]
    for index, member in enumerate(members):
        for points in (100, -40, 7 * index + 1):
            points_post(member=member, points=points, kind="earn" if points > 0 else "redeem")
    return members


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("check_ledgers", *args, stdout=out)
    return out.getvalue()


def run_failing(*args) -> tuple[str, str]:
    from io import StringIO

    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("check_ledgers", *args, stdout=out)
    return out.getvalue(), str(error.value)


def corrupt_cache(member, points: int) -> None:
    """What a mistaken script does: change the cached balance without a ledger row."""
    Member.objects.filter(pk=member.pk).update(points=points)


def test_clean_ledgers_pass_and_print_the_count(members_with_points):
    output = run()
    assert "Checked 5 accounts" in output
    assert "membership.points: 5 accounts" in output


def test_empty_database_passes_with_zero_accounts():
    assert "Checked 0 accounts" in run()


@pytest.mark.ledgers_broken
def test_corrupted_points_cache_fails_naming_the_member(members_with_points):
    victim = members_with_points[2]
    corrupt_cache(victim, 9999)
    output, reason = run_failing()
    assert f"member {victim.member_no}" in output
    assert "balance 9999, ledger 75" in output
    assert "\n" not in reason.strip()
    assert "in 5 accounts checked" in reason
    for other in members_with_points[:2] + members_with_points[3:]:
        assert other.member_no not in output


@pytest.mark.ledgers_broken
def test_command_line_exits_1_with_a_one_line_reason(members_with_points, capsys, monkeypatch):
    # run_from_argv closes the connections when done; the test's transaction must survive it.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    corrupt_cache(members_with_points[0], 1)
    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "check_ledgers"])
    assert exit_info.value.code == 1
    stderr = capsys.readouterr().err.strip()
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith("CommandError:") and "difference" in stderr


def test_command_line_exits_0_when_clean(members_with_points, capsys, monkeypatch):
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    execute_from_command_line(["manage.py", "check_ledgers"])
    assert "Checked 5 accounts" in capsys.readouterr().out


@pytest.mark.ledgers_broken
def test_ledger_row_without_a_balance_change_is_found(members_with_points):
    member = members_with_points[0]
    PointsEntry.objects.create(member=member, kind="earn", points=5, balance_after=66)
    output, _ = run_failing()
    assert f"member {member.member_no}" in output
    assert "balance 61, ledger 66" in output


@pytest.mark.ledgers_broken
def test_last_balance_after_that_disagrees_is_found_even_when_the_sum_agrees(members_with_points):
    member = members_with_points[1]
    PointsEntry.objects.create(member=member, kind="earn", points=10, balance_after=5)
    corrupt_cache(member, 78)
    output, reason = run_failing()
    assert f"member {member.member_no} (id {member.pk}): balance 78, ledger 5" in output
    assert "balance after the last ledger entry" in output
    assert "1 difference(s)" in reason


@pytest.mark.ledgers_broken
def test_points_without_any_ledger_row_are_found():
    member = register(name="王五", phone="13900000000")
    corrupt_cache(member, 10)
    output, _ = run_failing()
    assert "balance 10, ledger 0" in output


@pytest.mark.ledgers_broken
def test_differences_are_found_across_batches(members_with_points):
    corrupt_cache(members_with_points[1], 1)
    corrupt_cache(members_with_points[4], 2)
    report = ledgers_check(batch_size=2, only=["membership.points"])
    assert report.checked == 5
    assert [d.balance for d in report.differences] == [1, 2]


@pytest.mark.ledgers_broken
def test_show_limits_the_listing_but_counts_everything(members_with_points):
    for member in members_with_points:
        corrupt_cache(member, 1)
    output, reason = run_failing("--show", "2", "--batch-size", "3")
    assert output.count("  member ") == 2
    assert "... and 3 more" in output
    assert reason.startswith("5 difference(s)")


@pytest.mark.parametrize("args, message", [
    (["--only", "cards.nothing"], "No such ledger check: cards.nothing"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_options_fail_with_a_reason(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("check_ledgers", *args)


@pytest.mark.ledgers_broken
def test_checks_registered_by_other_apps_run_too(members_with_points, monkeypatch):
    def cards_check(batch_size):
        yield LedgerBatch(checked=3)
        yield LedgerBatch(checked=1, differences=[LedgerDifference(account="account 6200001", balance=5, ledger=4)])

    monkeypatch.setattr(ledgers, "_checks", dict(ledgers._checks))
    ledgers.register("example.balance", label="card balances", run=cards_check)
    output, reason = run_failing()
    assert "example.balance: 4 accounts" in output
    assert "account 6200001: balance 5, ledger 4" in output
    assert "in 9 accounts checked" in reason


def test_a_check_name_cannot_be_taken_twice(monkeypatch):
    monkeypatch.setattr(ledgers, "_checks", dict(ledgers._checks))
    with pytest.raises(ValueError, match="twice"):
        ledgers.register("membership.points", label="again", run=lambda batch_size: iter(()))


def test_nightly_task_reports_the_count(members_with_points):
    result = check_ledgers_task.apply().get()

    assert result["per_check"]["membership.points"] == 5
    assert result["checked"] == sum(result["per_check"].values())


@pytest.mark.ledgers_broken
def test_nightly_task_fails_when_a_balance_differs(members_with_points):
    corrupt_cache(members_with_points[3], 0)
    with pytest.raises(LedgersOutOfBalance, match=members_with_points[3].member_no):
        check_ledgers_task.apply()


def test_help_works_without_a_database():
    result = subprocess.run(
        [sys.executable, "manage.py", "check_ledgers", "--help"], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "equals the sum of its ledger" in " ".join(result.stdout.split())
