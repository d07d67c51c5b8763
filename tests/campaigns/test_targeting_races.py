"""Targeted campaigns under concurrency on PostgreSQL: two starts at once write the members once; the nightly switch
run by a real Celery worker process against the test database."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import CampaignMember, Coupon, Segment, SegmentSnapshot, TargetedCampaign
from campaigns.services import campaign_save, campaign_start, campaign_submit, segment_save
from campaigns.tasks import targeted_campaigns_switch
from membership.models import PointsEntry
from stores.models import LegalEntity, StaffProfile
from tests.campaigns.conftest import CouponTemplateFactory
from tests.factories import StaffFactory
from tests.membership.conftest import concurrently, register
from tests.membership.test_worker import producer, wait_for, worker_queue  # noqa: F401 - fixtures

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def scheduled_campaign(*, starts_on, members: int = 30, **values) -> TargetedCampaign:
    marketer = StaffFactory(scope=StaffProfile.Scope.HQ)
    for index in range(members):
        register(name=f"并发会员{index}", phone=f"1350000{index:04d}", marketing_consent=True)
    segment = segment_save(name="同意营销", purpose=Segment.Purpose.MARKETING, operator=marketer, rules={
        "match": "all", "conditions": [{"field": "marketing_consent", "value": True}]})
    campaign = campaign_save(operator=marketer, values={
        "name": "并发启动", "segment": segment, "starts_on": starts_on, "ends_on": starts_on + timedelta(days=6),
        "control_percent": 10, "budget": Decimal("10000.00"), "message_text": "{name}您好", **values})
    campaign_submit(campaign=campaign, operator=marketer, reason="测试")
    campaign.refresh_from_db()
    assert campaign.status == TargetedCampaign.Status.SCHEDULED
    return campaign


def test_two_starts_at_once_write_the_members_coupons_and_points_once(reference_stores, ledgers_balanced):
    # given: a scheduled campaign of 30 members giving a coupon and 100 points each
    campaign = scheduled_campaign(
        starts_on=timezone.localdate() + timedelta(days=1), coupon_template=CouponTemplateFactory(valid_days=30),
        points=100, legal_entity=LegalEntity.objects.order_by("pk").first())
    # when: the nightly switch and a second worker start it at the same moment
    results = concurrently(2, lambda _index: campaign_start(campaign=TargetedCampaign.objects.get(pk=campaign.pk)))
    # then: both see it running; its members, their coupons and points were written once
    assert all(isinstance(result, TargetedCampaign) and result.status == "running" for result in results), results
    campaign.refresh_from_db()
    assert CampaignMember.objects.filter(campaign=campaign).count() == 30
    assert SegmentSnapshot.objects.count() == 1
    assert Coupon.objects.count() == campaign.target_count
    assert PointsEntry.objects.filter(cause_id=str(campaign.pk)).count() == campaign.target_count
    ledgers_balanced()


@pytest.mark.broker
def test_a_real_worker_runs_the_nightly_switch(reference_stores, worker_queue, producer):  # noqa: F811
    _queue, worker, log_path = worker_queue
    first_day = timezone.localdate() + timedelta(days=1)
    campaign = scheduled_campaign(starts_on=first_day, members=5)

    result = targeted_campaigns_switch.delay(first_day.isoformat())

    done = wait_for(result, worker, log_path)
    assert done["started"] == [campaign.code]
    campaign.refresh_from_db()
    assert campaign.status == TargetedCampaign.Status.RUNNING
    assert CampaignMember.objects.filter(campaign=campaign).count() == 5
    assert "campaigns.targeted_campaigns_switch" in log_path.read_text()
    result.forget()
