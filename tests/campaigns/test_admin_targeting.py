"""The targeted-campaign screens of the admin (营销 → 精准营销), through the Django test client: drafts saved through
the service with its refusals on the form, submitting after the estimate and the overlap warning, cancelling, the
results on the page and in Excel, the reach files (message file, paper-mail list, letters, call lists) behind their
permission and in the personal-data log, and the store-scoped lists of campaign members and calls."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import ERROR, SUCCESS, WARNING
from django.utils import timezone
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from campaigns.models import CallAttempt, CampaignMember, Segment, TargetedCampaign
from campaigns.services.targeting import TARGETED_CAMPAIGN_START
from core.models import PersonalDataAccess
from membership.models import Member
from membership.services.purchases import purchase_record
from stores.models import StaffProfile
from tests.campaigns.conftest import CouponTemplateFactory
from tests.factories import ApprovalPolicyFactory, StaffFactory
from tests.membership.conftest import register

CAMPAIGNS = "/admin/campaigns/targetedcampaign/"
MEMBERS = "/admin/campaigns/campaignmember/"
CALLS = "/admin/campaigns/callattempt/"
Status = TargetedCampaign.Status
Channel = CampaignMember.Channel
TARGET, CONTROL = CampaignMember.Group.TARGET, CampaignMember.Group.CONTROL
CONSENTED = {"match": "all", "conditions": [{"field": "marketing_consent", "value": True}]}


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message.message)) for message in response.context["messages"]]


def content_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def workbook_of(response):
    return load_workbook(io.BytesIO(content_of(response)))


def form_data(segment, **changes) -> dict:
    tomorrow = timezone.localdate() + timedelta(days=1)
    return {
        "name": "沉睡90天召回", "description": "", "segment": segment.pk, "control_percent": "10",
        "starts_on": tomorrow.isoformat(), "ends_on": (tomorrow + timedelta(days=13)).isoformat(),
        "budget": "5000.00", "legal_entity": "", "coupon_template": "", "points": "0", "tag": "",
        "message_text": "{name}您好，好久不见！", "call_list": "on", "call_script": "您好，我是百货一店的服务台。",
        "result_days": "30", **changes,
    }


def member(name: str, phone: str, store, **fields) -> Member:
    return register(name=name, phone=phone, store=store, marketing_consent=True, **fields)


def running_campaign(dept001, super001, **fields) -> TargetedCampaign:
    """A campaign that started three days ago, its members written as campaign_start leaves them: at DEPT001 one
    member per channel (SMS, WeChat, a call) and one in the control group; at SUPER001 a paper-mail member, a call
    and one in the control group."""
    segment = Segment.objects.create(name="沉睡会员", rules=CONSENTED)
    today = timezone.localdate()
    campaign = TargetedCampaign.objects.create(**{
        "code": "TC_RUN", "name": "沉睡召回", "segment": segment, "status": Status.RUNNING,
        "starts_on": today - timedelta(days=3), "ends_on": today + timedelta(days=10), "control_percent": 20,
        "message_text": "{name}您好，送您一张券", "call_list": True, "call_script": "您好，这里是服务台。",
        "started_at": timezone.now() - timedelta(days=3), "target_count": 5, "control_count": 2, **fields})
    rows = [
        ("张秀英", "13900000001", dept001, TARGET, Channel.SMS, {}),
        ("李建国", "13900000002", dept001, TARGET, Channel.WECHAT, {}),
        ("王桂兰", "13900000003", dept001, TARGET, Channel.CALL, {"contact_channel": "call"}),
        ("赵德明", "13900000004", super001, TARGET, Channel.MAIL,
         {"contact_channel": "mail", "address": "重庆市渝中区解放碑路1号"}),
        ("孙玉珍", "13900000005", super001, TARGET, Channel.CALL, {"contact_channel": "call"}),
        ("周小红", "13900000006", dept001, CONTROL, Channel.SMS, {}),
        ("吴大海", "13900000007", super001, CONTROL, Channel.SMS, {}),
    ]
    for name, phone, store, group, channel, extra in rows:
        CampaignMember.objects.create(campaign=campaign, member=member(name, phone, store, **extra), group=group,
                                      channel=channel, store=store)
    return campaign


def campaign_member(campaign, name: str) -> CampaignMember:
    return CampaignMember.objects.select_related("member").get(campaign=campaign, member__name=name)


def buy(campaign, name: str, store, amount: str, receipt_no: str) -> None:
    purchase_record(store=store, member=campaign_member(campaign, name).member, receipt_no=receipt_no,
                    amount=Decimal(amount), occurred_at=timezone.now() - timedelta(hours=1))


@pytest.fixture(autouse=True)
def english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def hq(client, hq_admin):
    client.force_login(hq_admin)
    return client


@pytest.fixture
def segment(reference_stores) -> Segment:
    return Segment.objects.create(name="已同意营销的会员", rules=CONSENTED)


@pytest.fixture
def service_segment(reference_stores) -> Segment:
    return Segment.objects.create(name="高龄会员回访", purpose=Segment.Purpose.SERVICE,
                                  rules={"match": "all", "conditions": [{"field": "age", "min": 70}]})


@pytest.fixture
def consenting_members(dept001):
    return [member("张秀英", "13900000001", dept001), member("李建国", "13900000002", dept001)]


@pytest.fixture
def draft(hq_admin, segment, consenting_members) -> TargetedCampaign:
    tomorrow = timezone.localdate() + timedelta(days=1)
    return TargetedCampaign.objects.create(
        code="TC_DRAFT", name="召回草稿", segment=segment, starts_on=tomorrow, ends_on=tomorrow + timedelta(days=13),
        budget=Decimal("5000.00"), message_text="{name}您好", created_by=hq_admin)


@pytest.fixture
def running(dept001, super001) -> TargetedCampaign:
    return running_campaign(dept001, super001)


@pytest.fixture
def no_export_marketer(db):
    """Headquarters marketing staff who may change campaigns but not take their contact lists out."""
    return StaffFactory(username="hq_marketer_no_export", scope=StaffProfile.Scope.HQ, permissions=[
        "campaigns.view_targetedcampaign", "campaigns.change_targetedcampaign", "campaigns.add_targetedcampaign"])


# --- list and drafts ----------------------------------------------------------------------------------------------


def test_the_list_and_pages_open_in_chinese(hq, running, draft):
    for url in (CAMPAIGNS, f"{CAMPAIGNS}add/", f"{CAMPAIGNS}{draft.pk}/change/", f"{CAMPAIGNS}{running.pk}/change/",
                f"{CAMPAIGNS}{draft.pk}/submit/", f"{CAMPAIGNS}{draft.pk}/cancel/", MEMBERS, CALLS):
        response = hq.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, url
        assert '<html lang="zh-hans"' in response.content.decode(), url


def test_the_list_shows_the_budget_as_money(hq, draft):
    TargetedCampaign.objects.filter(pk=draft.pk).update(budget=Decimal("68551.5"))

    page = hq.get(CAMPAIGNS).content.decode()

    assert "TC_DRAFT" in page and "68,551.50" in page


def test_a_draft_is_saved_through_the_service(hq, hq_admin, segment):
    response = hq.post(f"{CAMPAIGNS}add/", form_data(segment))

    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = TargetedCampaign.objects.get()
    assert (campaign.status, campaign.created_by, campaign.name, campaign.control_percent) == (
        Status.DRAFT, hq_admin, "沉睡90天召回", 10)
    assert campaign.code.startswith("TC") and campaign.call_list
    assert response["Location"] == f"{CAMPAIGNS}{campaign.pk}/change/"


def inline_management(client, url: str) -> dict:
    """The management forms of the page's inlines (the approval history), as the browser posts them back."""
    data = {}
    for inline in client.get(url).context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
    return data


