"""The segment screens (营销 → 人群): the form with its rule builder and live count, snapshots and the Excel of their
members (masked unless permitted, always logged), and the scenario gallery that starts a draft campaign."""

import io
import json
from datetime import date

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation
from openpyxl import load_workbook

from campaigns.models import Segment, SegmentSnapshot, TargetedCampaign
from campaigns.scenarios import SCENARIOS
from campaigns.segments import rules_describe
from campaigns.services.segments import segment_save, segment_snapshot_take
from core.models import PersonalDataAccess
from stores.models import StaffProfile
from tests.browser import BROWSER_MARKS, browser_page_open
from tests.factories import STAFF_PASSWORD, StaffFactory
from tests.membership.conftest import register

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
SEGMENTS = "/admin/campaigns/segment/"
COUNT = "/admin/campaigns/segment/count/"
SCENARIO_GALLERY = "/admin/campaigns/segment/scenarios/"
CONSENT = {"field": "marketing_consent", "value": True}
CONSENTING = {"match": "all", "conditions": [CONSENT]}


def _rules_post(client, url, *, rules, purpose="marketing", name="同意营销的会员", **headers):
    text = rules if isinstance(rules, str) else json.dumps(rules)
    return client.post(url, {"name": name, "description": "", "purpose": purpose, "rules": text}, **headers)


def _count(client, body, **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(COUNT, data=data, content_type="application/json", **headers)


def _sheet_values(response) -> list[list]:
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return [list(row) for row in workbook.active.iter_rows(values_only=True)]


@pytest.fixture
def members(dept001):
    """李建国 agreed to marketing; 王芳 did not."""
    return (register(name="李建国", phone="13800138000", store=dept001, marketing_consent=True),
            register(name="王芳", phone="13700137000", store=dept001, marketing_consent=False))


@pytest.fixture
def segment(hq_admin, members) -> Segment:
    """Members who agreed to marketing, saved through the service."""
    return segment_save(name="同意营销的会员", purpose=Segment.Purpose.MARKETING, rules=CONSENTING, operator=hq_admin)


@pytest.fixture
def snapshot_done(segment, hq_admin) -> SegmentSnapshot:
    return segment_snapshot_take(segment=segment, requested_by=hq_admin)


@pytest.fixture
def hq_client(client, hq_admin):
    """Headquarters' administrator: every campaigns permission, the full-contact export too."""
    client.force_login(hq_admin)
    return client


@pytest.fixture
def marketer(db):
    """Headquarters marketing staff who work on segments but may export members only masked."""
    return StaffFactory(username="hq_marketer", scope=StaffProfile.Scope.HQ, permissions=[
        "campaigns.view_segment", "campaigns.add_segment", "campaigns.change_segment",
        "campaigns.view_segmentsnapshot"])


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


@pytest.fixture
def segment_reader(db):
    """Headquarters staff who may read segments and nothing more."""
    return StaffFactory(username="hq_segment_reader", scope=StaffProfile.Scope.HQ,
                        permissions=["campaigns.view_segment"])


# --- the pages ----------------------------------------------------------------------------------------------


def test_the_segment_list_reads_in_chinese_with_its_counts_and_the_gallery_link(hq_client, segment):
    response = hq_client.get(SEGMENTS, **ZH)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'lang="zh-hans"' in html and "人群" in html
    assert "同意营销的会员" in html
    assert SCENARIO_GALLERY in html


def test_the_segment_list_is_searched_by_name(hq_client, segment, hq_admin):
    segment_save(name="沉睡会员", purpose=Segment.Purpose.SERVICE,
                 rules={"match": "all", "conditions": [{"field": "has_phone", "value": True}]}, operator=hq_admin)

    response = hq_client.get(SEGMENTS, {"q": "沉睡"}, **ZH)

    html = response.content.decode()
    assert "沉睡会员" in html and "同意营销的会员" not in html


def test_the_add_page_carries_the_rule_builder_and_its_conditions(hq_client, reference_stores):
    response = hq_client.get(f"{SEGMENTS}add/", **ZH)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'lang="zh-hans"' in html
    assert 'id="id_rules"' in html  # the JSON field staff edit where no script runs
    assert "campaigns/segment_builder.js" in html
    config = response.context["segment_builder"]
    assert config["countUrl"] == COUNT
    assert {"marketing_consent", "recency", "tags"} <= {item["field"] for item in config["schema"]}
    assert 'id="segment-builder-config"' in html


def test_the_change_page_shows_the_rules_in_words_and_the_buttons(hq_client, segment):
    response = hq_client.get(f"{SEGMENTS}{segment.pk}/change/", **ZH)

    html = response.content.decode()
    assert response.status_code == 200
    with translation.override("zh-hans"):
        sentences = rules_describe(segment.rules)
    assert sentences and all(sentence in html for sentence in sentences)
    assert reverse("admin:campaigns_segment_snapshot", args=[segment.pk]) in html
    assert reverse("admin:campaigns_segment_count_now", args=[segment.pk]) in html


def test_store_staff_see_no_segments(client, dept001_manager, segment):
    client.force_login(dept001_manager)

    assert client.get(SEGMENTS, **ZH).status_code == 403
    assert client.get(f"{SEGMENTS}{segment.pk}/change/", **ZH).status_code == 403
    assert _count(client, {"rules": CONSENTING}).status_code == 403


# --- saving -------------------------------------------------------------------------------------------------


def test_valid_rules_are_saved_through_the_service_normalised(hq_client, hq_admin, members):
    rules = {"match": "all", "conditions": [CONSENT, {"field": "age", "min": "60"}]}

    response = _rules_post(hq_client, f"{SEGMENTS}add/", rules=rules, name="老年会员", **ZH)

    assert response.status_code == 302, response.context["adminform"].form.errors
    segment = Segment.objects.get(name="老年会员")
    assert segment.rules == {"match": "all", "conditions": [CONSENT, {"field": "age", "min": 60}]}
    assert segment.created_by == hq_admin


def test_changing_the_rules_keeps_the_segment_and_its_scenario(hq_client, segment):
    Segment.objects.filter(pk=segment.pk).update(scenario="lapsed_90d")
    rules = {"match": "all", "conditions": [CONSENT, {"field": "has_phone", "value": True}]}

    response = _rules_post(hq_client, f"{SEGMENTS}{segment.pk}/change/", rules=rules, name="有手机的同意会员", **ZH)

    assert response.status_code == 302, response.context["adminform"].form.errors
    segment.refresh_from_db()
    assert (segment.name, segment.rules, segment.scenario) == ("有手机的同意会员", rules, "lapsed_90d")


def test_marketing_rules_without_consent_are_refused_on_the_form(hq_client, members):
    rules = {"match": "all", "conditions": [{"field": "has_phone", "value": True}]}

    response = _rules_post(hq_client, f"{SEGMENTS}add/", rules=rules, **EN)

    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["rules"])
    assert "Consent is always required for marketing" in errors
    assert not Segment.objects.exists()


