"""The coupon screens of the admin (营销 → 券模板), through the Django test client: templates of every kind, starting
through approval, SKU lists, issuing from Excel and as bulk codes, results, the issued coupons (void, masked export)
and the store-scoped redemptions."""

import io
from decimal import Decimal

import pytest
from django.contrib.messages import ERROR, SUCCESS, WARNING
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook, load_workbook

from approvals.models import ApprovalRequest
from campaigns.models import Coupon, CouponBatch, CouponRedemption, CouponRule, CouponSku, CouponTemplate
from campaigns.services import coupon_redeem
from campaigns.services.templates import COUPON_TEMPLATE_START
from core.models import PersonalDataAccess
from stores.models import StaffProfile
from tests.campaigns.conftest import CouponTemplateFactory, coupon_issue
from tests.factories import ApprovalPolicyFactory, StaffFactory, permission_named
from tests.membership.conftest import register

TEMPLATES = "/admin/campaigns/coupontemplate/"
COUPONS = "/admin/campaigns/coupon/"
REDEMPTIONS = "/admin/campaigns/couponredemption/"
RULES = "/admin/campaigns/couponrule/"
DRAFT, PENDING, ACTIVE = CouponTemplate.Status.DRAFT, CouponTemplate.Status.PENDING, CouponTemplate.Status.ACTIVE

FORM = {
    "code": "dept_w200", "name": "百货满200减30", "kind": "amount_off", "description": "", "member_day": "",
    "funded_by": "", "amount": "20", "percent": "0", "max_discount": "", "threshold": "0", "gift_sku": "",
    "min_basket": "0", "sku_scope": "all", "categories_included": "", "categories_excluded": "",
    "valid_from_0": "", "valid_from_1": "", "valid_until_0": "", "valid_until_1": "", "valid_days": "30",
    "per_member_limit": "1", "total_quantity": "", "total_budget": "", "combines_with_tier_discount": "on",
    "claim_code": "", "code_prefix": "",
}


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message.message)) for message in response.context["messages"]]


def xlsx(rows) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def workbook_rows(response) -> list[tuple]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return list(load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))


@pytest.fixture(autouse=True)
def english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def hq(client, hq_admin):
    client.force_login(hq_admin)
    return client


@pytest.fixture
def draft(reference_stores) -> CouponTemplate:
    return CouponTemplateFactory(code="DRAFT20", status=DRAFT, valid_days=30, total_budget=Decimal("60000.00"))


@pytest.fixture
def running(reference_stores) -> CouponTemplate:
    return CouponTemplateFactory(code="RUN20", name="立减20元", amount=Decimal("20.00"), valid_days=30,
                                 code_prefix="RN", per_member_limit=1)


@pytest.fixture
def budget_policy(db):
    return ApprovalPolicyFactory(action=COUPON_TEMPLATE_START, min_amount=Decimal("50000.00"),
                                 permission="campaigns.approve_coupon_template")


# --- who sees what ----------------------------------------------------------------------------------------------


def test_store_staff_see_no_templates_coupons_or_rules(client, dept001_manager, running):
    coupon = coupon_issue(running)
    client.force_login(dept001_manager)

    for url in (TEMPLATES, f"{TEMPLATES}{running.pk}/change/", f"{TEMPLATES}{running.pk}/issue/bulk/", COUPONS,
                f"{COUPONS}{coupon.pk}/change/", RULES, f"{TEMPLATES}{running.pk}/results/export/"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"{TEMPLATES}{running.pk}/pause/").status_code == 403
    running.refresh_from_db()
    assert running.status == ACTIVE


# --- templates --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [
    {"kind": "amount_off", "amount": "20"},
    {"kind": "percent_off", "percent": "10", "max_discount": "50", "amount": "0"},
    {"kind": "threshold", "threshold": "200", "amount": "30", "repeat": "on"},
    {"kind": "item", "amount": "15", "sku_scope": "include"},
    {"kind": "gift", "gift_sku": "6902083881405", "amount": "12.80"},
], ids=lambda changes: changes["kind"])
def test_each_kind_of_template_is_added_as_a_draft(hq, hq_admin, reference_stores, changes):
    response = hq.post(f"{TEMPLATES}add/", {**FORM, **changes, "formats": [reference_stores.get(
        code="DEPT001").format_id], "claim_code": "welcome30", "code_prefix": "dw"})

    assert response.status_code == 302, response.context["adminform"].form.errors
    template = CouponTemplate.objects.get()
    assert (template.code, template.kind, template.status, template.created_by) == (
        "DEPT_W200", changes["kind"], DRAFT, hq_admin)
    assert (template.claim_code, template.code_prefix) == ("WELCOME30", "DW")
    assert [item.code for item in template.formats.all()] == ["DEPT"]


