"""Brand card programmes and their SKU lists: cards.services.brands."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import Workbook

from approvals.errors import SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from cards.errors import CardOperationRefused, ProgrammeForbidden, ProgrammeInvalid, SkuListInvalid
from cards.models import Brand, BrandProgramme, BrandSku, BrandSkuList, CardProduct
from cards.services.brands import (
    PROGRAMME_START,
    programme_create,
    programme_end,
    programme_submit,
    programme_update,
    sku_list_confirm,
    sku_list_diff,
    sku_list_discard,
    sku_list_in_force,
    sku_list_stage,
)

TODAY = timezone.localdate


def xlsx_bytes(rows, header=("sku", "name")) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    if header:
        sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows, header=("sku", "name"), encoding="utf-8-sig") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def skus(first: int, count: int) -> list[tuple[str, str]]:
    return [(f"69{number:011d}", f"海天酱油 {number}") for number in range(first, first + count)]


@pytest.fixture
def haitian(db) -> Brand:
    return Brand.objects.create(code="HAITIAN", name="海天味业", contact_name="李经理", contact_phone="0757-82836888",
                                billing_name="佛山市海天调味食品股份有限公司")


@pytest.fixture
def haitian_card(card_rules, haitian) -> CardProduct:
    return CardProduct.objects.create(code="BRANDHT", name="海天联名卡", kind=CardProduct.Kind.REGISTERED,
                                      reloadable=True, max_balance=Decimal("5000.00"), brand=haitian)


def programme_terms(brand, product, **overrides) -> dict:
    return {"code": "HT5", "name": "海天联名卡 95折", "brand": brand, "product": product,
            "discount_rate": Decimal("0.05"), "brand_share": Decimal("0.8"), "starts_on": TODAY(), **overrides}


@pytest.fixture
def draft(hq_admin, haitian, haitian_card) -> BrandProgramme:
    return programme_create(**programme_terms(haitian, haitian_card), created_by=hq_admin)


def staged(programme, user, rows, *, valid_from=None, name="skus.xlsx") -> BrandSkuList:
    data = xlsx_bytes(rows) if name.endswith(".xlsx") else csv_bytes(rows)
    return sku_list_stage(programme=programme, file=io.BytesIO(data), file_name=name,
                          valid_from=valid_from or max(TODAY(), programme.starts_on), user=user)


def confirmed(programme, user, rows, *, valid_from=None) -> BrandSkuList:
    return sku_list_confirm(sku_list=staged(programme, user, rows, valid_from=valid_from), user=user)


def started(programme, *, requester, approver) -> BrandProgramme:
    if not programme.sku_lists.filter(confirmed_at__isnull=False).exists():
        confirmed(programme, requester, skus(1, 3))
    request = programme_submit(programme=programme, requested_by=requester, reason="")
    approval_request_approve(approval_request=request, approver=approver)
    programme.refresh_from_db()
    return programme


def field_errors(error) -> dict:
    return {name: " ".join(messages) for name, messages in (error.value.fields or {}).items()}


# --- creating and changing ------------------------------------------------------------------------------------


def test_create_stores_a_draft_with_the_terms_cleaned(draft, hq_admin):
    assert draft.status == BrandProgramme.Status.DRAFT
    assert (draft.discount_rate, draft.brand_share, draft.created_by) == (Decimal("0.0500"), Decimal("0.8000"),
                                                                          hq_admin)
    assert draft.history.count() == 1


def test_create_refuses_a_product_of_another_brand(hq_admin, haitian, haitian_card, stored_product):
    with pytest.raises(ProgrammeInvalid) as error:
        programme_create(**programme_terms(haitian, stored_product), created_by=hq_admin)
    assert "STORED is not a HAITIAN card" in field_errors(error)["product"]
    assert not BrandProgramme.objects.exists()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"discount_rate": Decimal("0")}, "discount_rate"),
    ({"discount_rate": Decimal("1")}, "discount_rate"),
    ({"discount_rate": "0.5x"}, "discount_rate"),
    ({"discount_rate": Decimal("0.00005")}, "discount_rate"),
    ({"brand_share": Decimal("1.01")}, "brand_share"),
    ({"brand_share": Decimal("-0.1")}, "brand_share"),
    ({"cap_per_receipt": Decimal("0")}, "cap_per_receipt"),
    ({"cap_per_card": Decimal("-5")}, "cap_per_card"),
    ({"cap_per_receipt": Decimal("50"), "cap_per_card": Decimal("20")}, "cap_per_card"),
    ({"ends_on": timezone.localdate() - timedelta(days=1)}, "ends_on"),
    ({"code": "ht 5"}, "code"),
    ({"name": "  "}, "name"),
])
def test_create_names_each_bad_term(hq_admin, haitian, haitian_card, overrides, field):
    with pytest.raises(ProgrammeInvalid) as error:
        programme_create(**programme_terms(haitian, haitian_card, **overrides), created_by=hq_admin)
    assert field in error.value.fields
    assert not BrandProgramme.objects.exists()


def test_share_may_be_zero_or_one_and_codes_are_upper_case(hq_admin, haitian, haitian_card):
    programme = programme_create(**programme_terms(haitian, haitian_card, code="ht-zero", brand_share="0",
                                                   ends_on=TODAY() + timedelta(days=30)), created_by=hq_admin)
    assert (programme.code, programme.brand_share) == ("HT-ZERO", Decimal("0"))


def test_create_refuses_a_code_taken(draft, hq_admin, haitian, haitian_card):
    with pytest.raises(ProgrammeInvalid) as error:
        programme_create(**programme_terms(haitian, haitian_card, code="ht5"), created_by=hq_admin)
    assert "HT5 already exists" in field_errors(error)["code"]


def test_programme_lies_within_the_brand_contract(hq_admin, haitian, haitian_card):
    haitian.contract_starts_on = TODAY()
    haitian.contract_ends_on = TODAY() + timedelta(days=365)
    haitian.save()
    with pytest.raises(ProgrammeInvalid) as error:
        programme_create(**programme_terms(haitian, haitian_card), created_by=hq_admin)
    assert "contract ends on" in field_errors(error)["ends_on"]
    with pytest.raises(ProgrammeInvalid) as error:
        programme_create(**programme_terms(haitian, haitian_card, starts_on=TODAY() - timedelta(days=1),
                                           ends_on=TODAY() + timedelta(days=30)), created_by=hq_admin)
    assert "contract starts on" in field_errors(error)["starts_on"]


def test_only_headquarters_staff_with_the_permission_create(haitian, haitian_card, dept001_manager, hq_finance):
    for user in (dept001_manager, hq_finance):
        with pytest.raises(ProgrammeForbidden):
            programme_create(**programme_terms(haitian, haitian_card), created_by=user)
    assert not BrandProgramme.objects.exists()


def test_update_changes_any_term_of_a_draft(draft, hq_admin):
    programme_update(programme=draft, data={"discount_rate": Decimal("0.08"), "cap_per_card": Decimal("200.00")},
                     user=hq_admin)
    draft.refresh_from_db()
    assert (draft.discount_rate, draft.cap_per_card) == (Decimal("0.0800"), Decimal("200.00"))
    assert draft.history.first().history_change_reason == "changed: discount_rate, cap_per_card"


def test_update_of_a_draft_checks_the_terms(draft, hq_admin):
    with pytest.raises(ProgrammeInvalid) as error:
        programme_update(programme=draft, data={"discount_rate": Decimal("1.5")}, user=hq_admin)
    assert "discount_rate" in error.value.fields
    draft.refresh_from_db()
    assert draft.discount_rate == Decimal("0.0500")


def test_a_running_programme_changes_only_its_name_and_note(draft, hq_admin, hq_approver):
    programme = started(draft, requester=hq_admin, approver=hq_approver)
    programme_update(programme=programme, data={"name": "海天 新名", "note": "续约"}, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="can no longer change: discount rate"):
        programme_update(programme=programme, data={"discount_rate": Decimal("0.10")}, user=hq_admin)
    programme.refresh_from_db()
    assert (programme.name, programme.note, programme.discount_rate) == ("海天 新名", "续约", Decimal("0.0500"))


# --- starting through approval --------------------------------------------------------------------------------


def test_a_programme_needs_a_confirmed_sku_list_before_it_is_submitted(draft, hq_admin):
    staged(draft, hq_admin, skus(1, 5))
    with pytest.raises(CardOperationRefused, match="no confirmed SKU list"):
        programme_submit(programme=draft, requested_by=hq_admin, reason="")
    draft.refresh_from_db()
    assert draft.status == BrandProgramme.Status.DRAFT
    assert not ApprovalRequest.objects.exists()


def test_submit_waits_for_another_persons_approval_which_starts_it(draft, hq_admin, hq_approver):
    confirmed(draft, hq_admin, skus(1, 5))
    request = programme_submit(programme=draft, requested_by=hq_admin, reason="")
    draft.refresh_from_db()
    assert draft.status == BrandProgramme.Status.PENDING
    assert (request.action, request.status) == (PROGRAMME_START, ApprovalRequest.Status.PENDING)
    request.refresh_from_db()
    assert request.payload["discount_rate"] == "0.0500" and request.payload["sku_count"] == 5
    assert "5% off HAITIAN SKUs paid with BRANDHT cards" in request.reason
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=hq_admin)

    approval_request_approve(approval_request=request, approver=hq_approver)

    draft.refresh_from_db()
    assert draft.status == BrandProgramme.Status.ACTIVE
    assert draft.approved_at is not None
    assert draft.history.first().history_user == hq_approver


def test_a_programme_waiting_for_approval_cannot_change(draft, hq_admin):
    confirmed(draft, hq_admin, skus(1, 5))
    programme_submit(programme=draft, requested_by=hq_admin, reason="")
    with pytest.raises(CardOperationRefused, match="can no longer change"):
        programme_update(programme=draft, data={"name": "x"}, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="SKU lists change only"):
        staged(draft, hq_admin, skus(1, 5))
    with pytest.raises(CardOperationRefused, match="only a draft or a rejected programme"):
        programme_submit(programme=draft, requested_by=hq_admin, reason="")


def test_a_rejected_programme_can_be_corrected_and_submitted_again(draft, hq_admin, hq_approver):
    confirmed(draft, hq_admin, skus(1, 5))
    request = programme_submit(programme=draft, requested_by=hq_admin, reason="")
    approval_request_reject(approval_request=request, approver=hq_approver, comment="折扣太高")
    draft.refresh_from_db()
    assert draft.status == BrandProgramme.Status.REJECTED

    programme_update(programme=draft, data={"discount_rate": Decimal("0.03")}, user=hq_admin)
    again = programme_submit(programme=draft, requested_by=hq_admin, reason="降到 3%")
    approval_request_approve(approval_request=again, approver=hq_approver)
    draft.refresh_from_db()
    assert (draft.status, draft.discount_rate) == (BrandProgramme.Status.ACTIVE, Decimal("0.0300"))


def test_submit_refuses_dates_another_active_programme_of_the_product_covers(draft, hq_admin, hq_approver, haitian,
                                                                            haitian_card):
    started(draft, requester=hq_admin, approver=hq_approver)
    later = programme_create(**programme_terms(haitian, haitian_card, code="HT8",
                                               starts_on=TODAY() + timedelta(days=30)), created_by=hq_admin)
    confirmed(later, hq_admin, skus(1, 3))
    with pytest.raises(CardOperationRefused, match="HT5 .*already covers these dates for card product BRANDHT"):
        programme_submit(programme=later, requested_by=hq_admin, reason="")

    # once the first ends before the second starts, the second may start
    programme_end(programme=draft, user=hq_admin)
    started(later, requester=hq_admin, approver=hq_approver)
    assert later.status == BrandProgramme.Status.ACTIVE


def test_programmes_of_one_product_may_follow_each_other(hq_admin, hq_approver, haitian, haitian_card):
    first = programme_create(**programme_terms(haitian, haitian_card, ends_on=TODAY() + timedelta(days=9)),
                             created_by=hq_admin)
    started(first, requester=hq_admin, approver=hq_approver)
    second = programme_create(**programme_terms(haitian, haitian_card, code="HT6",
                                                starts_on=TODAY() + timedelta(days=10)), created_by=hq_admin)
    assert started(second, requester=hq_admin, approver=hq_approver).status == BrandProgramme.Status.ACTIVE


def test_approval_checks_the_overlap_again(hq_admin, hq_approver, haitian, haitian_card):
    first = programme_create(**programme_terms(haitian, haitian_card), created_by=hq_admin)
    second = programme_create(**programme_terms(haitian, haitian_card, code="HT6"), created_by=hq_admin)
    confirmed(first, hq_admin, skus(1, 3))
    confirmed(second, hq_admin, skus(1, 3))
    request_first = programme_submit(programme=first, requested_by=hq_admin, reason="")
    # The second got in before the first was submitted (two people at once): both wait for approval.
    BrandProgramme.objects.filter(pk=first.pk).update(status=BrandProgramme.Status.DRAFT)
    request_second = programme_submit(programme=second, requested_by=hq_admin, reason="")
    BrandProgramme.objects.filter(pk=first.pk).update(status=BrandProgramme.Status.PENDING)

    approval_request_approve(approval_request=request_first, approver=hq_approver)
    with pytest.raises(CardOperationRefused, match="HT5"):
        approval_request_approve(approval_request=request_second, approver=hq_approver)
    second.refresh_from_db()
    request_second.refresh_from_db()
    assert second.status == BrandProgramme.Status.PENDING
    assert request_second.status == ApprovalRequest.Status.PENDING


def test_submit_refuses_a_product_no_longer_of_the_brand_or_an_inactive_brand(draft, hq_admin, haitian,
                                                                            haitian_card):
    confirmed(draft, hq_admin, skus(1, 3))
    CardProduct.objects.filter(pk=haitian_card.pk).update(brand=None)
    Brand.objects.filter(pk=haitian.pk).update(is_active=False)
    with pytest.raises(CardOperationRefused) as error:
        programme_submit(programme=draft, requested_by=hq_admin, reason="")
    assert "HAITIAN is not active" in str(error.value)
    assert "BRANDHT is not a HAITIAN card" in str(error.value)


def test_end_stops_a_running_programme(draft, hq_admin, hq_approver):
    with pytest.raises(CardOperationRefused, match="only an active programme"):
        programme_end(programme=draft, user=hq_admin)
    programme = started(draft, requester=hq_admin, approver=hq_approver)
    programme_end(programme=programme, user=hq_admin, reason="合同到期")
    programme.refresh_from_db()
    assert programme.status == BrandProgramme.Status.ENDED
    assert programme.ended_at is not None
    assert programme.history.first().history_change_reason == "ended: 合同到期"
    with pytest.raises(CardOperationRefused):
        programme_end(programme=programme, user=hq_admin)


# --- SKU lists --------------------------------------------------------------------------------------------------


def test_an_xlsx_file_is_staged_with_its_skus(draft, hq_admin):
    sku_list = staged(draft, hq_admin, [("6900000000001", "海天酱油 500ml"), (6900000000002, "海天蚝油")])
    assert (sku_list.confirmed_at, sku_list.sku_count, sku_list.file_name) == (None, 2, "skus.xlsx")
    assert list(sku_list.skus.order_by("pk").values_list("sku", "name")) == [
        ("6900000000001", "海天酱油 500ml"), ("6900000000002", "海天蚝油")]
    assert sku_list_in_force(draft, TODAY()) is None


def test_a_gbk_csv_with_chinese_headers_is_read(draft, hq_admin):
    data = csv_bytes([("6900000000001", "海天酱油"), ("6900000000002", "")], header=("条码", "商品名称"),
                     encoding="gbk")
    sku_list = sku_list_stage(programme=draft, file=io.BytesIO(data), file_name="海天.csv", valid_from=TODAY(),
                              user=hq_admin)
    assert list(sku_list.skus.order_by("pk").values_list("sku", "name")) == [
        ("6900000000001", "海天酱油"), ("6900000000002", "")]


def test_the_name_column_is_optional(draft, hq_admin):
    data = xlsx_bytes([("A-1",), ("A-2",)], header=("商品编码",))
    sku_list = sku_list_stage(programme=draft, file=data, file_name="list.xlsx", valid_from=TODAY(), user=hq_admin)
    assert sku_list.sku_count == 2


def refused(programme, user, data: bytes, name="skus.xlsx", valid_from=None) -> dict:
    with pytest.raises(SkuListInvalid) as error:
        sku_list_stage(programme=programme, file=io.BytesIO(data), file_name=name, valid_from=valid_from or TODAY(),
                       user=user)
    assert not BrandSkuList.objects.exists()
    assert not BrandSku.objects.exists()
    return field_errors(error)


def test_a_file_without_the_sku_column_names_the_columns_expected(draft, hq_admin):
    errors = refused(draft, hq_admin, xlsx_bytes([("6900000000001", "x")], header=("code", "title")))
    assert "sku (商品编码)" in errors["file"]
    assert "sku (or SKU, 商品编码, 条码) and, optionally, name (商品名称)" in errors["file"]
    assert "The header row has: code, title" in errors["file"]


def test_blank_long_and_unprintable_skus_are_named_by_row(draft, hq_admin):
    rows = [("6900000000001", "ok"), ("", "无编码"), ("9" * 65, "太长"), ("69\x0700", "控制字符"),
            ("6.9E+12", "科学计数")]
    errors = refused(draft, hq_admin, csv_bytes(rows), name="skus.csv")["file"]
    assert "row 3: the SKU is empty" in errors
    assert "row 4: the SKU is longer than 64 characters" in errors
    assert "row 5: the SKU '69\\x0700' holds characters that are not printable" in errors
    assert "row 6: 6.9E+12 is a number Excel shortened" in errors


def test_a_repeated_sku_names_both_rows(draft, hq_admin):
    rows = [("6900000000001", "a"), ("6900000000002", "b"), ("6900000000001", "c")]
    with pytest.raises(SkuListInvalid) as error:
        staged(draft, hq_admin, rows)
    assert "row 4: SKU 6900000000001 repeats row 2" in field_errors(error)["file"]
    assert "skus.xlsx was not imported: 1 row has a problem; nothing was saved." == str(error.value)
    assert not BrandSkuList.objects.exists()


def test_a_file_with_many_bad_rows_lists_the_first_and_counts_the_rest(draft, hq_admin):
    errors = refused(draft, hq_admin, xlsx_bytes([("", f"name {n}") for n in range(30)]))["file"]
    assert "row 2: the SKU is empty" in errors
    assert "and 10 more rows with problems" in errors


def test_a_file_with_no_rows_is_refused(draft, hq_admin):
    assert "has no SKUs under its header row" in refused(draft, hq_admin, xlsx_bytes([]))["file"]


def test_a_file_of_another_type_is_refused(draft, hq_admin):
    assert "not an .xlsx or .csv file" in refused(draft, hq_admin, b"\xd0\xcf\x11\xe0", name="skus.xls")["file"]


def test_a_broken_workbook_is_refused(draft, hq_admin):
    assert "skus.xlsx cannot be opened as an Excel workbook" in refused(draft, hq_admin, b"not a zip")["file"]


def test_a_list_applies_neither_before_the_programme_nor_from_a_past_day(hq_admin, haitian, haitian_card):
    programme = programme_create(**programme_terms(haitian, haitian_card, starts_on=TODAY() + timedelta(days=10)),
                                 created_by=hq_admin)
    data = xlsx_bytes(skus(1, 2))
    assert "starts on" in refused(programme, hq_admin, data, valid_from=TODAY() + timedelta(days=9))["valid_from"]
    assert "never from a past day" in refused(programme, hq_admin, data,
                                              valid_from=TODAY() - timedelta(days=1))["valid_from"]


def test_thousands_of_skus_are_staged_whole(draft, hq_admin):
    wanted = skus(1, 5000)
    sku_list = sku_list_stage(programme=draft, file=io.BytesIO(xlsx_bytes(wanted)), file_name="big.xlsx",
                              valid_from=TODAY(), user=hq_admin)

    assert sku_list.sku_count == sku_list.skus.count() == 5000
    assert set(sku_list.skus.values_list("sku", "name")) == set(wanted)


def test_confirm_makes_the_list_apply_and_cannot_be_repeated(draft, hq_admin):
    sku_list = staged(draft, hq_admin, skus(1, 3))
    sku_list_confirm(sku_list=sku_list, user=hq_admin)
    sku_list.refresh_from_db()
    assert sku_list.confirmed_by == hq_admin and sku_list.confirmed_at is not None
    assert sku_list_in_force(draft, TODAY()) == sku_list
    with pytest.raises(CardOperationRefused, match="already confirmed"):
        sku_list_confirm(sku_list=sku_list, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="already confirmed"):
        sku_list_discard(sku_list=sku_list, user=hq_admin)


def test_discard_deletes_a_staged_list_and_its_skus(draft, hq_admin):
    kept = confirmed(draft, hq_admin, skus(1, 3))
    sku_list = staged(draft, hq_admin, skus(10, 4))
    sku_list_discard(sku_list=sku_list, user=hq_admin)
    assert list(BrandSkuList.objects.all()) == [kept]
    assert BrandSku.objects.count() == 3


def test_a_staged_list_whose_day_passed_is_not_confirmed(draft, hq_admin):
    sku_list = staged(draft, hq_admin, skus(1, 3))
    BrandSkuList.objects.filter(pk=sku_list.pk).update(valid_from=TODAY() - timedelta(days=1))
    with pytest.raises(CardOperationRefused, match="never from a past day"):
        sku_list_confirm(sku_list=sku_list, user=hq_admin)


def test_sku_list_versions_apply_by_date(draft, hq_admin, hq_approver):
    programme = started(draft, requester=hq_admin, approver=hq_approver)
    first = programme.sku_lists.get()
    later = confirmed(programme, hq_admin, skus(1, 10), valid_from=TODAY() + timedelta(days=7))
    assert sku_list_in_force(programme, TODAY() + timedelta(days=6)) == first
    assert sku_list_in_force(programme, TODAY() + timedelta(days=7)) == later
    # two lists from one day: the one confirmed last applies
    again = confirmed(programme, hq_admin, skus(1, 2), valid_from=TODAY() + timedelta(days=7))
    assert sku_list_in_force(programme, TODAY() + timedelta(days=8)) == again


def test_the_diff_counts_added_and_removed_skus_against_the_list_in_force(draft, hq_admin):
    confirmed(draft, hq_admin, skus(1, 10))
    sku_list = staged(draft, hq_admin, skus(6, 10), valid_from=TODAY() + timedelta(days=1))
    diff = sku_list_diff(sku_list)
    assert (diff.added_count, diff.removed_count) == (5, 5)
    assert [sku for sku, _name in diff.added] == [f"69{n:011d}" for n in range(11, 16)]
    assert [sku for sku, _name in diff.removed] == [f"69{n:011d}" for n in range(1, 6)]


def test_the_first_list_adds_every_sku(draft, hq_admin):
    diff = sku_list_diff(staged(draft, hq_admin, skus(1, 30)), sample=20)
    assert (diff.base, diff.added_count, diff.removed_count, len(diff.added)) == (None, 30, 0, 20)


def test_store_staff_cannot_upload_lists(draft, dept001_manager):
    with pytest.raises(ProgrammeForbidden):
        staged(draft, dept001_manager, skus(1, 3))
    assert not BrandSkuList.objects.exists()


def test_ended_programmes_take_no_list(draft, hq_admin, hq_approver):
    programme = started(draft, requester=hq_admin, approver=hq_approver)
    programme_end(programme=programme, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="SKU lists change only"):
        staged(programme, hq_admin, skus(1, 3))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_approvals_of_overlapping_programmes_start_only_one(hq_admin, hq_approver, haitian,
                                                                       haitian_card):
    from tests.membership.conftest import concurrently

    # given: two programmes of one product over the same dates, both waiting for approval
    requests = []
    for code in ("HT5", "HT6"):
        programme = programme_create(**programme_terms(haitian, haitian_card, code=code), created_by=hq_admin)
        confirmed(programme, hq_admin, skus(1, 3))
        requests.append(programme_submit(programme=programme, requested_by=hq_admin, reason=""))
        # the second is submitted as if the first were not pending yet (two people at once)
        BrandProgramme.objects.filter(pk=programme.pk).update(status=BrandProgramme.Status.DRAFT)
    BrandProgramme.objects.update(status=BrandProgramme.Status.PENDING)

    # when: both are approved at the same moment
    results = concurrently(2, lambda index: approval_request_approve(approval_request=requests[index],
                                                                     approver=hq_approver))

    # then: one started, the other was refused and still waits
    assert sorted(type(result).__name__ for result in results) == ["ApprovalRequest", "CardOperationRefused"]
    assert BrandProgramme.objects.filter(status=BrandProgramme.Status.ACTIVE).count() == 1
    assert BrandProgramme.objects.filter(status=BrandProgramme.Status.PENDING).count() == 1
