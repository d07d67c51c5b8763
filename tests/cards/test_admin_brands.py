"""The admin of brand partners, brand card programmes and their SKU lists, through the Django test client."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import ERROR, SUCCESS
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from cards.models import Brand, BrandProgramme, BrandSku, BrandSkuList
from cards.services.brands import programme_create, programme_submit, sku_list_confirm, sku_list_stage
from tests.cards.test_brand_programmes import csv_bytes, programme_terms, skus, started, xlsx_bytes

BRANDS = "/admin/cards/brand/"
PROGRAMMES = "/admin/cards/brandprogramme/"
TODAY = timezone.localdate


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message.message)) for message in response.context["messages"]]


@pytest.fixture(autouse=True)
def english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def haitian(db) -> Brand:
    return Brand.objects.create(code="HAITIAN", name="海天味业")


@pytest.fixture
def haitian_card(card_rules, haitian):
    from cards.models import CardProduct

    return CardProduct.objects.create(code="BRANDHT", name="海天联名卡", kind=CardProduct.Kind.REGISTERED,
                                      reloadable=True, max_balance=Decimal("5000.00"), brand=haitian)


@pytest.fixture
def draft(hq_admin, haitian, haitian_card) -> BrandProgramme:
    return programme_create(**programme_terms(haitian, haitian_card), created_by=hq_admin)


def upload(client, programme, rows, *, name="skus.xlsx", valid_from=None, follow=True, data=None):
    content = data if data is not None else xlsx_bytes(rows)
    return client.post(f"{PROGRAMMES}{programme.pk}/sku-lists/upload/", {
        "file": SimpleUploadedFile(name, content),
        "valid_from": (valid_from or TODAY()).isoformat(),
    }, follow=follow)


def staged_list(programme, user, rows, valid_from=None) -> BrandSkuList:
    return sku_list_stage(programme=programme, file=xlsx_bytes(rows), file_name="skus.xlsx",
                          valid_from=valid_from or TODAY(), user=user)


# --- who sees what ------------------------------------------------------------------------------------------


def test_store_staff_see_no_brand_partners_or_programmes(client, dept001_manager, draft):
    client.force_login(dept001_manager)
    for url in (BRANDS, f"{BRANDS}{draft.brand_id}/change/", PROGRAMMES, f"{PROGRAMMES}{draft.pk}/change/",
                f"{PROGRAMMES}{draft.pk}/sku-lists/upload/"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"{PROGRAMMES}{draft.pk}/submit/").status_code == 403
    index = client.get("/admin/cards/")
    names = [model["object_name"] for app in index.context["app_list"] for model in app["models"]]
    assert "Card" in names
    assert "Brand" not in names and "BrandProgramme" not in names


def test_hq_finance_may_look_but_not_change(client, hq_finance, draft, hq_admin):
    sku_list = sku_list_confirm(sku_list=staged_list(draft, hq_admin, skus(1, 3)), user=hq_admin)
    client.force_login(hq_finance)
    assert client.get(PROGRAMMES).status_code == 200
    page = client.get(f"{PROGRAMMES}{draft.pk}/change/")
    assert page.status_code == 200
    assert not page.context["can_upload"] and not page.context["can_submit"]
    assert client.get(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/export/").status_code == 200
    assert upload(client, draft, skus(1, 3), follow=False).status_code == 403
    assert client.post(f"{PROGRAMMES}{draft.pk}/submit/").status_code == 403
    assert not ApprovalRequest.objects.exists()


# --- brand partners -----------------------------------------------------------------------------------------


BRAND_FORM = {
    "code": "yili", "name": "伊利", "is_active": "on", "contact_name": "王经理", "contact_phone": "0471-3350092",
    "contact_email": "brand@yili.example", "contract_starts_on": "2026-01-01", "contract_ends_on": "2026-12-31",
    "billing_name": "内蒙古伊利实业集团股份有限公司", "billing_tax_no": "911501001141243197",
    "billing_address": "呼和浩特市金川开发区金四路8号", "billing_bank": "中国工商银行呼和浩特分行",
    "billing_account_no": "0602 0000 0920 0012 345",
    "programmes-TOTAL_FORMS": "0", "programmes-INITIAL_FORMS": "0",
}


def test_a_brand_partner_is_added_with_contact_contract_and_billing_details(client, hq_admin):
    client.force_login(hq_admin)
    response = client.post(f"{BRANDS}add/", BRAND_FORM)
    assert response.status_code == 302, response.context["adminform"].form.errors
    brand = Brand.objects.get()
    assert (brand.code, brand.billing_tax_no, brand.billing_account_no) == (
        "YILI", "911501001141243197", "0602000009200012345")
    assert str(brand.contract_ends_on) == "2026-12-31"


@pytest.mark.parametrize(("changes", "field", "text"), [
    ({"billing_tax_no": "911501001141243198"}, "billing_tax_no", "not a valid unified social credit code"),
    ({"billing_tax_no": "1234"}, "billing_tax_no", "A taxpayer number is 18 characters"),
    ({"contact_phone": "call me"}, "contact_phone", "Write a phone number"),
    ({"billing_account_no": "62-ab"}, "billing_account_no", "8 to 32 digits"),
    ({"contract_ends_on": "2025-12-31"}, "contract_ends_on", "cannot end before it starts"),
    ({"billing_name": ""}, "billing_name", "Needed on the brand's statements"),
    ({"code": "伊利"}, "code", "Letters A-Z"),
])
def test_brand_partner_details_are_checked(client, hq_admin, changes, field, text):
    client.force_login(hq_admin)
    response = client.post(f"{BRANDS}add/", {**BRAND_FORM, **changes})
    assert response.status_code == 200
    assert text in " ".join(response.context["adminform"].form.errors[field])
    assert not Brand.objects.exists()


def test_deactivating_a_brand_with_a_running_programme_warns(client, hq_admin, hq_approver, draft):
    started(draft, requester=hq_admin, approver=hq_approver)
    client.force_login(hq_admin)
    data = {**BRAND_FORM, "code": "HAITIAN", "name": "海天味业", "is_active": "", "programmes-INITIAL_FORMS": "1",
            "programmes-TOTAL_FORMS": "1", "programmes-0-id": str(draft.pk), "programmes-0-brand": str(draft.brand_id)}
    response = client.post(f"{BRANDS}{draft.brand_id}/change/", data, follow=True)
    assert "its 1 active programme gives no discount" in " ".join(text for _level, text in messages_of(response))
    assert not Brand.objects.get().is_active


# --- programmes ---------------------------------------------------------------------------------------------


def programme_form(brand, product, **changes) -> dict:
    return {"code": "HT5", "name": "海天联名卡 95折", "brand": brand.pk, "product": product.pk, "discount_rate": "0.05",
            "brand_share": "1", "cap_per_receipt": "", "cap_per_card": "50.00", "starts_on": TODAY().isoformat(),
            "ends_on": "", "note": "", **changes}


def test_a_programme_is_added_as_a_draft(client, hq_admin, haitian, haitian_card):
    client.force_login(hq_admin)
    form = client.get(f"{PROGRAMMES}add/").context["adminform"].form
    assert list(form.fields["product"].queryset) == [haitian_card]
    response = client.post(f"{PROGRAMMES}add/", programme_form(haitian, haitian_card), follow=True)
    programme = BrandProgramme.objects.get()
    assert (programme.status, programme.created_by, programme.cap_per_card) == (
        BrandProgramme.Status.DRAFT, hq_admin, Decimal("50.00"))
    assert response.redirect_chain[-1][0] == f"{PROGRAMMES}{programme.pk}/change/"
    assert (SUCCESS, "Programme HT5 is a draft: upload its SKU list, confirm it, then submit the programme for "
                     "approval.") in messages_of(response)


def test_the_programme_form_names_bad_terms(client, hq_admin, haitian, haitian_card, stored_product):
    client.force_login(hq_admin)
    response = client.post(f"{PROGRAMMES}add/", programme_form(
        haitian, haitian_card, discount_rate="1.2", ends_on=(TODAY() - timedelta(days=1)).isoformat()))
    errors = response.context["adminform"].form.errors
    assert "discount_rate" in errors and "ends_on" in errors
    response = client.post(f"{PROGRAMMES}add/", programme_form(haitian, stored_product))
    assert "STORED is not a HAITIAN card" in str(response.context["adminform"].form.errors["product"]) or \
        "Select a valid choice" in str(response.context["adminform"].form.errors["product"])
    assert not BrandProgramme.objects.exists()


def test_the_programme_list_shows_status_brand_product_rate_and_dates(client, hq_admin, draft):
    client.force_login(hq_admin)
    response = client.get(PROGRAMMES)
    content = response.content.decode()
    assert response.status_code == 200
    assert "HT5" in content and "HAITIAN" in content and "BRANDHT" in content and "5%" in content
    assert "80%" in content


def test_a_running_programme_changes_only_its_name_and_note(client, hq_admin, hq_approver, draft):
    programme = started(draft, requester=hq_admin, approver=hq_approver)
    client.force_login(hq_admin)
    page = client.get(f"{PROGRAMMES}{programme.pk}/change/")
    assert set(page.context["adminform"].form.fields) == {"name", "note"}
    data = {"name": "海天 新名", "note": "续约", "sku_lists-TOTAL_FORMS": "1", "sku_lists-INITIAL_FORMS": "1",
            "approvals-approvalrequest-content_type-object_id-TOTAL_FORMS": "1",
            "approvals-approvalrequest-content_type-object_id-INITIAL_FORMS": "1"}
    response = client.post(f"{PROGRAMMES}{programme.pk}/change/", data)
    assert response.status_code == 302
    programme.refresh_from_db()
    assert (programme.name, programme.discount_rate) == ("海天 新名", Decimal("0.0500"))


def test_submit_and_approval_through_the_inbox_start_the_programme(client, hq_admin, hq_approver, draft):
    sku_list_confirm(sku_list=staged_list(draft, hq_admin, skus(1, 3)), user=hq_admin)
    client.force_login(hq_admin)
    response = client.post(f"{PROGRAMMES}{draft.pk}/submit/", follow=True)
    assert (SUCCESS, "Programme HT5 waits for another person's approval; it starts when it is approved.") in \
        messages_of(response)
    request = ApprovalRequest.objects.get()
    page = client.get(f"{PROGRAMMES}{draft.pk}/change/")
    assert "approval history" in page.content.decode().lower()
    assert client.get(f"{PROGRAMMES}{draft.pk}/history/").status_code == 200
    assert not page.context["can_submit"]

    client.force_login(hq_approver)
    client.post(f"/admin/approvals/approvalrequest/{request.pk}/decide/", {"_approve": "1", "comment": ""})
    draft.refresh_from_db()
    assert draft.status == BrandProgramme.Status.ACTIVE


def test_submit_without_a_confirmed_list_shows_why(client, hq_admin, draft):
    client.force_login(hq_admin)
    response = client.post(f"{PROGRAMMES}{draft.pk}/submit/", follow=True)
    assert any(level == ERROR and "no confirmed SKU list" in text for level, text in messages_of(response))
    draft.refresh_from_db()
    assert draft.status == BrandProgramme.Status.DRAFT


def test_end_button_and_list_actions(client, hq_admin, hq_approver, draft, haitian, haitian_card):
    programme = started(draft, requester=hq_admin, approver=hq_approver)
    other = programme_create(**programme_terms(haitian, haitian_card, code="HT9",
                                               starts_on=TODAY() + timedelta(days=400)), created_by=hq_admin)
    client.force_login(hq_admin)
    assert client.get(f"{PROGRAMMES}{programme.pk}/change/").context["can_end"]
    response = client.post(PROGRAMMES, {"action": "end_selected", "_selected_action": [programme.pk, other.pk]},
                           follow=True)
    texts = messages_of(response)
    assert (SUCCESS, "1 programme done.") in texts
    assert any(level == ERROR and text.startswith("HT9: ") for level, text in texts)
    programme.refresh_from_db()
    assert programme.status == BrandProgramme.Status.ENDED
    response = client.post(PROGRAMMES, {"action": "submit_selected", "_selected_action": [other.pk]}, follow=True)
    assert any("no confirmed SKU list" in text for _level, text in messages_of(response))


# --- SKU lists ----------------------------------------------------------------------------------------------


def test_upload_shows_the_preview_with_count_first_rows_and_differences(client, hq_admin, draft):
    sku_list_confirm(sku_list=staged_list(draft, hq_admin, skus(1, 10)), user=hq_admin)
    client.force_login(hq_admin)
    response = upload(client, draft, skus(6, 60), valid_from=TODAY() + timedelta(days=1))
    sku_list = BrandSkuList.objects.get(confirmed_at__isnull=True)
    assert response.redirect_chain[-1][0] == f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/"
    assert (SUCCESS, "60 SKUs read from skus.xlsx. Check the list and confirm it, or discard it.") in \
        messages_of(response)
    assert len(response.context["rows"]) == 50
    assert (response.context["diff"].added_count, response.context["diff"].removed_count) == (55, 5)
    content = response.content.decode()
    assert "Added: 55. Removed: 5." in content
    assert "Confirm the list" in content and "staged, not confirmed" in content

    response = client.post(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/confirm/", follow=True)
    sku_list.refresh_from_db()
    assert (sku_list.confirmed_by, sku_list.sku_count) == (hq_admin, 60)
    assert (SUCCESS, f"The list of 60 SKUs applies from {sku_list.valid_from}.") in messages_of(response)
    assert "Confirm the list" not in client.get(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/").content.decode()


def test_a_bad_file_is_refused_whole_with_its_rows_named(client, hq_admin, draft):
    client.force_login(hq_admin)
    response = upload(client, draft, [("6900000000001", "a"), ("", "b"), ("6900000000001", "c")])
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["file"])
    assert "row 3: the SKU is empty" in errors
    assert "row 4: SKU 6900000000001 repeats row 2" in errors
    assert "nothing was saved" in response.content.decode()
    assert not BrandSkuList.objects.exists() and not BrandSku.objects.exists()


def test_a_file_with_wrong_columns_names_the_columns_expected(client, hq_admin, draft):
    client.force_login(hq_admin)
    response = upload(client, draft, [], data=xlsx_bytes([("1", "2")], header=("编号", "价格")))
    assert "sku (or SKU, 商品编码, 条码)" in " ".join(response.context["form"].errors["file"])
    assert not BrandSkuList.objects.exists()


def test_the_upload_date_defaults_to_today_and_is_checked(client, hq_admin, draft):
    client.force_login(hq_admin)
    page = client.get(f"{PROGRAMMES}{draft.pk}/sku-lists/upload/")
    assert page.context["form"].initial["valid_from"] == TODAY()
    response = upload(client, draft, skus(1, 2), valid_from=TODAY() - timedelta(days=3))
    assert "never from a past day" in " ".join(response.context["form"].errors["valid_from"])


def test_discard_deletes_the_staged_list(client, hq_admin, draft):
    sku_list = staged_list(draft, hq_admin, skus(1, 5))
    client.force_login(hq_admin)
    response = client.post(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/discard/", follow=True)
    assert (SUCCESS, "The uploaded list from skus.xlsx is discarded.") in messages_of(response)
    assert not BrandSkuList.objects.exists() and not BrandSku.objects.exists()


def test_the_programme_page_lists_its_sku_lists_with_their_state(client, hq_admin, hq_approver, draft):
    programme = started(draft, requester=hq_admin, approver=hq_approver)
    staged_list(programme, hq_admin, skus(1, 4), valid_from=TODAY() + timedelta(days=2))
    client.force_login(hq_admin)
    content = client.get(f"{PROGRAMMES}{programme.pk}/change/").content.decode()
    assert "in force" in content and "staged, not confirmed" in content
    assert "Upload an SKU list" in content and "End the programme" in content


def test_a_list_of_another_programme_is_not_found_under_this_one(client, hq_admin, draft, haitian, haitian_card):
    other = programme_create(**programme_terms(haitian, haitian_card, code="HT9"), created_by=hq_admin)
    sku_list = staged_list(other, hq_admin, skus(1, 2))
    client.force_login(hq_admin)
    assert client.get(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/").status_code == 404
    assert client.post(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/confirm/").status_code == 404


def test_export_gives_the_skus_in_the_upload_format_with_formulas_escaped(client, hq_admin, draft):
    rows = [("6900000000001", "=HYPERLINK(\"http://evil\")"), ("@SUM", "海天蚝油")]
    sku_list = sku_list_stage(programme=draft, file=csv_bytes(rows), file_name="skus.csv", valid_from=TODAY(),
                              user=hq_admin)
    client.force_login(hq_admin)
    response = client.get(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="sku-list-HT5-')
    workbook = load_workbook(io.BytesIO(response.content))
    sheet = workbook.worksheets[0]
    assert [list(row) for row in sheet.iter_rows(values_only=True)] == [
        ["商品编码", "商品名称"], ["6900000000001", "'=HYPERLINK(\"http://evil\")"], ["'@SUM", "海天蚝油"]]
    about = {row[0]: row[1] for row in workbook.worksheets[1].iter_rows(values_only=True)}
    assert about["programme"] == "HT5 海天联名卡 95折" and about["SKUs"] == 2


def test_an_exported_list_can_be_uploaded_again(client, hq_admin, draft):
    sku_list = staged_list(draft, hq_admin, skus(1, 20))
    client.force_login(hq_admin)
    exported = client.get(f"{PROGRAMMES}{draft.pk}/sku-lists/{sku_list.pk}/export/").content
    upload(client, draft, [], data=exported, name="again.xlsx")
    again = BrandSkuList.objects.get(file_name="again.xlsx")
    assert list(again.skus.order_by("pk").values_list("sku", "name")) == skus(1, 20)


def test_a_pending_programme_takes_no_upload(client, hq_admin, draft):
    sku_list_confirm(sku_list=staged_list(draft, hq_admin, skus(1, 3)), user=hq_admin)
    programme_submit(programme=draft, requested_by=hq_admin, reason="")
    client.force_login(hq_admin)
    page = client.get(f"{PROGRAMMES}{draft.pk}/sku-lists/upload/")
    assert not page.context["can_upload"]
    response = upload(client, draft, skus(1, 3))
    assert "SKU lists change only" in " ".join(str(e) for e in response.context["form"].non_field_errors())
    assert BrandSkuList.objects.count() == 1