@pytest.mark.parametrize(("changes", "field", "text"), [
    pytest.param({"kind": "amount_off", "amount": "0"}, "amount", "请填写券的减免金额（大于0）。", id="amount_off"),
    pytest.param({"kind": "percent_off", "percent": "100"}, "percent", "折扣比例须大于0且小于100", id="percent_off"),
    pytest.param({"kind": "threshold", "threshold": "30", "amount": "30"}, "threshold", "满减门槛须大于减免金额",
                 id="threshold"),
    pytest.param({"kind": "item", "amount": "15", "sku_scope": "all"}, "sku_scope", "单品券只适用于清单内的商品",
                 id="item"),
    pytest.param({"kind": "gift", "gift_sku": ""}, "gift_sku", "请填写赠品的商品编码。", id="gift"),
    pytest.param({"valid_until_0": "2030-01-01", "valid_until_1": "00:00:00"}, "valid_days", "二者只能选其一",
                 id="dates_and_days"),
    pytest.param({"valid_days": ""}, "valid_until", "请填写券的有效截止时间", id="no_validity"),
    pytest.param({"valid_days": "", "valid_from_0": "2030-02-01", "valid_from_1": "00:00:00",
                  "valid_until_0": "2030-01-01", "valid_until_1": "00:00:00"}, "valid_until",
                 "有效截止时间须晚于生效时间", id="until_before_from"),
])
def test_wrong_terms_are_refused_next_to_their_field_in_chinese(hq, reference_stores, changes, field, text):
    response = hq.post(f"{TEMPLATES}add/", {**FORM, **changes}, HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert text in " ".join(errors[field])
    assert not CouponTemplate.objects.exists()


def test_the_change_page_shows_the_terms_sku_list_results_and_buttons(hq, running):
    CouponSku.objects.create(template=running, sku="6902083881405")

    response = hq.get(f"{TEMPLATES}{running.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "6902083881405" in page and "redemption rate" in page
    assert response.context["can_pause"] and response.context["can_issue"] and not response.context["can_start"]
    assert "kind" in response.context["adminform"].readonly_fields  # a running template's terms are frozen


def test_a_template_starts_at_once_without_a_policy(hq, draft):
    response = hq.post(f"{TEMPLATES}{draft.pk}/start/", follow=True)

    draft.refresh_from_db()
    assert draft.status == ACTIVE
    assert messages_of(response)[0][0] == SUCCESS and "is running" in messages_of(response)[0][1]


def test_a_budget_above_the_policy_starts_only_once_a_second_person_approves(client, hq_admin, hq_approver, draft,
                                                                             budget_policy):
    client.force_login(hq_admin)
    response = client.post(f"{TEMPLATES}{draft.pk}/start/", follow=True)

    draft.refresh_from_db()
    assert draft.status == PENDING
    level, text = messages_of(response)[0]
    assert level == WARNING and "waits for another person" in text
    approval = ApprovalRequest.objects.get(action=COUPON_TEMPLATE_START)
    assert approval.amount == Decimal("60000.00")
    # the requester cannot approve it
    client.post(f"/admin/approvals/approvalrequest/{approval.pk}/decide/", {"_approve": "1"})
    draft.refresh_from_db()
    assert draft.status == PENDING

    client.force_login(hq_approver)
    client.post(f"/admin/approvals/approvalrequest/{approval.pk}/decide/", {"_approve": "1", "comment": "同意"})

    draft.refresh_from_db()
    assert draft.status == ACTIVE


def test_pause_end_and_the_list_actions(hq, running, draft):
    hq.post(f"{TEMPLATES}{running.pk}/pause/")
    running.refresh_from_db()
    assert running.status == CouponTemplate.Status.PAUSED

    response = hq.post(TEMPLATES, {"action": "end_selected", "_selected_action": [running.pk, draft.pk]},
                       follow=True)

    assert set(CouponTemplate.objects.values_list("status", flat=True)) == {CouponTemplate.Status.ENDED}
    assert (SUCCESS, "2 coupon templates done.") in messages_of(response)
    response = hq.post(f"{TEMPLATES}{running.pk}/pause/", follow=True)
    assert messages_of(response)[0][0] == ERROR


# --- SKU lists ----------------------------------------------------------------------------------------------------


def test_an_sku_list_is_uploaded_replacing_the_old_and_downloaded(hq, reference_stores):
    template = CouponTemplateFactory(status=DRAFT, kind=CouponTemplate.Kind.ITEM, amount=Decimal("15.00"),
                                     sku_scope="include", valid_days=30, skus=["OLD1"])
    url = f"{TEMPLATES}{template.pk}/skus/upload/"

    response = hq.post(url, {"file": SimpleUploadedFile("清单.xlsx", xlsx([("SKU",), ("A1",), ("A2",)]))},
                       follow=True)

    assert (SUCCESS, "2 SKUs read from 清单.xlsx: they are the template's list now.") in messages_of(response)
    assert sorted(CouponSku.objects.values_list("sku", flat=True)) == ["A1", "A2"]
    rows = workbook_rows(hq.get(f"{TEMPLATES}{template.pk}/skus/export/"))
    assert rows == [("商品编码",), ("A1",), ("A2",)]


def test_an_sku_file_with_a_bad_row_names_it_and_changes_nothing(hq, reference_stores):
    template = CouponTemplateFactory(status=DRAFT, valid_days=30, skus=["OLD1"])

    response = hq.post(f"{TEMPLATES}{template.pk}/skus/upload/",
                       {"file": SimpleUploadedFile("s.csv", b"sku\nA1\nA1\n")})

    assert response.status_code == 200
    assert "row 3: SKU A1 repeats row 2" in " ".join(response.context["form"].errors["file"])
    assert list(CouponSku.objects.values_list("sku", flat=True)) == ["OLD1"]


# --- issuing ------------------------------------------------------------------------------------------------------


def test_issuing_from_an_excel_of_member_numbers_refuses_an_unknown_row_then_skips_it(hq, running, dept001):
    members = [register(name=f"会员{n}", phone=f"1380013800{n}", store=dept001) for n in range(2)]
    content = xlsx([("会员号",), (members[0].member_no,), ("99999999999",), (members[1].member_no,)])
    url = f"{TEMPLATES}{running.pk}/issue/members/"

    response = hq.post(url, {"file": SimpleUploadedFile("名单.xlsx", content)})

    assert response.status_code == 200
    assert "Row 3" in " ".join(response.context["form"].errors["file"])
    assert not Coupon.objects.exists() and not CouponBatch.objects.exists()

    response = hq.post(url, {"file": SimpleUploadedFile("名单.xlsx", content), "skip_invalid": "on"}, follow=True)

    assert (SUCCESS, "2 coupons issued.") in messages_of(response)
    assert any(level == WARNING and "Row 3" in text for level, text in messages_of(response))
    assert set(Coupon.objects.values_list("member_id", flat=True)) == {member.pk for member in members}
    assert CouponBatch.objects.get().source_name == "名单.xlsx"


def test_bulk_codes_are_issued_and_downloaded_for_printing(hq, running):
    response = hq.post(f"{TEMPLATES}{running.pk}/issue/bulk/", {"quantity": "5"})

    assert response.status_code == 200 and response.context["may_download"]
    batch = CouponBatch.objects.get(channel=CouponBatch.Channel.BULK)
    download = hq.get(response.context["codes_url"])
    assert "no-store" in download["Cache-Control"]
    rows = workbook_rows(download)
    codes = sorted(Coupon.objects.filter(batch=batch).values_list("code", flat=True))
    assert sorted(row[0] for row in rows[1:]) == codes
    assert len(codes) == 5 and all(code.startswith("RN") for code in codes)


def test_the_code_file_is_refused_to_staff_who_may_only_issue(client, running):
    issuer = StaffFactory(scope=StaffProfile.Scope.HQ, permissions=[
        "campaigns.view_coupontemplate", "campaigns.add_coupon"])
    client.force_login(issuer)

    response = client.post(f"{TEMPLATES}{running.pk}/issue/bulk/", {"quantity": "3"})

    assert response.status_code == 200 and not response.context["may_download"]
    batch = CouponBatch.objects.get()
    assert client.get(f"{TEMPLATES}{running.pk}/issues/{batch.pk}/codes/").status_code == 403


def test_a_draft_template_issues_nothing(hq, draft):
    response = hq.post(f"{TEMPLATES}{draft.pk}/issue/bulk/", {"quantity": "3"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert not Coupon.objects.exists()


# --- results ------------------------------------------------------------------------------------------------------


def test_the_results_excel_opens_with_the_figures(hq, running, dept001):
    member = register(name="李建国", phone="13800138000", store=dept001)
    coupon = coupon_issue(running, member)
    coupon_issue(running)
    coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="R-1",
                  basket_amount=Decimal("150.00"))

    rows = workbook_rows(hq.get(f"{TEMPLATES}{running.pk}/results/export/"))

    figures = {row[0]: row[1] for row in rows if row and row[0]}
    assert figures["issued"] == 2 and figures["redeemed"] == 1 and figures["redemption rate"] == "50.0%"
    assert Decimal(str(figures["discount cost"])) == Decimal("20.00")
    assert Decimal(str(figures["sales on redeeming receipts"])) == Decimal("150.00")


# --- issued coupons -----------------------------------------------------------------------------------------------


@pytest.fixture
def issued(running, dept001):
    member = register(name="张秀英", phone="13900139000", store=dept001)
    return coupon_issue(running, member)


def test_the_coupon_list_masks_codes_and_finds_by_exact_code_or_member_number(hq, issued):
    page = hq.get(COUPONS).content.decode()
    assert issued.code not in page and f"****{issued.code[-4:]}" in page

    assert hq.get(COUPONS, {"q": issued.code.lower()}).context["cl"].result_count == 1
    assert hq.get(COUPONS, {"q": issued.member.member_no}).context["cl"].result_count == 1
    assert hq.get(COUPONS, {"q": issued.code[:-1]}).context["cl"].result_count == 0


def test_the_void_action_asks_for_a_reason_and_voids(hq, issued):
    data = {"action": "void_selected", "_selected_action": [issued.pk]}

    form_page = hq.post(COUPONS, data)
    assert form_page.status_code == 200 and "reason" in form_page.context["form"].fields
    issued.refresh_from_db()
    assert issued.status == Coupon.Status.OPEN

    response = hq.post(COUPONS, {**data, "apply": "1", "reason": "会员投诉重复发放"}, follow=True)

    issued.refresh_from_db()
    assert issued.status == Coupon.Status.VOIDED
    assert (SUCCESS, "1 coupon voided.") in messages_of(response)
    response = hq.post(COUPONS, {**data, "apply": "1", "reason": "再次"}, follow=True)
    assert messages_of(response)[0][0] == ERROR


def test_the_export_masks_codes_and_names_and_is_logged(hq, hq_admin, issued):
    response = hq.post(COUPONS, {"action": "export_selected", "_selected_action": [issued.pk]})

    rows = workbook_rows(response)
    assert rows[1][0] == f"****{issued.code[-4:]}" and rows[1][3] == issued.member.member_no
    assert rows[1][4] == "张**"
    assert issued.code not in str(rows)
    log = PersonalDataAccess.objects.get()
    assert (log.user, log.action, log.detail) == (hq_admin, PersonalDataAccess.Action.EXPORT, "coupons, 1 rows, masked")


# --- redemptions --------------------------------------------------------------------------------------------------


def test_a_store_manager_sees_only_their_stores_redemptions(client, super001_manager, dept001, super001):
    anywhere = CouponTemplateFactory(code="ANY10", amount=Decimal("10.00"))
    for store, receipt_no in ((dept001, "DEPT-R-1"), (super001, "SUPER-R-1")):
        coupon_redeem(code=coupon_issue(anywhere).code, store=store, member_no=None, receipt_no=receipt_no,
                      basket_amount=Decimal("50.00"))
    # No role holds it yet: a store manager who is given it sees their own stores' redemptions only.
    super001_manager.user_permissions.add(permission_named("campaigns.view_couponredemption"))
    client.force_login(super001_manager)

    page = client.get(REDEMPTIONS)

    assert page.status_code == 200
    content = page.content.decode()
    assert "SUPER-R-1" in content and "DEPT-R-1" not in content
    other = CouponRedemption.objects.get(receipt_no="DEPT-R-1")
    own = CouponRedemption.objects.get(receipt_no="SUPER-R-1")
    for page_name in ("change", "history"):
        refused = client.get(f"{REDEMPTIONS}{other.pk}/{page_name}/", follow=True)
        assert refused.status_code == 404 or refused.redirect_chain
        assert "DEPT-R-1" not in refused.content.decode()
    own_page = client.get(f"{REDEMPTIONS}{own.pk}/change/")
    assert own_page.status_code == 200
    assert own.coupon.code not in own_page.content.decode()


# --- after-payment rules ------------------------------------------------------------------------------------------


def test_an_after_payment_rule_is_added_with_its_days_checked(hq, running):
    data = {"name": "百货满500送券", "template": running.pk, "is_active": "on", "min_amount": "500",
            "payment_methods": "WeChat， alipay", "starts_on": "2030-01-01", "ends_on": "2030-12-31",
            "weekdays": "7,6"}

    refused = hq.post(f"{RULES}add/", {**data, "weekdays": "6,8"})
    assert "weekdays" in refused.context["adminform"].form.errors
    response = hq.post(f"{RULES}add/", data)

    assert response.status_code == 302
    rule = CouponRule.objects.get()
    assert (rule.weekdays, rule.payment_methods) == ("6,7", "wechat,alipay")
