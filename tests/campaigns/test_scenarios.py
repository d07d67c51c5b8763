"""Scenario templates: twelve in four groups, each making valid rules, a segment and a draft campaign."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from campaigns.errors import CampaignInvalid
from campaigns.models import Segment, TargetedCampaign
from campaigns.scenarios import GROUPS, SCENARIOS, scenario_use, scenarios_by_group
from campaigns.segments import rules_clean, rules_count
from stores.models import Format

REQUIRED = {"registered_never_bought", "bought_once_30d", "near_next_tier", "points_expiring", "idle_card_balance",
            "birthday_month", "top_spenders_store", "dept_not_super", "lapsed_90d", "lapsed_plus"}


def test_twelve_scenarios_in_four_groups_of_three():
    assert len(SCENARIOS) == 12
    assert REQUIRED <= set(SCENARIOS)
    groups = scenarios_by_group()
    assert [group for group, _label, _items in groups] == [group for group, _label in GROUPS]
    assert [len(items) for _group, _label, items in groups] == [3, 3, 3, 3]


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_each_scenario_gives_valid_rules_that_count(reference_stores, code):
    scenario = SCENARIOS[code]
    rules = rules_clean(scenario.rules(date(2026, 6, 15)), purpose=scenario.purpose)
    if scenario.purpose == Segment.Purpose.MARKETING:
        assert rules["match"] == "all"
        assert {"field": "marketing_consent", "value": True} in rules["conditions"]
    assert rules_count(rules) == 0


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_using_a_scenario_makes_a_segment_and_a_draft_campaign(reference_stores, hq_admin, code):
    campaign = scenario_use(code=code, operator=hq_admin)
    scenario = SCENARIOS[code]
    tomorrow = timezone.localdate() + timedelta(days=1)
    assert campaign.status == TargetedCampaign.Status.DRAFT
    assert campaign.code == f"TC{timezone.localdate():%Y%m%d}001"
    assert campaign.scenario == code and campaign.segment.scenario == code
    assert campaign.segment.purpose == scenario.purpose
    assert rules_clean(campaign.segment.rules, purpose=campaign.segment.purpose) == campaign.segment.rules
    assert (campaign.starts_on, campaign.ends_on) == (tomorrow, tomorrow + timedelta(days=13))
    assert campaign.control_percent == scenario.control_percent
    assert campaign.call_list == scenario.call_list
    assert campaign.created_by == hq_admin
    if scenario.purpose == Segment.Purpose.MARKETING:
        assert "{name}" in campaign.message_text


def test_campaign_codes_count_up_within_a_day(reference_stores, hq_admin):
    first = scenario_use(code="lapsed_90d", operator=hq_admin, starts_on=timezone.localdate())
    second = scenario_use(code="lapsed_90d", operator=hq_admin)
    assert second.code == first.code[:-3] + "002"
    assert Segment.objects.count() == 2


def test_dept_not_super_uses_the_formats_there_are(reference_stores):
    rules = SCENARIOS["dept_not_super"].rules()
    assert rules["conditions"][1:] == [{"field": "shopped", "days": 365, "formats": ["DEPT"]},
                                       {"field": "shopped", "formats": ["SUPER"], "negate": True}]
    Format.objects.filter(code="SUPER").update(is_active=False)
    rules = SCENARIOS["dept_not_super"].rules()
    assert rules["conditions"][2] == {"field": "shopped", "formats": ["AUTO"], "negate": True}
    assert rules_clean(rules)


def test_unknown_scenario_and_a_past_first_day_are_refused(reference_stores, hq_admin):
    with pytest.raises(CampaignInvalid) as caught:
        scenario_use(code="nope", operator=hq_admin)
    assert set(caught.value.fields) == {"scenario"}
    with pytest.raises(CampaignInvalid) as caught:
        scenario_use(code="lapsed_90d", operator=hq_admin, starts_on=timezone.localdate() - timedelta(days=1))
    assert set(caught.value.fields) == {"starts_on"}
    assert not TargetedCampaign.objects.exists() and not Segment.objects.exists()