def test_a_service_segment_may_leave_consent_out(hq_client, members):
    rules = {"match": "any", "conditions": [{"field": "has_phone", "value": False}, {"field": "age", "min": 70}]}

    response = _rules_post(hq_client, f"{SEGMENTS}add/", rules=rules, purpose="service", name="电话回访", **EN)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Segment.objects.get(name="电话回访").purpose == Segment.Purpose.SERVICE


def test_a_bad_condition_is_named_with_its_number(hq_client, members):
    rules = {"match": "all", "conditions": [CONSENT, {"field": "no_such_thing"}]}

    response = _rules_post(hq_client, f"{SEGMENTS}add/", rules=rules, **EN)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["rules"]
    assert any("2" in error and "no_such_thing" in error for error in errors)
    assert not Segment.objects.exists()


def test_no_conditions_are_refused(hq_client, members):
    response = _rules_post(hq_client, f"{SEGMENTS}add/", rules={"match": "all", "conditions": []}, **EN)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["rules"]
    assert not Segment.objects.exists()


@pytest.mark.parametrize("text", [
    "{not json", "[1, 2]", '"all"', "[" * 100_000, '{"match": "all", "conditions": [{"field": "age", "min": NaN}]}',
    "x" * 70_000, '{"match": "all", "conditions": "everyone"}',
], ids=["broken", "list", "string", "nested-deep", "nan", "huge", "conditions-not-a-list"])
def test_unreadable_rules_show_an_error_on_the_form(hq_client, members, text):
    response = _rules_post(hq_client, f"{SEGMENTS}add/", rules=text, **ZH)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["rules"]
    assert not Segment.objects.exists()


