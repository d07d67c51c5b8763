"""Segment rules: every condition matches the member it should and not the other; cleaning refuses bad rules."""

import itertools
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.errors import SegmentInvalid
from campaigns.segments import CONDITIONS, conditions_schema, rules_clean, rules_count, rules_describe, rules_queryset
from cards.models import Card
from membership.models import (
    Member,
    MemberTag,
    Partner,
    PointsEntry,
    PointsPolicy,
    Purchase,
    Tag,
    Tier,
    TierSubscription,
)
from membership.services.ledger import points_post
from stores.models import Store
from tests.factories import CardFactory
from tests.membership.conftest import register

TODAY = date(2026, 6, 15)
CONSENT = {"field": "marketing_consent", "value": True}
_receipts = itertools.count(1)


def at(day: date, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def buy(member, store, amount: str, *, days_ago: int, returned: str = "0.00") -> None:
    """A purchase `days_ago` local days before TODAY, as a POS history import writes it."""
    Purchase.objects.bulk_create([Purchase(
        member=member, store=store, format=store.format, legal_entity=store.format.legal_entity,
        receipt_no=f"SEG{next(_receipts):07d}", amount=Decimal(amount), returned_amount=Decimal(returned),
        occurred_at=at(TODAY - timedelta(days=days_ago)),
    )])


def member(name: str, store, **fields) -> Member:
    """A member registered at `store` through the service (reached through a relative's phone, none of their own),
    then given the fields a test needs."""
    created = register(name=name, store=store, family_phone="13912345678")
    if fields:
        Member.objects.filter(pk=created.pk).update(**fields)
        created.refresh_from_db()
    return created


def matched(*conditions, match: str = "all", purpose: str = "service", today: date = TODAY) -> set[int]:
    rules = rules_clean({"match": match, "conditions": list(conditions)}, purpose=purpose)
    return set(rules_queryset(rules, today=today).values_list("pk", flat=True))


def refusal(rules, purpose: str = "service") -> list[str]:
    with pytest.raises(SegmentInvalid) as caught:
        rules_clean(rules, purpose=purpose)
    return caught.value.fields["rules"]


@pytest.fixture
def stores(reference_stores):
    return {code: Store.objects.get(code=code) for code in ("DEPT001", "SUPER001")}


@pytest.fixture
def two(stores):
    """Two members of DEPT001 with nothing in common yet: `yes` is the one a test makes match."""
    return member("甲", stores["DEPT001"]), member("乙", stores["DEPT001"])


# --- tiers ---------------------------------------------------------------------------------------------------------


def test_earned_tier(two):
    yes, no = two
    Member.objects.filter(pk=yes.pk).update(tier=Tier.objects.get(code="GOLD"))
    assert matched({"field": "tier", "codes": ["GOLD", "PLATINUM"]}) == {yes.pk}


def test_paid_tier_held_now_and_any_paid_tier(two):
    yes, no = two
    plus = Tier.objects.get(code="PLUS")
    Member.objects.filter(pk=yes.pk).update(paid_tier=plus, paid_tier_until=TODAY)
    Member.objects.filter(pk=no.pk).update(paid_tier=plus, paid_tier_until=TODAY - timedelta(days=1))
    assert matched({"field": "paid_tier", "codes": ["PLUS"]}) == {yes.pk}
    assert matched({"field": "paid_tier"}) == {yes.pk}


def test_paid_tier_lapsed_within_days_and_none_held(two, stores):
    yes, no = two
    renewed = member("丙", stores["DEPT001"])
    plus = Tier.objects.get(code="PLUS")
    for person, ended in ((yes, 10), (no, 200), (renewed, 10)):
        TierSubscription.objects.create(member=person, tier=plus, kind="purchase", fee=Decimal("199.00"),
                                        starts_on=TODAY - timedelta(days=ended + 365),
                                        ends_on=TODAY - timedelta(days=ended))
    Member.objects.filter(pk=renewed.pk).update(paid_tier=plus, paid_tier_until=TODAY + timedelta(days=300))
    assert matched({"field": "paid_tier_lapsed", "days": 90}) == {yes.pk}
    assert matched({"field": "paid_tier_lapsed"}) == {yes.pk, no.pk}


def test_next_tier_progress_needs_spend_near_the_next_threshold(two, stores):
    yes, no = two
    far = member("丙", stores["DEPT001"])
    # NORMAL -> SILVER at 5,000.00: 4,200 is 84 percent, 2,000 is 40 percent; GOLD member at 19,000 of 20,000.
    buy(yes, stores["DEPT001"], "4200.00", days_ago=10)
    buy(far, stores["DEPT001"], "2000.00", days_ago=10)
    buy(no, stores["DEPT001"], "6000.00", days_ago=10)
    assert matched({"field": "next_tier_progress", "percent_min": 80}) == {yes.pk}
    Member.objects.filter(pk=no.pk).update(tier=Tier.objects.get(code="SILVER"))
    buy(no, stores["DEPT001"], "11000.00", days_ago=5)  # 17,000 of GOLD's 20,000: 85 percent
    assert matched({"field": "next_tier_progress", "percent_min": 80}) == {yes.pk, no.pk}


# --- purchases -----------------------------------------------------------------------------------------------------


def test_shopped_by_format_store_window_and_never(two, stores):
    yes, no = two
    buy(yes, stores["DEPT001"], "100.00", days_ago=5)
    buy(no, stores["SUPER001"], "100.00", days_ago=5)
    buy(no, stores["DEPT001"], "100.00", days_ago=60)
    assert matched({"field": "shopped", "formats": ["DEPT"], "days": 30}) == {yes.pk}
    assert matched({"field": "shopped", "stores": ["DEPT001"]}) == {yes.pk, no.pk}
    assert matched({"field": "shopped", "formats": ["SUPER"], "negate": True}) == {yes.pk}


def test_shopped_ignores_purchases_without_a_member(two, stores):
    yes, no = two
    buy(None, stores["SUPER001"], "50.00", days_ago=1)
    assert matched({"field": "shopped", "formats": ["SUPER"], "negate": True}) == {yes.pk, no.pk}


def test_recency_counts_days_since_the_last_purchase_and_never_bought_do_not_match(two, stores):
    yes, no = two
    never = member("丙", stores["DEPT001"])
    buy(yes, stores["DEPT001"], "100.00", days_ago=120)
    buy(yes, stores["SUPER001"], "100.00", days_ago=3)
    buy(no, stores["DEPT001"], "100.00", days_ago=89)
    lapsed = matched({"field": "recency", "days_min": 90, "formats": ["DEPT"]})
    assert lapsed == {yes.pk}
    assert never.pk not in lapsed
    assert matched({"field": "recency", "days_min": 90}) == set()
    assert matched({"field": "recency", "days_max": 89, "formats": ["DEPT"]}) == {no.pk}


def test_recency_edge_day_is_exactly_days_min(two, stores):
    yes, no = two
    buy(yes, stores["DEPT001"], "10.00", days_ago=90)
    buy(no, stores["DEPT001"], "10.00", days_ago=89)
    assert matched({"field": "recency", "days_min": 90}) == {yes.pk}


def test_frequency_in_window_with_zero_counting(two, stores):
    yes, no = two
    for days_ago in (1, 2, 3):
        buy(yes, stores["DEPT001"], "10.00", days_ago=days_ago)
    buy(no, stores["DEPT001"], "10.00", days_ago=1)
    buy(no, stores["DEPT001"], "10.00", days_ago=400)
    assert matched({"field": "frequency", "min": 2}) == {yes.pk}
    assert matched({"field": "frequency", "max": 1}) == {no.pk}
    assert matched({"field": "frequency", "min": 0, "max": 0, "days": 30, "formats": ["SUPER"]}) == {yes.pk, no.pk}


def test_spend_is_net_of_returns_in_the_window(two, stores):
    yes, no = two
    buy(yes, stores["DEPT001"], "800.00", days_ago=10)
    buy(no, stores["DEPT001"], "800.00", days_ago=10, returned="500.00")
    buy(no, stores["DEPT001"], "900.00", days_ago=40)
    assert matched({"field": "spend", "min": "500", "days": 30}) == {yes.pk}
    assert matched({"field": "spend", "max": "300.00", "days": 30}) == {no.pk}
    assert matched({"field": "spend", "min": "1000", "formats": ["DEPT"]}) == {no.pk}


def test_spend_maximum_includes_members_who_bought_nothing(two, stores):
    yes, no = two
    buy(no, stores["DEPT001"], "999.00", days_ago=1)
    assert matched({"field": "spend", "max": "100.00"}) == {yes.pk}


def test_top_spenders_per_registering_store(stores):
    dept, sup = stores["DEPT001"], stores["SUPER001"]
    dept_members = [member(f"百{i}", dept) for i in range(10)]
    super_members = [member(f"超{i}", sup) for i in range(2)]
    for rank, person in enumerate(dept_members):
        buy(person, dept, f"{(rank + 1) * 100}.00", days_ago=3)
    buy(super_members[0], dept, "50.00", days_ago=3)
    buy(super_members[1], dept, "40.00", days_ago=3)
    top = matched({"field": "top_spenders", "percent": 20})
    # The top 20 percent of DEPT001's ten spenders (1,000 and 900) and the top one of SUPER001's two.
    assert top == {dept_members[9].pk, dept_members[8].pk, super_members[0].pk}


# --- person and registration ---------------------------------------------------------------------------------------


def test_age_from_birth_date_on_the_day(two):
    yes, no = two
    Member.objects.filter(pk=yes.pk).update(birth_date=date(1966, 6, 15))  # 60 today
    Member.objects.filter(pk=no.pk).update(birth_date=date(1966, 6, 16))  # 60 tomorrow
    assert matched({"field": "age", "min": 60}) == {yes.pk}
    assert matched({"field": "age", "max": 59}) == {no.pk}


def test_gender(two):
    yes, no = two
    Member.objects.filter(pk=yes.pk).update(gender="F")
    Member.objects.filter(pk=no.pk).update(gender="M")
    assert matched({"field": "gender", "values": ["F", "U"]}) == {yes.pk}


def test_birth_month_by_months_or_the_current_month(two):
    yes, no = two
    Member.objects.filter(pk=yes.pk).update(birth_date=date(1980, 6, 30))
    Member.objects.filter(pk=no.pk).update(birth_date=date(1980, 7, 1))
    assert matched({"field": "birth_month", "current": True}) == {yes.pk}
    assert matched({"field": "birth_month", "months": [7, 8]}) == {no.pk}


def test_registered_store_format_channel_and_partner(two, stores):
    yes, no = two
    partner = Partner.objects.create(code="BANK1", name="某银行", kind="bank", registration_code="B1")
    Member.objects.filter(pk=no.pk).update(registered_store=stores["SUPER001"], registered_channel="app",
                                           partner=partner)
    assert matched({"field": "registered_store", "stores": ["DEPT001"]}) == {yes.pk}
    assert matched({"field": "registered_format", "formats": ["SUPER"]}) == {no.pk}
    assert matched({"field": "registered_channel", "channels": ["desk"]}) == {yes.pk}
    assert matched({"field": "partner"}) == {no.pk}
    assert matched({"field": "partner", "partners": ["BANK1"]}) == {no.pk}


def test_registered_within_days(two):
    yes, no = two
    Member.objects.filter(pk=yes.pk).update(registered_at=at(TODAY - timedelta(days=10)))
    Member.objects.filter(pk=no.pk).update(registered_at=at(TODAY - timedelta(days=100)))
    assert matched({"field": "registered_within", "days_max": 30}) == {yes.pk}
    assert matched({"field": "registered_within", "days_min": 30}) == {no.pk}


# --- tags, balances, contact ---------------------------------------------------------------------------------------


def test_tags_any_and_none(two):
    yes, no = two
    vip = Tag.objects.create(name="VIP")
    MemberTag.objects.create(member=yes, tag=vip)
    assert matched({"field": "tags", "tags": ["VIP"]}) == {yes.pk}
    assert matched({"field": "tags", "tags": ["VIP"], "mode": "none"}) == {no.pk}


def test_card_balance_of_active_cards(two):
    yes, no = two
    CardFactory(member=yes, balance="300.00")
    CardFactory(member=no, balance="900.00", status=Card.Status.FROZEN)
    assert matched({"field": "card_balance", "min": "100"}) == {yes.pk}
    assert matched({"field": "card_balance", "max": "100"}) == {no.pk}


def test_points_balance(two):
    yes, no = two
    points_post(member=yes, points=800, kind=PointsEntry.Kind.ADJUST, reason="test")
    assert matched({"field": "points", "min": 500}) == {yes.pk}
    assert matched({"field": "points", "max": 100}) == {no.pk}


def test_points_expiring_at_the_coming_year_end(two):
    yes, no = two
    PointsPolicy.current()
    last_year = at(date(TODAY.year - 1, 5, 1))
    points_post(member=yes, points=700, kind=PointsEntry.Kind.ADJUST, reason="test", created_at=last_year)
    points_post(member=no, points=700, kind=PointsEntry.Kind.ADJUST, reason="test", created_at=at(TODAY))
    assert matched({"field": "points_expiring", "min": 500}) == {yes.pk}
    PointsPolicy.objects.filter(pk=1).update(expiry_enabled=False)
    assert matched({"field": "points_expiring", "min": 500}) == set()


def test_marketing_consent_contact_channel_and_phone(stores):
    yes = member("甲", stores["DEPT001"], marketing_consent=True, contact_channel="mail", phone="13800000001")
    no = member("乙", stores["DEPT001"], contact_channel="call")
    assert matched({"field": "marketing_consent", "value": True}) == {yes.pk}
    assert matched({"field": "marketing_consent", "value": False}) == {no.pk}
    assert matched({"field": "contact_channel", "channels": ["mail", "sms"]}) == {yes.pk}
    assert matched({"field": "has_phone", "value": True}) == {yes.pk}
    assert matched({"field": "has_phone", "value": False}) == {no.pk}


def test_only_active_members_are_in_a_segment(two):
    yes, no = two
    Member.objects.filter(pk=no.pk).update(status=Member.Status.FROZEN)
    assert matched({"field": "has_phone", "value": False}) == {yes.pk}


# --- combining -----------------------------------------------------------------------------------------------------


def test_all_any_and_a_nested_group(stores):
    old_no_phone = member("甲", stores["DEPT001"], marketing_consent=True, birth_date=date(1950, 1, 1))
    young_no_phone = member("乙", stores["DEPT001"], marketing_consent=True, birth_date=date(2000, 1, 1))
    old_phone = member("丙", stores["DEPT001"], marketing_consent=True, birth_date=date(1950, 1, 1),
                       phone="13800000002")
    no_consent = member("丁", stores["DEPT001"], birth_date=date(1950, 1, 1))
    for person in (old_no_phone, young_no_phone, old_phone, no_consent):
        buy(person, stores["DEPT001"], "10.00", days_ago=120)
    group = {"match": "all", "conditions": [{"field": "has_phone", "value": False}, {"field": "age", "min": 60}]}
    rules = [CONSENT, {"field": "recency", "days_min": 90, "formats": ["DEPT"]}, group]
    assert matched(*rules, purpose="marketing") == {old_no_phone.pk}
    rules[2] = {**group, "match": "any"}
    assert matched(*rules, purpose="marketing") == {old_no_phone.pk, young_no_phone.pk, old_phone.pk}
    assert matched({"field": "age", "min": 60}, {"field": "has_phone", "value": True}, match="any") == {
        old_no_phone.pk, old_phone.pk, no_consent.pk}


def test_count_equals_a_python_recount(stores):
    rng = random.Random(20)
    dept, sup = stores["DEPT001"], stores["SUPER001"]
    people = []
    for index in range(30):
        person = member(f"会员{index}", rng.choice([dept, sup]), marketing_consent=rng.random() < 0.7,
                        birth_date=date(rng.randint(1940, 2004), rng.randint(1, 12), 1))
        purchases = [(rng.choice([dept, sup]), rng.randint(1, 50) * 20, rng.randint(0, 400))
                     for _ in range(rng.randint(0, 5))]
        for store, amount, days_ago in purchases:
            buy(person, store, f"{amount}.00", days_ago=days_ago)
        people.append((person, purchases))

    def age(person):
        birth = person.birth_date
        return TODAY.year - birth.year - ((TODAY.month, TODAY.day) < (birth.month, birth.day))

    def expected(person, purchases):
        dept_year = [p for p in purchases if p[0] == dept and p[2] < 365]
        spend = sum(amount for _store, amount, days_ago in dept_year)
        last = min((days_ago for store, _amount, days_ago in purchases if store == sup), default=None)
        recent = len([p for p in purchases if p[2] < 90])
        return person.marketing_consent and spend >= 200 and (
            (last is not None and last >= 60) or (age(person) >= 60 and recent <= 1))

    rules = rules_clean({"match": "all", "conditions": [
        CONSENT, {"field": "spend", "min": "200", "formats": ["DEPT"]},
        {"match": "any", "conditions": [{"field": "recency", "days_min": 60, "formats": ["SUPER"]},
                                        {"field": "frequency", "max": 1, "days": 90}]},
        {"match": "any", "conditions": [{"field": "recency", "days_min": 60, "formats": ["SUPER"]},
                                        {"field": "age", "min": 60}]},
    ]})
    wanted = {person.pk for person, purchases in people if expected(person, purchases)}
    assert 0 < len(wanted) < len(people)
    assert set(rules_queryset(rules, today=TODAY).values_list("pk", flat=True)) == wanted
    assert rules_count(rules, today=TODAY) == len(wanted)


@pytest.mark.postgres
def test_count_is_one_query_on_postgresql(stores, django_assert_num_queries):
    person = member("甲", stores["DEPT001"], marketing_consent=True)
    buy(person, stores["DEPT001"], "500.00", days_ago=120)
    rules = rules_clean({"match": "all", "conditions": [
        CONSENT, {"field": "recency", "days_min": 90, "formats": ["DEPT"]},
        {"field": "spend", "min": "100", "days": 365, "formats": ["DEPT"]},
        {"match": "any", "conditions": [{"field": "has_phone", "value": False}, {"field": "age", "min": 60}]},
    ]})
    with django_assert_num_queries(1):
        assert rules_count(rules, today=TODAY) == 1


# --- cleaning ------------------------------------------------------------------------------------------------------


def test_rules_without_conditions_are_refused(db):
    assert refusal({"match": "all", "conditions": []}) == ["Give at least one condition."]


@pytest.mark.parametrize("rules", [None, "all", [], 7, {"match": "all"}, {"conditions": "has_phone"},
                                   {"conditions": {"field": "has_phone"}}])
def test_rules_of_any_shape_are_refused_without_an_exception(db, rules):
    assert refusal(rules)


def test_unknown_field_names_the_condition(db):
    messages = refusal({"match": "all", "conditions": [{"field": "has_phone", "value": True}, {"field": "salary"}]})
    assert messages == ["Condition 2: unknown field salary."]


@pytest.mark.parametrize("condition, text", [
    ({"field": "spend"}, "give a minimum or a maximum"),
    ({"field": "spend", "min": "abc"}, "must be an amount"),
    ({"field": "spend", "min": "1e400"}, "must be from"),
    ({"field": "spend", "min": "500", "max": "100"}, "the minimum is above the maximum"),
    ({"field": "frequency", "min": 10**30}, "must be from"),
    ({"field": "frequency", "min": True}, "whole number"),
    ({"field": "frequency", "min": 0}, "holds for everyone"),
    ({"field": "age", "min": "sixty"}, "whole number"),
    ({"field": "top_spenders"}, "is required"),
    ({"field": "top_spenders", "percent": 0}, "must be from 1 to 100"),
    ({"field": "tier", "codes": "GOLD"}, "must be a list"),
    ({"field": "tier", "codes": ["GOLD", "NOPE"]}, "unknown codes NOPE"),
    ({"field": "tier", "codes": ["PLUS"]}, "unknown codes PLUS"),
    ({"field": "tier", "codes": [1, 2]}, "list of codes"),
    ({"field": "tags", "tags": ["no such tag"]}, "unknown tags"),
    ({"field": "tags", "tags": ["x"], "mode": ["none"]}, "one of the choices"),
    ({"field": "gender", "values": ["X"]}, "unknown X"),
    ({"field": "birth_month", "months": [13]}, "months from 1 to 12"),
    ({"field": "birth_month"}, "choose months"),
    ({"field": "has_phone", "value": "maybe"}, "yes or no"),
    ({"field": "has_phone", "value": True, "extra": 1}, "unknown settings extra"),
    ({"field": "shopped", "days": -1}, "must be from"),
    ({"field": "recency", "formats": [{"code": "DEPT"}]}, "list of codes"),
    ("has_phone", "must be an object"),
    ({"field": ["age"]}, "unknown field"),
])
def test_bad_settings_are_refused_naming_the_condition(reference_stores, condition, text):
    messages = refusal({"match": "all", "conditions": [{"field": "has_phone", "value": True}, condition]})
    assert all(message.startswith("Condition 2") for message in messages)
    assert any(text in message for message in messages)


def test_the_message_names_the_condition_by_its_label(db):
    messages = refusal({"match": "all", "conditions": [CONSENT, {"field": "spend"}]})
    assert messages == ["Condition 2 (net spend): give a minimum or a maximum."]


def test_nesting_deeper_than_one_level_is_refused(db):
    deep = {"match": "any", "conditions": [
        {"field": "has_phone", "value": True},
        {"match": "all", "conditions": [{"field": "age", "min": 60}]},
    ]}
    messages = refusal({"match": "all", "conditions": [CONSENT, deep]})
    assert messages == ["Condition 2.2: groups can be nested one level only."]


def test_a_bad_match_and_an_empty_group_are_refused(db):
    assert refusal({"match": "some", "conditions": [CONSENT]}) == ["Match must be “all” or “any”."]
    messages = refusal({"match": "all", "conditions": [CONSENT, {"match": "any", "conditions": []}]})
    assert messages == ["Condition 2: a group needs a list of conditions."]


def test_marketing_needs_consent_at_the_root_of_an_all_segment(db):
    age = {"field": "age", "min": 60}
    for rules in (
        {"match": "all", "conditions": [age]},
        {"match": "any", "conditions": [CONSENT, age]},
        {"match": "all", "conditions": [{"field": "marketing_consent", "value": False}, age]},
        {"match": "all", "conditions": [{"match": "all", "conditions": [CONSENT, age]}]},
    ):
        messages = refusal(rules, purpose="marketing")
        assert len(messages) == 1 and "Consent is always required for marketing" in messages[0]
    assert rules_clean({"match": "all", "conditions": [CONSENT, age]}, purpose="marketing")


def test_a_service_segment_may_do_without_consent(db):
    rules = rules_clean({"match": "any", "conditions": [{"field": "age", "min": "60"}]}, purpose="service")
    assert rules == {"match": "any", "conditions": [{"field": "age", "min": 60}]}


def test_cleaning_normalises_numbers_amounts_and_lists(reference_stores):
    rules = rules_clean({"match": "all", "conditions": [
        CONSENT,
        {"field": "spend", "min": 200, "max": "1,000.5", "days": "30", "formats": ["DEPT", "DEPT"]},
        {"field": "shopped", "negate": False, "days": "", "stores": []},
        {"field": "birth_month", "months": ["3", 1, 3]},
    ]}, purpose="marketing")
    assert rules["conditions"][1:] == [
        {"field": "spend", "min": "200.00", "max": "1000.50", "days": 30, "formats": ["DEPT"]},
        {"field": "shopped"},
        {"field": "birth_month", "months": [1, 3]},
    ]


def test_too_many_conditions_are_refused(db):
    messages = refusal({"match": "all", "conditions": [{"field": "has_phone", "value": True}] * 50})
    assert messages == ["At most 40 conditions."]


# --- schema and description ----------------------------------------------------------------------------------------


def test_schema_lists_every_condition_with_resolved_choices(reference_stores):
    schema = {item["field"]: item for item in conditions_schema()}
    assert set(schema) == set(CONDITIONS)
    formats = next(param for param in schema["recency"]["params"] if param["name"] == "formats")
    assert ["DEPT", "DEPT 百货"] in formats["choices"]
    tiers = schema["tier"]["params"][0]["choices"]
    assert [code for code, _label in tiers] == ["NORMAL", "SILVER", "GOLD", "PLATINUM"]
    assert schema["spend"]["params"][0]["type"] == "decimal"


def test_describe_gives_one_sentence_per_condition(db):
    rules = rules_clean({"match": "all", "conditions": [
        CONSENT, {"field": "recency", "days_min": 90},
        {"match": "any", "conditions": [{"field": "has_phone", "value": False}, {"field": "age", "min": 60}]},
    ]}, purpose="marketing")
    assert rules_describe(rules) == [
        "Marketing consent: yes",
        "Days since the last purchase: at least 90",
        "Any of: Has a phone: no; Age: at least 60",
    ]
