"""The reconciliation admin (对账): uploading a POS daily file, its errors, the days and their exceptions worked off
(accepted, or a correction asked through approval), the day's report and its Excel, scoped by store."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from settlement.models import PosFile, PosFileLayout, PosLine, ReconDay, ReconException
from settlement.services.reconciliation import pos_file_import
from stores.models import Format
from tests.settlement.conftest import card_pay, card_sold

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
COLUMNS = {"store_code": "门店", "occurred_at": "交易时间", "receipt_no": "小票号", "card_no": "卡号",
           "member_no": "会员号", "amount": "金额"}
HEADER = ["门店", "交易时间", "小票号", "卡号", "会员号", "金额"]
UPLOAD = "admin:settlement_posfile_add"


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def day():
    return timezone.localdate() - timedelta(days=2)


@pytest.fixture
def dept_layout(reference_stores):
    return PosFileLayout.objects.create(code="DEPT_POS", name="百货POS日结", pos_system_code="POS-DEPT",
                                        columns=dict(COLUMNS))


@pytest.fixture
def super_layout(reference_stores):
    return PosFileLayout.objects.create(code="SUPER_POS", name="超市POS日结", pos_system_code="POS-SUPER",
                                        columns=dict(COLUMNS))


def csv_file(rows, *, name="pos.csv", encoding="utf-8"):
    text = "\n".join(",".join(str(cell) for cell in row) for row in [HEADER, *rows]) + "\n"
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def line(day, *, store="DEPT001", hour=12, receipt="R1", card="", member="", amount="100.00"):
    return [store, f"{day:%Y-%m-%d} {hour:02d}:00:00", receipt, card, member, amount]


@pytest.fixture
def dept_day(dept001, card_product, day):
    """DEPT001's day: two card payments in the ledger; the POS file has the first with another amount, misses the
    second, and has a payment the ledger does not know."""
    card = card_sold(store=dept001, day=day, product=card_product)
    card_pay(card, store=dept001, amount="120.50", day=day, receipt_no="R100")
    card_pay(card, store=dept001, amount="80.00", day=day, hour=13, receipt_no="R101")
    return {"card": card, "rows": [
        line(day, receipt="R100", card=card.card_no, amount="125.50"),
        line(day, receipt="R102", card=card.card_no, amount="60.00", hour=14),
    ]}


def _upload(client, layout, *, store, day, upload, **extra):
    data = {"layout": layout.pk, "business_date": day.isoformat(), "file": upload}
    if store is not None:
        data["store"] = store.pk
    data.update(extra)
    return client.post(reverse(UPLOAD), data, **EN)


# --- uploads ---------------------------------------------------------------------------------------------------------


def test_a_store_manager_uploads_the_stores_file_and_sees_its_exceptions(client, dept001_manager, dept001,
                                                                         dept_layout, dept_day, day):
    client.force_login(dept001_manager)

    form_page = client.get(reverse(UPLOAD))
    response = _upload(client, dept_layout, store=dept001, day=day, upload=csv_file(dept_day["rows"]))

    assert form_page.status_code == 200 and "format" not in form_page.context["form"].fields
    pos_file = PosFile.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{pos_file.pk}/change/")
    assert pos_file.store == dept001 and pos_file.uploaded_by == dept001_manager
    recon_day = ReconDay.objects.get(store=dept001, business_date=day)
    assert recon_day.status == ReconDay.Status.OPEN
    kinds = sorted(ReconException.objects.filter(day=recon_day).values_list("kind", flat=True))
    assert kinds == sorted([ReconException.Kind.AMOUNT_DIFFERS, ReconException.Kind.MISSING_IN_POS,
                            ReconException.Kind.MISSING_IN_LEDGER])
    page = client.get(reverse("admin:settlement_reconday_change", args=[recon_day.pk]), **EN).content.decode()
    assert "R100" in page and "125.50" in page


def test_a_bad_file_is_refused_naming_its_lines_and_nothing_is_imported(client, dept001_manager, dept001,
                                                                        dept_layout, day):
    client.force_login(dept001_manager)

    response = _upload(client, dept_layout, store=dept001, day=day, upload=csv_file([
        line(day, receipt="R1", amount="abc"), line(day, receipt="R2", store="NOPE999"),
    ]))

    assert response.status_code == 200
    errors = str(response.context["form"].errors)
    assert "3" in errors and "NOPE999" in errors
    assert not PosFile.objects.exists() and not PosLine.objects.exists()


def test_the_same_file_twice_is_recognised(client, dept001_manager, dept001, dept_layout, dept_day, day):
    client.force_login(dept001_manager)
    _upload(client, dept_layout, store=dept001, day=day, upload=csv_file(dept_day["rows"]))

    again = _upload(client, dept_layout, store=dept001, day=day, upload=csv_file(dept_day["rows"], name="b.csv"))

    assert again.status_code == 200 and "already uploaded" in str(again.context["form"].errors)
    assert PosFile.objects.count() == 1 and PosLine.objects.count() == 2


def test_a_store_manager_cannot_upload_for_another_store(client, dept001_manager, super001, super_layout, day):
    client.force_login(dept001_manager)

    response = _upload(client, super_layout, store=super001, day=day,
                       upload=csv_file([line(day, store="SUPER001")]))

    assert response.status_code == 200 and "store" in response.context["form"].errors
    assert not PosFile.objects.exists()


def test_a_store_manager_cannot_upload_a_formats_file(client, dept001_manager, dept_layout, day):
    client.force_login(dept001_manager)

    response = _upload(client, dept_layout, store=None, day=day, upload=csv_file([line(day)]),
                       format=Format.objects.get(code="DEPT").pk)

    assert response.status_code == 200 and response.context["form"].errors
    assert not PosFile.objects.exists()


def test_headquarters_upload_a_formats_file(client, hq_admin, dept_layout, dept_day, day):
    client.force_login(hq_admin)

    response = _upload(client, dept_layout, store=None, day=day, upload=csv_file(dept_day["rows"]),
                       format=Format.objects.get(code="DEPT").pk)

    assert response.status_code == 302
    assert PosFile.objects.get().store is None


# --- scoping ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def two_stores_days(dept001, super001, dept_layout, super_layout, dept_day, hq_admin, day):
    pos_file_import(layout=dept_layout, uploaded=csv_file(dept_day["rows"]), business_date=day, user=hq_admin,
                    store=dept001)
    pos_file_import(layout=super_layout, uploaded=csv_file([line(day, store="SUPER001", receipt="S-77")]),
                    business_date=day, user=hq_admin, store=super001)
    return {code: ReconDay.objects.get(store__code=code, business_date=day) for code in ("DEPT001", "SUPER001")}


def test_a_store_manager_sees_only_their_stores_files_days_and_exceptions(client, dept001_manager,
                                                                          two_stores_days):
    client.force_login(dept001_manager)
    other_day = two_stores_days["SUPER001"]
    other_exception = ReconException.objects.get(day=other_day)
    other_file = PosFile.objects.get(store__code="SUPER001")

    days = client.get(reverse("admin:settlement_reconday_changelist"))
    exceptions = client.get(reverse("admin:settlement_reconexception_changelist"))
    files = client.get(reverse("admin:settlement_posfile_changelist"))

    assert {day.store.code for day in days.context["cl"].result_list} == {"DEPT001"}
    assert {exception.day.store.code for exception in exceptions.context["cl"].result_list} == {"DEPT001"}
    assert {pos_file.store.code for pos_file in files.context["cl"].result_list} == {"DEPT001"}
    for url in (reverse("admin:settlement_reconday_change", args=[other_day.pk]),
                reverse("admin:settlement_reconexception_change", args=[other_exception.pk]),
                reverse("admin:settlement_posfile_change", args=[other_file.pk])):
        response = client.get(url, follow=True)
        assert "S-77" not in response.content.decode(), url
    assert client.get(reverse("admin:settlement_reconexception_accept", args=[other_exception.pk])).status_code \
        == 404


def test_a_formats_file_is_seen_by_the_managers_of_its_stores_only(client, dept001_manager, super001_manager,
                                                                   hq_admin, dept_layout, dept_day, day):
    pos_file_import(layout=dept_layout, uploaded=csv_file(dept_day["rows"]), business_date=day, user=hq_admin,
                    format=Format.objects.get(code="DEPT"))
    pos_file = PosFile.objects.get()

    client.force_login(dept001_manager)
    own = client.get(reverse("admin:settlement_posfile_change", args=[pos_file.pk]))
    client.force_login(super001_manager)
    other = client.get(reverse("admin:settlement_posfile_history", args=[pos_file.pk]))

    assert own.status_code == 200
    assert other.status_code == 404


def test_the_pos_layouts_are_headquarters_screens(client, dept001_manager, dept_layout):
    client.force_login(dept001_manager)

    assert client.get(reverse("admin:settlement_posfilelayout_changelist")).status_code == 403


# --- working the exceptions off ----------------------------------------------------------------------------------


def test_an_exception_is_accepted_with_a_reason_from_its_page(client, dept001_manager, two_stores_days):
    client.force_login(dept001_manager)
    exception = ReconException.objects.get(day=two_stores_days["DEPT001"],
                                           kind=ReconException.Kind.MISSING_IN_LEDGER)

    empty = client.post(reverse("admin:settlement_reconexception_accept", args=[exception.pk]), {"reason": ""})
    done = client.post(reverse("admin:settlement_reconexception_accept", args=[exception.pk]),
                       {"reason": "小票作废，POS未同步"})

    assert empty.status_code == 200 and "reason" in empty.context["form"].errors
    assert done.status_code == 302
    exception.refresh_from_db()
    assert exception.status == ReconException.Status.ACCEPTED and exception.resolved_by == dept001_manager


def test_an_exception_already_worked_off_is_refused_on_the_form(client, dept001_manager, two_stores_days):
    client.force_login(dept001_manager)
    exception = ReconException.objects.get(day=two_stores_days["DEPT001"],
                                           kind=ReconException.Kind.MISSING_IN_LEDGER)
    url = reverse("admin:settlement_reconexception_accept", args=[exception.pk])
    client.post(url, {"reason": "first"})

    again = client.post(url, {"reason": "second"})

    assert again.status_code == 200 and again.context["form"].errors
    exception.refresh_from_db()
    assert exception.reason == "first"


def test_a_correction_is_asked_through_approval_with_the_list_action(client, dept001_manager, two_stores_days):
    client.force_login(dept001_manager)
    exception = ReconException.objects.get(day=two_stores_days["DEPT001"],
                                           kind=ReconException.Kind.AMOUNT_DIFFERS)
    changelist = reverse("admin:settlement_reconexception_changelist")
    selection = {"action": "correct_selected", "_selected_action": [exception.pk]}

    asked = client.post(changelist, selection)
    done = client.post(changelist, {**selection, "apply": "1", "reason": "POS是对的"})

    assert asked.status_code == 200 and "form" in asked.context
    assert done.status_code == 302
    exception.refresh_from_db()
    approval = ApprovalRequest.objects.get(action="settlement.exception_correct")
    assert exception.status in (ReconException.Status.CORRECTING, ReconException.Status.CORRECTED)
    assert approval.requested_by == dept001_manager


def test_accepting_with_the_list_action_works_each_exception_off(client, dept001_manager, two_stores_days):
    client.force_login(dept001_manager)
    day = two_stores_days["DEPT001"]
    ids = list(ReconException.objects.filter(day=day).values_list("pk", flat=True))

    client.post(reverse("admin:settlement_reconexception_changelist"),
                {"action": "accept_selected", "_selected_action": ids, "apply": "1", "reason": "门店已核对"})

    assert set(ReconException.objects.filter(day=day).values_list("status", flat=True)) == {
        ReconException.Status.ACCEPTED}
    day.refresh_from_db()
    assert day.status == ReconDay.Status.ACCEPTED


def test_matching_a_day_again_needs_the_change_permission(client, dept001_manager, finance_hq, two_stores_days):
    day = two_stores_days["DEPT001"]
    changelist = reverse("admin:settlement_reconday_changelist")

    client.force_login(dept001_manager)
    manager_actions = client.get(changelist).context["cl"].model_admin.get_actions(
        client.get(changelist).wsgi_request)
    client.force_login(finance_hq)
    response = client.post(changelist, {"action": "match_again", "_selected_action": [day.pk]})

    assert "match_again" not in manager_actions
    assert response.status_code == 302
    day.refresh_from_db()
    assert day.matched_at is not None


# --- the report ------------------------------------------------------------------------------------------------------


def test_the_report_shows_the_users_stores_and_downloads_as_excel(client, dept001_manager, two_stores_days, day):
    client.force_login(dept001_manager)
    url = reverse("admin:settlement_recon_report")

    page = client.get(url, {"business_date": day.isoformat()}, **EN)
    excel = client.get(url, {"business_date": day.isoformat(), "export": "xlsx"})

    assert page.status_code == 200
    assert [item["row"].store.code for item in page.context["rows"]] == ["DEPT001"]
    assert "185.50" in page.content.decode()
    rows = list(load_workbook(io.BytesIO(b"".join(excel.streaming_content))).active.iter_rows(values_only=True))
    assert any(row and str(row[0]).startswith("DEPT001") for row in rows)
    assert not any(row and str(row[0]).startswith("SUPER001") for row in rows)


def test_headquarters_see_every_store_in_the_report(client, hq_admin, two_stores_days, day):
    client.force_login(hq_admin)

    page = client.get(reverse("admin:settlement_recon_report"), {"business_date": day.isoformat()})

    assert [item["row"].store.code for item in page.context["rows"]] == ["DEPT001", "SUPER001"]
    assert sum(item["row"].pos_total for item in page.context["rows"]) == Decimal("285.50")


def test_a_correction_asked_on_the_page_and_approved_in_the_inbox_corrects_the_ledger(
        client, dept001_manager, finance_hq, two_stores_days, dept_day):
    exception = ReconException.objects.get(day=two_stores_days["DEPT001"],
                                           kind=ReconException.Kind.AMOUNT_DIFFERS)
    card = dept_day["card"]
    card.refresh_from_db()
    balance_before = card.balance
    client.force_login(dept001_manager)
    page = client.get(reverse("admin:settlement_reconexception_change", args=[exception.pk]))
    client.post(reverse("admin:settlement_reconexception_correct", args=[exception.pk]), {"reason": "POS是对的"})
    approval = ApprovalRequest.objects.get(action="settlement.exception_correct")
    client.force_login(finance_hq)

    client.post(reverse("admin:approvals_approvalrequest_decide", args=[approval.pk]), {"_approve": "1"})

    assert reverse("admin:settlement_reconexception_correct", args=[exception.pk]) in page.content.decode()
    exception.refresh_from_db()
    card.refresh_from_db()
    assert exception.status == ReconException.Status.CORRECTED
    assert card.balance == balance_before - Decimal("5.00")  # the POS took 125.50, the ledger 120.50
    shown = client.get(reverse("admin:settlement_reconexception_change", args=[exception.pk])).content.decode()
    assert reverse("admin:approvals_approvalrequest_change", args=[approval.pk]) in shown