# --- the live count -----------------------------------------------------------------------------------------


def test_the_count_answers_how_many_members_match_and_how_long_it_took(hq_client, members):
    response = _count(hq_client, {"rules": CONSENTING, "purpose": "marketing"})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert isinstance(body["ms"], int) and body["ms"] >= 0


def test_a_service_count_includes_members_without_consent(hq_client, members):
    rules = {"match": "all", "conditions": [{"field": "registered_store", "stores": ["DEPT001"]}]}

    response = _count(hq_client, {"rules": rules, "purpose": "service"})

    assert response.status_code == 200 and response.json()["count"] == 2


def test_the_count_names_what_is_wrong_with_the_rules(hq_client, members):
    rules = {"match": "all", "conditions": [{"field": "age", "min": 60}]}

    response = _count(hq_client, {"rules": rules, "purpose": "marketing"}, **EN)

    assert response.status_code == 400
    assert any("Consent is always required" in error for error in response.json()["errors"])


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'"rules"', b"null", b"\xff\xfe\x00", b"[" * 50_000,
    b'{"rules": []}', b'{"rules": "all"}', b'{"rules": {"match": "all", "conditions": "x"}}',
    b'{"rules": {"match": "every", "conditions": [{"field": "marketing_consent", "value": true}]}}',
    b'{"purpose": "spam", "rules": {"match": "all", "conditions": []}}',
    b'{"rules": {"match": "all", "conditions": [{"field": "age", "min": NaN}]}}',
    b'{"rules": {"match": "all", "conditions": [{"field": "age", "min": {"$gt": 1}}]}}',
    b'{"rules": {"match": "all", "conditions": [{"field": "tags", "tags": [1, 2, null]}]}}',
    b'{"rules": {"match": "all", "conditions": [{"match": "any", "conditions": [{"match": "any", '
    b'"conditions": []}]}]}}',
    b'{"rules": {"match": "all", "conditions": [{"field": "spend", "min": "1e999"}]}}',
    b'{"rules": {"match": "all", "conditions": [{"field": "shopped", "stores": ["' + b"A" * 60_000 + b'"]}]}}',
    b'{"rules": ' + b"x" * 300_000 + b"}",
], ids=["text", "list", "string", "null", "binary", "nested-deep", "rules-list", "rules-string", "conditions-string",
        "bad-match", "bad-purpose", "nan", "object-as-number", "tags-not-strings", "nested-groups", "huge-amount",
        "long-code", "huge-body"])