def test_a_draft_is_changed(hq, draft):
    url = f"{CAMPAIGNS}{draft.pk}/change/"

    response = hq.post(url, {**form_data(draft.segment, name="改过的名字", budget="8000"),
                             **inline_management(hq, url)})

    assert response.status_code == 302, response.context["adminform"].form.errors
    draft.refresh_from_db()
    assert (draft.name, draft.budget, draft.status) == ("改过的名字", Decimal("8000.00"), Status.DRAFT)


@pytest.mark.parametrize(("changes", "field", "text"), [
    pytest.param({"ends_on": timezone.localdate().isoformat()}, "ends_on", "cannot be before the first day",
                 id="ends_before_start"),
    pytest.param({"starts_on": (timezone.localdate() - timedelta(days=2)).isoformat()}, "starts_on",
                 "cannot be in the past", id="starts_in_the_past"),
    pytest.param({"message_text": "", "call_list": ""}, "coupon_template", "at least one action",
                 id="nothing_to_do"),
    pytest.param({"message_text": "{name}您好{phone}"}, "message_text", "{name}", id="unknown_placeholder"),
    pytest.param({"points": "100"}, "legal_entity", "pays for the points", id="points_without_payer"),
])
def test_a_wrong_draft_is_refused_next_to_its_field(hq, segment, changes, field, text):
    response = hq.post(f"{CAMPAIGNS}add/", form_data(segment, **changes))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert text in " ".join(errors[field]), errors
    assert not TargetedCampaign.objects.exists()


