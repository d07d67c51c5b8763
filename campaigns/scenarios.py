"""Scenario templates (场景模板): twelve ready segments with a campaign each, in four groups.

Acquisition (拉新), activation (促活), retention (留存) and win-back (召回). Each scenario builds its rules when it
is used, from the tiers and formats that exist then, and `scenario_use` turns it into a segment and a draft
targeted campaign that staff then change as they like. Marketing scenarios always require marketing consent;
the one service scenario (a care call by the store's staff) does not.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from campaigns.errors import CampaignInvalid
from campaigns.models import Segment, TargetedCampaign
from campaigns.services.segments import segment_save
from campaigns.services.targeting import campaign_code_new
from stores.models import Format

__all__ = ["GROUPS", "SCENARIOS", "Scenario", "scenario_use", "scenarios_by_group"]

ACQUISITION = "acquisition"
ACTIVATION = "activation"
RETENTION = "retention"
WIN_BACK = "win_back"
GROUPS = (
    (ACQUISITION, _("acquisition")),
    (ACTIVATION, _("activation")),
    (RETENTION, _("retention")),
    (WIN_BACK, _("win-back")),
)
CAMPAIGN_DAYS = 14
CONSENT = {"field": "marketing_consent", "value": True}


@dataclass(frozen=True)
class Scenario:
    """A ready segment and the campaign that goes with it."""

    code: str
    group: str
    name: object
    description: object
    build: Callable[[date], list[dict]]
    campaign_name: object
    message_text: object = ""
    control_percent: int = 10
    result_days: int = 30
    call_list: bool = False
    call_script: object = ""
    purpose: str = Segment.Purpose.MARKETING

    def rules(self, today: date | None = None) -> dict:
        """The scenario's rules as of `today`; marketing ones start with the members' consent."""
        conditions = self.build(today or timezone.localdate())
        if self.purpose == Segment.Purpose.MARKETING:
            conditions = [dict(CONSENT), *conditions]
        return {"match": "all", "conditions": conditions}

    @property
    def group_label(self) -> str:
        return str(dict(GROUPS)[self.group])


def _format_codes() -> list[str]:
    return list(Format.objects.filter(is_active=True).order_by("code").values_list("code", flat=True))


def _dept_not_super(today: date) -> list[dict]:
    """Shops in the department stores but never in the supermarkets (or the first two formats there are)."""
    codes = _format_codes()
    shop = "DEPT" if "DEPT" in codes else (codes[0] if codes else None)
    others = [code for code in codes if code != shop]
    never = "SUPER" if "SUPER" in others else (others[0] if others else None)
    conditions = [{"field": "shopped", "days": 365, **({"formats": [shop]} if shop else {})}]
    if never:
        conditions.append({"field": "shopped", "formats": [never], "negate": True})
    return conditions


SCENARIOS: dict[str, Scenario] = {scenario.code: scenario for scenario in [
    # --- acquisition: turn registrations into buyers
    Scenario(
        "registered_never_bought", ACQUISITION, _("Registered, never bought"),
        _("Members who registered in the last 180 days and have not bought anything yet."),
        lambda today: [{"field": "registered_within", "days_max": 180},
                       {"field": "shopped", "negate": True}],
        _("Welcome coupon for new members"),
        _("{name}, welcome! A gift is waiting for your first visit."),
    ),
    Scenario(
        "bought_once_30d", ACQUISITION, _("Bought once, in the last 30 days"),
        _("Members whose only purchase this year was in the last 30 days: bring them back for a second one."),
        lambda today: [{"field": "frequency", "min": 1, "max": 1, "days": 365},
                       {"field": "recency", "days_max": 30}],
        _("Second visit coupon"),
        _("{name}, thank you for your first visit. Here is something for the next one."),
    ),
    Scenario(
        "partner_not_converted", ACQUISITION, _("Partner members who never bought"),
        _("Members brought by a partner (bank, telecom, car brand) who have not made a first purchase."),
        lambda today: [{"field": "partner"}, {"field": "shopped", "negate": True}],
        _("First purchase offer for partner members"),
        _("{name}, as our partner's customer you have a first purchase gift."),
    ),
    # --- activation: give members a reason to act now
    Scenario(
        "near_next_tier", ACTIVATION, _("Close to the next tier"),
        _("Members whose spend in the tier window is at least 80 percent of the next tier's threshold."),
        lambda today: [{"field": "next_tier_progress", "percent_min": 80}],
        _("Almost there: reach the next tier"),
        _("{name}, you are close to the next member tier. Shop now to reach it."),
    ),
    Scenario(
        "points_expiring", ACTIVATION, _("Points about to expire"),
        _("Members with at least 500 points that the coming year end takes."),
        lambda today: [{"field": "points_expiring", "min": 500}],
        _("Use your points before the year end"),
        _("{name}, some of your points expire at the end of the year. Use them in any of our stores."),
    ),
    Scenario(
        "idle_card_balance", ACTIVATION, _("Idle prepaid card balance"),
        _("Members holding at least 100.00 on active prepaid cards who have not bought for 60 days."),
        lambda today: [{"field": "card_balance", "min": "100.00"}, {"field": "recency", "days_min": 60}],
        _("Your card balance is waiting"),
        _("{name}, your prepaid card still has a balance. Come and use it in any of our stores."),
    ),
    # --- retention: keep good members close
    Scenario(
        "birthday_month", RETENTION, _("Birthday this month"),
        _("Members whose birthday is in the month the segment is counted."),
        lambda today: [{"field": "birth_month", "current": True}],
        _("Birthday gift"),
        _("Happy birthday, {name}! A birthday gift is waiting for you."),
        result_days=30,
    ),
    Scenario(
        "top_spenders_store", RETENTION, _("Top spenders of each store"),
        _("The top 10 percent of spenders of each registering store over the last year."),
        lambda today: [{"field": "top_spenders", "percent": 10, "days": 365}],
        _("Thank you to our best customers"),
        _("{name}, thank you for being one of our best customers."),
        control_percent=5,
    ),
    Scenario(
        "dept_not_super", RETENTION, _("Shops in DEPT, never in SUPER"),
        _("Members who bought in the department stores this year but never in the supermarkets."),
        _dept_not_super,
        _("Discover our supermarkets"),
        _("{name}, our supermarkets welcome you with a coupon."),
    ),
    # --- win-back: members who stopped coming
    Scenario(
        "lapsed_90d", WIN_BACK, _("Lapsed 90 days"),
        _("Members who bought before but not in the last 90 days."),
        lambda today: [{"field": "recency", "days_min": 90}],
        _("We miss you"),
        _("{name}, we miss you. Here is a coupon for your next visit."),
        call_list=True,
        call_script=_("Introduce yourself and the store, ask how the member is, mention the coupon."),
    ),
    Scenario(
        "lapsed_plus", WIN_BACK, _("Lapsed Plus members"),
        _("Members whose paid tier ended in the last 90 days and who hold none now."),
        lambda today: [{"field": "paid_tier_lapsed", "days": 90}],
        _("Come back to Plus"),
        _("{name}, your Plus membership has ended. Renew now and keep your benefits."),
    ),
    Scenario(
        "elderly_care_call", WIN_BACK, _("Care call to elderly members"),
        _("Members aged 65 or more who have not bought for 180 days: a service call by their store's staff "
          "(no marketing, so no consent needed)."),
        lambda today: [{"field": "age", "min": 65}, {"field": "recency", "days_min": 180}],
        _("Care calls to elderly members"),
        call_list=True,
        call_script=_("Ask how the member is and whether the store can help; offer nothing for sale."),
        purpose=Segment.Purpose.SERVICE,
    ),
]}


def scenarios_by_group() -> list[tuple[str, str, list[Scenario]]]:
    """The scenarios in their four groups: (group, label, scenarios)."""
    return [(group, str(label), [scenario for scenario in SCENARIOS.values() if scenario.group == group])
            for group, label in GROUPS]


@transaction.atomic
def scenario_use(*, code: str, operator, starts_on: date | None = None) -> TargetedCampaign:
    """Create the scenario's segment and a draft campaign for it, starting `starts_on` (tomorrow) for 14 days.

    Raise CampaignInvalid (unknown scenario, a first day in the past), SegmentInvalid (rules that do not hold
    with the reference data there is).
    """
    scenario = SCENARIOS.get(code)
    if scenario is None:
        raise CampaignInvalid(fields={"scenario": [gettext("Unknown scenario %(code)s.") % {"code": str(code)[:40]}]})
    today = timezone.localdate()
    starts_on = starts_on or today + timedelta(days=1)
    if starts_on < today:
        raise CampaignInvalid(fields={"starts_on": [gettext("The first day cannot be in the past.")]})
    segment = segment_save(name=str(scenario.name), description=str(scenario.description),
                           purpose=scenario.purpose, rules=scenario.rules(today), operator=operator,
                           scenario=scenario.code)
    campaign = TargetedCampaign(
        code=campaign_code_new(today), name=str(scenario.campaign_name), description=str(scenario.description),
        scenario=scenario.code, segment=segment, status=TargetedCampaign.Status.DRAFT,
        control_percent=scenario.control_percent, starts_on=starts_on,
        ends_on=starts_on + timedelta(days=CAMPAIGN_DAYS - 1), result_days=scenario.result_days,
        message_text=str(scenario.message_text), call_list=scenario.call_list,
        call_script=str(scenario.call_script), created_by=operator,
    )
    campaign._history_user = operator
    campaign.save()
    return campaign