def test_hostile_counts_are_refused_with_a_message(hq_client, members, body):
    response = _count(hq_client, body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors and all(isinstance(error, str) and error for error in errors)


def test_a_count_with_a_bad_length_header_is_refused(hq_client, members):
    response = _count(hq_client, {"rules": CONSENTING}, CONTENT_LENGTH="many")

    assert response.status_code == 400
    assert response.json()["errors"]


def test_the_count_needs_the_permission_to_read_segments(client, members):
    client.force_login(StaffFactory(username="hq_cards", scope=StaffProfile.Scope.HQ,
                                    permissions=["cards.view_card"]))

    response = _count(client, {"rules": CONSENTING})

    assert response.status_code == 403
    assert response.json()["errors"]


def test_the_count_is_a_post_with_the_pages_csrf_token(hq_admin, members):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(hq_admin)
    page = browser.get(f"{SEGMENTS}add/")
    token = page.cookies["csrftoken"].value

    assert browser.get(COUNT).status_code == 405
    assert _count(browser, {"rules": CONSENTING}).status_code == 403
    assert _count(browser, {"rules": CONSENTING}, HTTP_X_CSRFTOKEN=token).status_code == 200


def test_count_now_records_the_last_count(hq_client, segment):
    response = hq_client.post(reverse("admin:campaigns_segment_count_now", args=[segment.pk]), **ZH)

    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.last_count == 1 and segment.last_counted_at is not None


# --- snapshots ----------------------------------------------------------------------------------------------


def test_the_snapshot_button_takes_a_snapshot_of_who_is_in_the_segment(hq_client, segment, hq_admin,
                                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = hq_client.post(reverse("admin:campaigns_segment_snapshot", args=[segment.pk]), **ZH)

    assert response.status_code == 302
    snapshot = SegmentSnapshot.objects.get(segment=segment)
    assert snapshot.requested_by == hq_admin
    assert (snapshot.status, snapshot.member_count) == (SegmentSnapshot.Status.DONE, 1)
    page = hq_client.get(f"{SEGMENTS}{segment.pk}/change/", **ZH).content.decode()
    assert reverse("admin:campaigns_segmentsnapshot_export", args=[snapshot.pk]) in page


def test_taking_a_snapshot_needs_the_change_permission(client, segment_reader, segment):
    client.force_login(segment_reader)

    response = client.post(reverse("admin:campaigns_segment_snapshot", args=[segment.pk]), **ZH)

    assert response.status_code == 403
    assert not SegmentSnapshot.objects.exists()


def test_snapshots_are_read_only(hq_client, snapshot_done):
    assert hq_client.get(reverse("admin:campaigns_segmentsnapshot_changelist"), **ZH).status_code == 200
    assert hq_client.get(reverse("admin:campaigns_segmentsnapshot_change", args=[snapshot_done.pk]),
                         **ZH).status_code == 200
    listed = hq_client.get(reverse("admin:campaigns_segmentsnapshot_changelist"),
                           {"segment__id__exact": snapshot_done.segment_id}, **ZH)
    assert listed.status_code == 200 and "同意营销的会员" in listed.content.decode()
    assert hq_client.get(reverse("admin:campaigns_segmentsnapshot_add"), **ZH).status_code == 403
    response = hq_client.post(reverse("admin:campaigns_segmentsnapshot_delete", args=[snapshot_done.pk]),
                              {"post": "yes"}, **ZH)
    assert response.status_code == 403
    assert SegmentSnapshot.objects.filter(pk=snapshot_done.pk).exists()


# --- the members' Excel -------------------------------------------------------------------------------------


def test_the_export_masks_phones_without_the_export_permission_and_is_logged(marketer_client, marketer,
                                                                              snapshot_done):
    url = reverse("admin:campaigns_segmentsnapshot_export", args=[snapshot_done.pk])

    response = marketer_client.get(url, **ZH)

    assert response.status_code == 200
    cells = [cell for row in _sheet_values(response) for cell in row if cell is not None]
    assert "138****8000" in cells and "13800138000" not in cells
    assert "13700137000" not in cells and "137****7000" not in cells  # not in the segment
    log = PersonalDataAccess.objects.get()
    assert (log.user, log.action, log.object_id) == (marketer, PersonalDataAccess.Action.EXPORT,
                                                     str(snapshot_done.pk))
    assert "1 rows" in log.detail and "masked" in log.detail


def test_the_full_export_is_refused_without_the_permission(marketer_client, snapshot_done):
    url = reverse("admin:campaigns_segmentsnapshot_export", args=[snapshot_done.pk])

    assert marketer_client.get(f"{url}?full=1", **ZH).status_code == 403
    assert not PersonalDataAccess.objects.exists()


def test_the_full_export_shows_phones_to_holders_of_the_permission(hq_client, hq_admin, snapshot_done):
    url = reverse("admin:campaigns_segmentsnapshot_export", args=[snapshot_done.pk])

    response = hq_client.get(f"{url}?full=1", **ZH)

    assert response.status_code == 200
    cells = [cell for row in _sheet_values(response) for cell in row if cell is not None]
    assert "13800138000" in cells
    log = PersonalDataAccess.objects.get()
    assert log.user == hq_admin and "full" in log.detail and "1 rows" in log.detail


def test_a_snapshot_not_done_cannot_be_exported(hq_client, segment, hq_admin):
    snapshot = SegmentSnapshot.objects.create(segment=segment, rules=segment.rules, requested_by=hq_admin)

    response = hq_client.get(reverse("admin:campaigns_segmentsnapshot_export", args=[snapshot.pk]), **ZH)

    assert response.status_code == 302
    assert not PersonalDataAccess.objects.exists()


# --- the scenario gallery ----------------------------------------------------------------------------------


def test_the_gallery_shows_the_twelve_scenarios_in_four_groups(hq_client, reference_stores):
    response = hq_client.get(SCENARIO_GALLERY, **ZH)

    html = response.content.decode()
    assert response.status_code == 200 and 'lang="zh-hans"' in html
    groups = response.context["groups"]
    assert [group["code"] for group in groups] == ["acquisition", "activation", "retention", "win_back"]
    assert sum(len(group["scenarios"]) for group in groups) == 12
    with translation.override("zh-hans"):
        for scenario in SCENARIOS.values():
            assert str(scenario.name) in html
            assert reverse("admin:campaigns_segment_scenario_use", args=[scenario.code]) in html


def test_using_a_scenario_makes_a_draft_campaign_and_opens_it(hq_client, hq_admin, reference_stores):
    url = reverse("admin:campaigns_segment_scenario_use", args=["lapsed_90d"])

    response = hq_client.post(url, **ZH)

    campaign = TargetedCampaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:campaigns_targetedcampaign_change", args=[campaign.pk])
    assert campaign.status == TargetedCampaign.Status.DRAFT
    assert campaign.segment.scenario == "lapsed_90d"


def test_using_a_scenario_needs_the_permission_to_add_campaigns(client, segment_reader, reference_stores):
    client.force_login(segment_reader)

    gallery = client.get(SCENARIO_GALLERY, **ZH)
    response = client.post(reverse("admin:campaigns_segment_scenario_use", args=["lapsed_90d"]), **ZH)

    assert gallery.status_code == 200 and gallery.context["can_use"] is False
    assert response.status_code == 403
    assert not TargetedCampaign.objects.exists()


def test_an_unknown_scenario_is_not_found(hq_client, reference_stores):
    response = hq_client.post(reverse("admin:campaigns_segment_scenario_use", args=["no_such"]), **ZH)

    assert response.status_code == 404
    assert not TargetedCampaign.objects.exists()


def test_the_gallery_is_only_a_post_to_use(hq_client, reference_stores):
    response = hq_client.get(reverse("admin:campaigns_segment_scenario_use", args=["lapsed_90d"]), **ZH)

    assert response.status_code == 405
    assert not TargetedCampaign.objects.exists()


# --- the rule builder in a browser --------------------------------------------------------------------------


def _in_browser(test):
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@_in_browser
def test_the_rule_builder_edits_counts_and_saves_the_rules_in_a_browser(live_server, hq_admin, dept001, tmp_path):
    register(name="李建国", phone="13800138000", store=dept001, marketing_consent=True, birth_date=date(1950, 3, 1))
    register(name="王芳", phone="13700137000", store=dept001, marketing_consent=True, birth_date=date(1990, 3, 1))
    with browser_page_open(width=1280, height=1000, locale="zh-CN",
                           extra_http_headers={"Accept-Language": "zh-Hans,zh;q=0.9"}) as page:
        problems = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{live_server.url}/admin/login/?next={SEGMENTS}add/")
        page.fill("#id_username", "hq_admin")
        page.fill("#id_password", STAFF_PASSWORD)
        page.locator("input[type=submit], button[type=submit]").first.click()
        page.wait_for_url(f"{live_server.url}{SEGMENTS}add/")

        # given: a new marketing segment starts with the consent condition, counted at once
        assert problems == []
        assert page.locator("#id_rules").is_hidden()
        assert page.locator(".segment-row .segment-field").first.input_value() == "marketing_consent"
        page.wait_for_selector(".segment-count-ok[data-count='2']")

        # when: staff add "age at least 60" and name the segment
        page.click(".segment-buttons .segment-add")
        page.locator(".segment-row .segment-field").nth(1).select_option("age")
        page.locator(".segment-row").nth(1).locator("input[type=number]").first.fill("60")
        page.wait_for_selector(".segment-count-ok[data-count='1']")
        # and a group "any of: has a phone"
        page.click(".segment-buttons .segment-add-group")
        page.locator(".segment-group .segment-field").first.select_option("has_phone")
        page.wait_for_selector(".segment-count-ok[data-count='1']")
        page.screenshot(path=str(tmp_path / "segment_builder.png"), full_page=True)
        page.fill("#id_name", "老年同意会员")
        page.locator("input[name=_save]").click()
        page.wait_for_url(f"{live_server.url}{SEGMENTS}")

    # then
    segment = Segment.objects.get(name="老年同意会员")
    assert segment.rules == {"match": "all", "conditions": [
        CONSENT, {"field": "age", "min": 60},
        {"match": "any", "conditions": [{"field": "has_phone", "value": True}]}]}