def test_a_service_segment_gets_no_marketing_actions(hq, service_segment):
    response = hq.post(f"{CAMPAIGNS}add/", form_data(service_segment), HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert response.status_code == 200
    assert "message_text" in response.context["adminform"].form.errors
    assert not TargetedCampaign.objects.exists()

    response = hq.post(f"{CAMPAIGNS}add/", form_data(service_segment, message_text=""))
    assert response.status_code == 302
    assert TargetedCampaign.objects.get().segment == service_segment


# --- submit and cancel ---------------------------------------------------------------------------------------------


def test_the_draft_page_shows_the_estimate_and_its_buttons(hq, draft):
    response = hq.get(f"{CAMPAIGNS}{draft.pk}/change/")

    page = response.content.decode()
    assert response.context["can_submit"] and response.context["can_cancel"]
    assert not response.context["can_export"]
    assert "campaign-estimate" in page and "5,000.00" in page
    assert f"{CAMPAIGNS}{draft.pk}/submit/" in page


def test_submitting_shows_the_overlap_first_then_schedules_the_campaign(hq, draft, segment):
    other = TargetedCampaign.objects.create(
        code="TC_OTHER", name="同期活动", segment=segment, status=Status.SCHEDULED, starts_on=draft.starts_on,
        ends_on=draft.ends_on, message_text="{name}")

    page = hq.get(f"{CAMPAIGNS}{draft.pk}/submit/").content.decode()

    assert "TC_OTHER" in page and "campaign-overlaps" in page and "campaign-estimate" in page
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT  # looking is not submitting

    response = hq.post(f"{CAMPAIGNS}{draft.pk}/submit/", {"reason": "春节前召回"}, follow=True)

    draft.refresh_from_db()
    assert draft.status == Status.SCHEDULED
    assert messages_of(response)[0][0] == SUCCESS
    approval = ApprovalRequest.objects.get(action=TARGETED_CAMPAIGN_START)
    assert "春节前召回" in approval.reason and other.code in approval.reason
    assert approval.amount == Decimal("5000.00")


def test_a_budget_above_the_policy_waits_for_approval(hq, draft):
    ApprovalPolicyFactory(action=TARGETED_CAMPAIGN_START, min_amount=Decimal("1000.00"),
                          permission="campaigns.approve_targeted_campaign")

    response = hq.post(f"{CAMPAIGNS}{draft.pk}/submit/", {"reason": ""}, follow=True)

    draft.refresh_from_db()
    assert draft.status == Status.PENDING
    level, text = messages_of(response)[0]
    assert level == WARNING and "waits for another person" in text
    # Submitted, the terms are read-only.
    response = hq.get(f"{CAMPAIGNS}{draft.pk}/change/")
    assert "name" in response.context["adminform"].readonly_fields
    assert not response.context["can_submit"] and response.context["can_cancel"]


def test_a_cost_above_the_budget_is_refused_with_both_figures(hq, draft):
    template = CouponTemplateFactory(code="BACK50", amount=Decimal("3000.00"))
    TargetedCampaign.objects.filter(pk=draft.pk).update(coupon_template=template)

    response = hq.post(f"{CAMPAIGNS}{draft.pk}/submit/", {"reason": ""})

    assert response.status_code == 200
    errors = " ".join(response.context["form"].non_field_errors())
    assert "6,000.00" in errors and "5,000.00" in errors
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    assert not ApprovalRequest.objects.exists()


def test_a_campaign_is_cancelled_with_a_reason(hq, draft):
    response = hq.post(f"{CAMPAIGNS}{draft.pk}/cancel/", {"reason": ""})
    assert response.status_code == 200 and response.context["form"].errors
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT

    response = hq.post(f"{CAMPAIGNS}{draft.pk}/cancel/", {"reason": "预算调整"}, follow=True)

    draft.refresh_from_db()
    assert draft.status == Status.CANCELLED
    assert messages_of(response)[0][0] == SUCCESS


def test_a_running_campaign_cannot_be_cancelled_or_changed(hq, running):
    response = hq.post(f"{CAMPAIGNS}{running.pk}/cancel/", {"reason": "不做了"})
    assert response.status_code == 200 and response.context["form"].errors

    url = f"{CAMPAIGNS}{running.pk}/change/"
    hq.post(url, {**form_data(running.segment, name="偷改"), **inline_management(hq, url)})

    running.refresh_from_db()
    assert (running.status, running.name) == (Status.RUNNING, "沉睡召回")
    response = hq.get(f"{CAMPAIGNS}{running.pk}/change/")
    assert not response.context["can_cancel"] and not response.context["can_submit"]


# --- results --------------------------------------------------------------------------------------------------------


@pytest.fixture
def running_with_sales(running, dept001, super001):
    buy(running, "张秀英", dept001, "300.00", "TR1")
    buy(running, "赵德明", super001, "100.00", "TR2")
    buy(running, "周小红", dept001, "50.00", "TR3")
    return running


def test_the_results_show_on_the_campaigns_page(hq, running_with_sales):
    response = hq.get(f"{CAMPAIGNS}{running_with_sales.pk}/change/")

    page = response.content.decode()
    assert "campaign-results" in page and "campaign-results-store" in page and "campaign-results-format" in page
    assert "400.00" in page and "80.00" in page  # sales and sales per member of the targeted
    assert "40.0%" in page and "50.0%" in page  # conversion targeted / control
    assert "95% interval" in page
    assert "DEPT001" in page and "SUPER001" in page


def test_the_results_excel_has_numbers_per_store_and_format(hq, running_with_sales):
    response = hq.get(f"{CAMPAIGNS}{running_with_sales.pk}/results/export/")

    assert response.status_code == 200
    book = workbook_of(response)
    assert book.sheetnames == ["Summary", "Per store", "Per format"]
    figures = {row[0]: row[1:] for row in book["Summary"].iter_rows(values_only=True) if row and row[0]}
    assert figures["targeted"][0] == 5 and figures["control group"][0] == 2
    assert figures["sales (targeted)"][0] == 400 and figures["sales per member (control group)"][0] == 25
    assert figures["conversion (targeted)"][0] == pytest.approx(0.4)
    assert figures["uplift in sales per member"][0] == 55
    low, high = figures["uplift in sales per member"][1:3]
    assert low < 55 < high
    money_cell = next(row for row in book["Summary"].iter_rows() if row[0].value == "sales (targeted)")[1]
    assert money_cell.number_format == "#,##0.00"
    stores = {row[0]: row for row in book["Per store"].iter_rows(min_row=2, values_only=True)}
    dept = next(row for label, row in stores.items() if label.startswith("DEPT001"))
    assert dept[1:3] == (3, 1)  # targeted, control at DEPT001
    formats = [row[0] for row in book["Per format"].iter_rows(min_row=2, values_only=True)]
    assert len(formats) == 2


# --- reach files --------------------------------------------------------------------------------------------------


def test_the_message_file_lists_sms_and_wechat_members_with_their_message(hq, hq_admin, running):
    response = hq.get(f"{CAMPAIGNS}{running.pk}/export/messages/")

    assert response.status_code == 200
    text = content_of(response).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["member number", "member name", "phone", "channel", "message"]
    by_name = {row[1]: row for row in rows[1:]}
    assert set(by_name) == {"张秀英", "李建国"}
    assert by_name["张秀英"][2:] == ["13900000001", "SMS", "张秀英您好，送您一张券"]
    access = PersonalDataAccess.objects.get()
    assert (access.user, access.action, access.object_id) == (hq_admin, PersonalDataAccess.Action.EXPORT,
                                                              str(running.pk))
    reached = set(CampaignMember.objects.filter(campaign=running, reached_at__isnull=False)
                  .values_list("member__name", flat=True))
    assert reached == {"张秀英", "李建国"}  # the control group member on SMS is never reached


def test_the_message_file_as_excel(hq, running):
    response = hq.get(f"{CAMPAIGNS}{running.pk}/export/messages/?format=xlsx")

    rows = list(workbook_of(response).active.iter_rows(values_only=True))
    assert len(rows) == 3
    assert {row[1]: row[4] for row in rows[1:]}["李建国"] == "李建国您好，送您一张券"
    assert PersonalDataAccess.objects.count() == 1


def test_the_paper_mail_list_and_the_letters(hq, running):
    response = hq.get(f"{CAMPAIGNS}{running.pk}/export/mail/")

    rows = list(workbook_of(response).active.iter_rows(values_only=True))
    assert rows[1][:3] == ("赵德明", "重庆市渝中区解放碑路1号", campaign_member(running, "赵德明").member.member_no)
    assert rows[1][3].startswith("SUPER001")
    assert campaign_member(running, "赵德明").reached_at is not None

    response = hq.get(f"{CAMPAIGNS}{running.pk}/export/letters/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "@media print" in page and "page-break-after: always" in page
    assert page.count('class="letter"') == 1 and "赵德明您好，送您一张券" in page
    assert PersonalDataAccess.objects.count() == 2


def test_a_page_of_letters_marks_only_its_own_members_reached(hq, running, monkeypatch):
    from campaigns.admin import targeting as targeting_admin

    mail = campaign_member(running, "赵德明")
    other = CampaignMember.objects.filter(campaign=running, group=CampaignMember.Group.TARGET).exclude(pk=mail.pk)
    other.update(channel=CampaignMember.Channel.MAIL)
    monkeypatch.setattr(targeting_admin, "LETTERS_PER_PAGE", 1)

    response = hq.get(f"{CAMPAIGNS}{running.pk}/export/letters/?page=1")

    assert response.status_code == 200 and response.context["page"].paginator.num_pages == 1 + other.count()
    reached = CampaignMember.objects.filter(campaign=running, channel=CampaignMember.Channel.MAIL,
                                            reached_at__isnull=False)
    assert reached.count() == 1


def test_the_call_lists_have_one_sheet_per_store(hq, running):
    response = hq.get(f"{CAMPAIGNS}{running.pk}/export/calls/")

    book = workbook_of(response)
    assert book.sheetnames == ["DEPT001", "SUPER001"]
    rows = list(book["DEPT001"].iter_rows(values_only=True))
    assert rows[1][1:3] == ("王桂兰", "13900000003")
    response = hq.get(f"{CAMPAIGNS}{running.pk}/export/calls/?store=super001")
    assert workbook_of(response).sheetnames == ["SUPER001"]
    assert hq.get(f"{CAMPAIGNS}{running.pk}/export/calls/?store=NOPE").status_code == 404
    assert PersonalDataAccess.objects.count() == 2


@pytest.mark.parametrize("export", ["export/messages/", "export/messages/?format=xlsx", "export/mail/",
                                    "export/letters/", "export/calls/"])
def test_the_reach_files_need_the_export_permission(client, no_export_marketer, running, export):
    client.force_login(no_export_marketer)

    page = client.get(f"{CAMPAIGNS}{running.pk}/change/")
    response = client.get(f"{CAMPAIGNS}{running.pk}/{export}")

    assert page.status_code == 200 and not page.context["can_export"]
    assert not any(f"/{name}/" in page.content.decode() for name in ("messages", "mail", "letters", "calls"))
    assert response.status_code == 403
    assert not PersonalDataAccess.objects.exists()
    assert not CampaignMember.objects.filter(reached_at__isnull=False).exists()


def test_a_draft_has_no_reach_files(hq, draft):
    assert hq.get(f"{CAMPAIGNS}{draft.pk}/export/messages/").status_code == 404
    assert not PersonalDataAccess.objects.exists()


# --- store-scoped lists --------------------------------------------------------------------------------------------


@pytest.fixture
def calls_made(running, dept001, super001, make_staff):
    dept_clerk = make_staff("dept001_caller", group="服务台", stores=[dept001])
    super_clerk = make_staff("super001_caller", group="服务台", stores=[super001])
    dept_call = CallAttempt.objects.create(campaign_member=campaign_member(running, "王桂兰"), outcome="reached",
                                           store=dept001, called_by=dept_clerk)
    super_call = CallAttempt.objects.create(campaign_member=campaign_member(running, "孙玉珍"), outcome="no_answer",
                                            store=super001, called_by=super_clerk)
    return dept_call, super_call


def test_a_store_manager_sees_only_their_stores_campaign_members_and_calls(client, dept001_manager, running,
                                                                           calls_made):
    dept_call, super_call = calls_made
    client.force_login(dept001_manager)

    page = client.get(MEMBERS).content.decode()
    assert "张秀英" in page and "王桂兰" in page and "赵德明" not in page and "孙玉珍" not in page
    page = client.get(CALLS).content.decode()
    assert "王桂兰" in page and "孙玉珍" not in page

    own = campaign_member(running, "王桂兰")
    other = campaign_member(running, "孙玉珍")
    assert client.get(f"{MEMBERS}{own.pk}/change/").status_code == 200
    response = client.get(f"{MEMBERS}{other.pk}/change/")
    assert response.status_code == 404 and "孙玉珍" not in response.content.decode()
    assert client.get(f"{CALLS}{dept_call.pk}/change/").status_code == 200
    assert client.get(f"{CALLS}{super_call.pk}/change/").status_code == 404
    assert client.get(f"{MEMBERS}not-a-number/change/").status_code == 404


def test_store_staff_see_no_campaigns(client, dept001_manager, running):
    client.force_login(dept001_manager)

    for url in (CAMPAIGNS, f"{CAMPAIGNS}{running.pk}/change/", f"{CAMPAIGNS}{running.pk}/results/export/",
                f"{CAMPAIGNS}{running.pk}/export/calls/"):
        assert client.get(url).status_code == 403, url


def test_headquarters_sees_every_stores_rows_and_no_one_edits_them(hq, running, calls_made):
    page = hq.get(MEMBERS).content.decode()
    assert "赵德明" in page and "张秀英" in page
    assert hq.get(f"{MEMBERS}add/").status_code == 403
    response = hq.get(f"{MEMBERS}?channel=call")
    assert {row.member.name for row in response.context["cl"].result_list} == {"王桂兰", "孙玉珍"}
    assert ERROR not in [level for level, _text in messages_of(response)]
