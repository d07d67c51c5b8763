"""The call lists at the service desk (/desk/calls/): a store's clerks see the running campaigns with members on their
store's list, call them with the script in front of them and record each outcome; another store's members stay out
of reach."""

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import CallAttempt, CampaignMember, Segment, TargetedCampaign
from core.models import PersonalDataAccess
from tests.campaigns.test_admin_targeting import CONSENTED, campaign_member, running_campaign
from tests.factories import StaffFactory

CALLS = "/desk/calls/"
Status = TargetedCampaign.Status


@pytest.fixture
def running(dept001, super001) -> TargetedCampaign:
    """王桂兰 on DEPT001's call list, 孙玉珍 on SUPER001's."""
    return running_campaign(dept001, super001)


@pytest.fixture
def super001_only(super001, running) -> TargetedCampaign:
    """A running campaign whose only call is at SUPER001."""
    campaign = TargetedCampaign.objects.create(
        code="TC_SUPER", name="超市专场回访", segment=Segment.objects.create(name="超市会员", rules=CONSENTED),
        status=Status.RUNNING, starts_on=running.starts_on, ends_on=running.ends_on, call_list=True,
        message_text="{name}")
    CampaignMember.objects.create(campaign=campaign, member=campaign_member(running, "孙玉珍").member,
                                  group=CampaignMember.Group.TARGET, channel=CampaignMember.Channel.CALL,
                                  store=super001)
    return campaign


@pytest.fixture
def clerk(dept001):
    return StaffFactory(username="dept001_call_desk", group="服务台", stores=[dept001])


@pytest.fixture
def desk(client, clerk):
    """The DEPT001 clerk at the desk, reading English."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(clerk)
    return client


def member_url(campaign, name: str) -> str:
    return f"{CALLS}{campaign.pk}/members/{campaign_member(campaign, name).pk}/"


def names_listed(response) -> list[str]:
    return [row.member.name for row in response.context["page"].object_list]


def test_the_pages_open_in_chinese(desk, running):
    for url in (CALLS, f"{CALLS}{running.pk}/", member_url(running, "王桂兰")):
        response = desk.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, url
        assert '<html lang="zh-hans"' in response.content.decode()


def test_the_clerk_sees_only_campaigns_with_members_on_their_stores_list(desk, running, super001_only):
    response = desk.get(CALLS)

    assert [row["campaign"] for row in response.context["rows"]] == [running]
    assert response.context["rows"][0]["total"] == 1 and response.context["rows"][0]["to_call"] == 1
    assert "超市专场回访" not in response.content.decode()


def test_an_ended_campaign_is_not_listed(desk, running):
    TargetedCampaign.objects.filter(pk=running.pk).update(status=Status.ENDED)

    assert desk.get(CALLS).context["rows"] == []
    assert desk.get(f"{CALLS}{running.pk}/").status_code == 404


def test_the_call_list_shows_this_stores_members_with_their_number(desk, running):
    response = desk.get(f"{CALLS}{running.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "王桂兰" in page and "13900000003" in page and "您好，这里是服务台。" in page
    assert "孙玉珍" not in page and "13900000005" not in page
    assert "张秀英" not in page  # an SMS member of the same store is not on the call list
    # Phones shown in full: the page view is in the personal-data access log.
    access = PersonalDataAccess.objects.get()
    assert (access.action, access.object_id, access.user) == ("call_list", str(running.pk), response.wsgi_request.user)
    assert "DEPT001" in access.detail


def test_an_outcome_is_recorded(desk, clerk, running, dept001):
    response = desk.post(member_url(running, "王桂兰"), {"outcome": "reached", "note": "下周来店"})

    assert response.status_code == 302 and response["Location"] == f"{CALLS}{running.pk}/"
    attempt = CallAttempt.objects.get()
    assert (attempt.outcome, attempt.note, attempt.store, attempt.called_by) == ("reached", "下周来店", dept001, clerk)
    called = campaign_member(running, "王桂兰")
    assert called.call_outcome == "reached" and called.reached_at is not None
    # Reached, the member leaves the list of those still to call.
    assert names_listed(desk.get(f"{CALLS}{running.pk}/")) == []
    assert names_listed(desk.get(f"{CALLS}{running.pk}/?show=all")) == ["王桂兰"]


def test_no_answer_keeps_the_member_to_call_again(desk, running):
    desk.post(member_url(running, "王桂兰"), {"outcome": "no_answer"})

    called = campaign_member(running, "王桂兰")
    assert called.call_outcome == "no_answer" and called.reached_at is None
    assert names_listed(desk.get(f"{CALLS}{running.pk}/")) == ["王桂兰"]


@pytest.mark.parametrize("data", [{}, {"outcome": "maybe"}, {"outcome": "reached", "note": "长" * 201}])
def test_a_wrong_outcome_is_refused_and_nothing_recorded(desk, running, data):
    response = desk.post(member_url(running, "王桂兰"), data)

    assert response.status_code == 400
    assert response.context["form"].errors
    assert not CallAttempt.objects.exists()


def test_another_stores_member_is_refused(desk, running):
    url = member_url(running, "孙玉珍")

    response = desk.get(url)
    assert response.status_code == 403 and "13900000005" not in response.content.decode()
    assert not PersonalDataAccess.objects.exists()
    response = desk.post(url, {"outcome": "reached"})

    assert response.status_code == 403
    assert not CallAttempt.objects.exists()
    assert campaign_member(running, "孙玉珍").call_outcome == ""


def test_a_member_of_another_campaign_is_not_found(desk, running, super001_only):
    other = CampaignMember.objects.get(campaign=super001_only)

    assert desk.get(f"{CALLS}{running.pk}/members/{other.pk}/").status_code == 404


def test_a_clerk_without_the_call_permission_is_refused(client, dept001, running):
    user = StaffFactory(username="desk_only", stores=[dept001], permissions=["membership.use_service_desk"])
    client.force_login(user)

    assert client.get(CALLS).status_code == 403
    assert client.post(member_url(running, "王桂兰"), {"outcome": "reached"}).status_code == 403
    assert not CallAttempt.objects.exists()


def test_the_campaign_counts_its_reach_from_the_calls(desk, running):
    desk.post(member_url(running, "王桂兰"), {"outcome": "reached"})

    reached = CampaignMember.objects.filter(campaign=running, reached_at__isnull=False)
    assert list(reached.values_list("member__name", flat=True)) == ["王桂兰"]
    assert timezone.now() - reached.get().reached_at < timedelta(minutes=1)
