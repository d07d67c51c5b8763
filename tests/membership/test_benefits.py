"""Tier benefits with quotas (权益): the POS use, the lookup's remaining quota, the desk page, the admin screens."""

import itertools
import json
from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from membership.demo.benefits import benefits_seed
from membership.errors import BenefitExhausted, BenefitUseInvalid, NotEntitled
from membership.models import Benefit, BenefitQuota, BenefitUse, Member, Tier
from membership.services.benefits import benefit_give_back, benefit_period, benefit_use, member_benefits
from stores.models import Store
from tests.membership.conftest import concurrently, kinds, register

LOOKUP = "/api/v1/members/lookup"
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def use_url(member_no: str, code: str) -> str:
    return f"/api/v1/members/{member_no}/benefits/{code}/use"


def post_use(api, member, code="PARKING", *, quantity=1, receipt_no="R-1", key=None):
    body = {"quantity": quantity, "receipt_no": receipt_no}
    return api.post(use_url(member.member_no, code), data=json.dumps(body), content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY=key or f"benefit-{next(_keys)}")


def tier(code: str) -> Tier:
    return Tier.objects.get(code=code)


def give_plus(member, *, until: date | None = None) -> Member:
    Member.objects.filter(pk=member.pk).update(
        paid_tier=tier("PLUS"), paid_tier_until=until or timezone.localdate() + timedelta(days=30))
    return Member.objects.get(pk=member.pk)


def set_tier(member, code: str) -> Member:
    Member.objects.filter(pk=member.pk).update(tier=tier(code))
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def parking(db):
    """PARKING 免费停车: 4 hours a month with Plus, 2 with 铂金卡."""
    benefit = Benefit.objects.create(code="PARKING", name="免费停车", unit=Benefit.Unit.HOUR)
    BenefitQuota.objects.create(benefit=benefit, tier=tier("PLUS"), quantity=4)
    BenefitQuota.objects.create(benefit=benefit, tier=tier("PLATINUM"), quantity=2)
    return benefit


@pytest.fixture
def plus_member(dept001, parking):
    return give_plus(register(name="李建国", phone="13800138000", store=dept001))


@pytest.fixture
def normal_member(dept001, parking):
    return register(name="王芳", phone="13912345678", store=dept001)


def remaining(member, code="PARKING", on=None) -> int | None:
    return next((item.remaining for item in member_benefits(member, on=on) if item.benefit.code == code), None)


# --- the POS API ---------------------------------------------------------------------------------------------


def test_plus_member_uses_two_of_four_parking_hours_and_the_lookup_shows_two_left(api, plus_member, dept001):
    # when
    response = post_use(api, plus_member, quantity=2, receipt_no="P-100")
    lookup = api.get(LOOKUP, {"member_no": plus_member.member_no}).json()
    # then
    assert response.status_code == 201, response.content
    assert response.json() == {"benefit": "PARKING", "used": 2, "remaining": 2}
    assert lookup["results"][0]["benefits"] == [{"code": "PARKING", "name": "免费停车", "remaining": 2}]
    use = BenefitUse.objects.get()
    assert (use.member_id, use.quantity, use.quota, use.store, use.receipt_no) == (
        plus_member.pk, 2, 4, dept001, "P-100")
    assert use.terminal is not None and use.period_start == timezone.localdate().replace(day=1)


def test_a_use_beyond_what_is_left_is_benefit_exhausted_and_records_nothing(api, plus_member):
    post_use(api, plus_member, quantity=3)

    response = post_use(api, plus_member, quantity=2)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "benefit_exhausted"
    assert "仅剩 1" in error["message"]
    assert BenefitUse.objects.count() == 1
    assert remaining(plus_member) == 1


def test_a_normal_card_member_is_not_entitled(api, normal_member):
    response = post_use(api, normal_member)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "not_entitled"
    assert not BenefitUse.objects.exists()


def test_the_lookup_lists_no_benefits_for_a_member_without_any(api, normal_member):
    body = api.get(LOOKUP, {"member_no": normal_member.member_no}).json()

    assert body["results"][0]["benefits"] == []


def test_a_replay_with_the_same_key_returns_the_first_answer_and_uses_nothing_more(api, plus_member):
    first = post_use(api, plus_member, quantity=1, key="same-key")
    again = post_use(api, plus_member, quantity=1, key="same-key")

    assert again.status_code == 201 and again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert BenefitUse.objects.count() == 1
    assert remaining(plus_member) == 3


@pytest.mark.parametrize("quantity", [0, -1, 1001, 1.5, "2", True, None])
def test_a_quantity_that_is_not_1_to_1000_is_400_naming_it(api, plus_member, quantity):
    response = post_use(api, plus_member, quantity=quantity)

    assert response.status_code == 400
    assert "quantity" in response.json()["error"]["fields"]
    assert not BenefitUse.objects.exists()


def test_unknown_benefit_code_and_unknown_member_are_404(api, plus_member):
    unknown_code = post_use(api, plus_member, code="NOSUCH")
    unknown_member = post_use(api, Member(member_no="800000000000"))

    assert (unknown_code.status_code, unknown_code.json()["error"]["code"]) == (404, "not_found")
    assert (unknown_member.status_code, unknown_member.json()["error"]["code"]) == (404, "not_found")


def test_a_frozen_member_is_refused_with_409(api, plus_member):
    Member.objects.filter(pk=plus_member.pk).update(status=Member.Status.FROZEN)

    response = post_use(api, plus_member)

    assert response.status_code == 409
    assert not BenefitUse.objects.exists()


def test_a_switched_off_benefit_is_not_entitled(api, plus_member, parking):
    Benefit.objects.filter(pk=parking.pk).update(is_active=False)

    response = post_use(api, plus_member)

    assert response.json()["error"]["code"] == "not_entitled"


def test_the_lookup_reads_benefits_of_a_whole_family_in_a_constant_number_of_queries(
        api, parking, dept001):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            body = api.get(LOOKUP, {"phone": "13700000000"}).json()
        assert all(row["benefits"] for row in body["results"])
        return len(captured)

    give_plus(register(name="赵一", phone="13700000000", store=dept001))
    count_queries()  # the terminal's first call of the minute records when it was last seen
    one = count_queries()
    for name in ("赵二", "赵三", "赵四"):
        give_plus(register(name=name, phone="13700000000", store=dept001))

    assert count_queries() == one


# --- the rules -------------------------------------------------------------------------------------------------


def test_an_expired_paid_tier_gives_no_benefit(plus_member, dept001):
    member = give_plus(plus_member, until=timezone.localdate() - timedelta(days=1))

    with pytest.raises(NotEntitled):
        benefit_use(member=member, code="PARKING", quantity=1, store=dept001)
    assert member_benefits(member) == []


def test_the_paid_tier_s_last_day_still_counts(plus_member, dept001):
    member = give_plus(plus_member, until=timezone.localdate())

    assert benefit_use(member=member, code="PARKING", quantity=1, store=dept001).remaining == 3


def test_the_larger_quota_of_earned_and_paid_tier_wins(plus_member, dept001):
    platinum = set_tier(plus_member, "PLATINUM")
    assert remaining(platinum) == 4
    # and without Plus, the earned tier's own quota
    assert remaining(give_plus(platinum, until=timezone.localdate() - timedelta(days=1))) == 2


def test_of_two_equal_quotas_the_shorter_period_wins(plus_member, parking):
    BenefitQuota.objects.filter(benefit=parking, tier=tier("PLATINUM")).update(
        quantity=4, period=BenefitQuota.Period.DAY)
    member = set_tier(plus_member, "PLATINUM")

    assert member_benefits(member)[0].period == BenefitQuota.Period.DAY


def test_a_new_month_starts_with_the_full_quota(plus_member, dept001):
    last_month = date(2026, 11, 20)
    give_plus(plus_member, until=date(2027, 12, 31))
    benefit_use(member=plus_member, code="PARKING", quantity=4, store=dept001, on=last_month)
    with pytest.raises(BenefitExhausted):
        benefit_use(member=plus_member, code="PARKING", quantity=1, store=dept001, on=last_month)

    result = benefit_use(member=plus_member, code="PARKING", quantity=1, store=dept001, on=date(2026, 12, 1))

    assert result.remaining == 3
    assert list(BenefitUse.objects.order_by("pk").values_list("period_start", flat=True)) == [
        date(2026, 11, 1), date(2026, 12, 1)]


@pytest.mark.parametrize(("period", "on", "start", "end"), [
    ("day", date(2026, 12, 7), date(2026, 12, 7), date(2026, 12, 8)),
    ("month", date(2026, 12, 31), date(2026, 12, 1), date(2027, 1, 1)),
    ("quarter", date(2026, 8, 15), date(2026, 7, 1), date(2026, 10, 1)),
    ("year", date(2026, 12, 31), date(2026, 1, 1), date(2027, 1, 1)),
])
def test_the_quota_periods_are_local_calendar_periods(period, on, start, end):
    assert benefit_period(period, on) == (start, end)


def test_a_mistaken_use_is_given_back_within_the_period_never_more_than_used(plus_member, dept001, dept001_clerk):
    benefit_use(member=plus_member, code="PARKING", quantity=3, store=dept001)

    result = benefit_give_back(member=plus_member, code="PARKING", quantity=2, store=dept001,
                               operator=dept001_clerk, note="录错小时数")

    assert result.remaining == 3
    assert BenefitUse.objects.filter(quantity=-2, operator=dept001_clerk).exists()
    with pytest.raises(BenefitUseInvalid) as refused:
        benefit_give_back(member=plus_member, code="PARKING", quantity=2, store=dept001, operator=dept001_clerk,
                          note="再退")
    assert "no more can be given back" in refused.value.fields["quantity"][0]


# --- the desk --------------------------------------------------------------------------------------------------


@pytest.fixture
def dept001_clerk(dept001, make_staff):
    return make_staff("dept001_desk", group="服务台", stores=[dept001])


@pytest.fixture
def desk(client, dept001_clerk):
    client.force_login(dept001_clerk)
    return client


def desk_url(member) -> str:
    return f"/desk/members/{member.member_no}/benefits/"


def test_the_member_page_links_to_the_benefits_with_f11(desk, plus_member):
    html = desk.get(f"/desk/members/{plus_member.member_no}/").content.decode()

    assert f'href="{desk_url(plus_member)}" data-key="F11"' in html


def test_a_clerk_records_a_use_at_the_desk_and_sees_what_is_left(desk, plus_member, dept001, dept001_clerk):
    page = desk.get(desk_url(plus_member))
    assert page.status_code == 200 and "免费停车" in page.content.decode()

    response = desk.post(desk_url(plus_member), {"benefit": "PARKING", "quantity": "3", "receipt_no": "D-1",
                                                 "note": "", "action": "use"}, follow=True)

    assert response.status_code == 200
    html = response.content.decode()
    assert "剩余 1" in html
    use = BenefitUse.objects.get()
    assert (use.store, use.operator, use.quantity, use.receipt_no) == (dept001, dept001_clerk, 3, "D-1")


def test_the_desk_shows_the_refusal_when_the_quota_is_used_up(desk, plus_member, dept001):
    benefit_use(member=plus_member, code="PARKING", quantity=4, store=dept001)

    response = desk.post(desk_url(plus_member), {"benefit": "PARKING", "quantity": "1", "action": "use"})

    assert response.status_code == 422
    assert "本期额度 4，仅剩 0" in response.content.decode()
    assert BenefitUse.objects.count() == 1


def test_a_give_back_at_the_desk_needs_a_note(desk, plus_member, dept001):
    benefit_use(member=plus_member, code="PARKING", quantity=2, store=dept001)

    refused = desk.post(desk_url(plus_member), {"benefit": "PARKING", "quantity": "1", "action": "give_back"})
    given = desk.post(desk_url(plus_member), {"benefit": "PARKING", "quantity": "1", "note": "多录了一小时",
                                              "action": "give_back"})

    assert refused.status_code == 400 and "请说明退回的原因" in refused.content.decode()
    assert given.status_code == 302
    assert remaining(plus_member) == 3


def test_another_store_s_clerk_records_the_use_at_their_own_store(client, make_staff, plus_member, super001):
    clerk = make_staff("super001_desk", group="服务台", stores=[super001])
    client.force_login(clerk)

    response = client.post(desk_url(plus_member), {"benefit": "PARKING", "quantity": "1", "action": "use"})

    assert response.status_code == 302
    assert BenefitUse.objects.get().store == super001


def test_a_desk_user_without_the_benefit_permission_is_refused(client, make_staff, plus_member, dept001):
    clerk = make_staff("plain_desk", group="服务台", stores=[dept001])
    clerk.groups.clear()
    clerk.user_permissions.add(Permission.objects.get(codename="use_service_desk"))
    client.force_login(clerk)

    response = client.post(desk_url(plus_member), {"benefit": "PARKING", "quantity": "1", "action": "use"})

    assert response.status_code == 403
    assert not BenefitUse.objects.exists()


# --- the admin -------------------------------------------------------------------------------------------------


def test_the_usage_ledger_in_the_admin_is_scoped_to_the_store(client, plus_member, dept001, super001,
                                                               super001_manager, dept001_manager):
    benefit_use(member=plus_member, code="PARKING", quantity=1, store=dept001, receipt_no="ADM-DEPT")
    use = benefit_use(member=plus_member, code="PARKING", quantity=1, store=super001, receipt_no="ADM-SUPER").use

    client.force_login(dept001_manager)
    listing = client.get("/admin/membership/benefituse/").content.decode()
    other = client.get(f"/admin/membership/benefituse/{use.pk}/change/")

    assert "ADM-DEPT" in listing and "ADM-SUPER" not in listing
    assert other.status_code == 404


def test_headquarters_edit_the_catalogue_and_store_staff_only_read_it(client, hq_admin, dept001_manager, parking):
    client.force_login(dept001_manager)
    read = client.get(f"/admin/membership/benefit/{parking.pk}/change/")
    refused = client.post(f"/admin/membership/benefit/{parking.pk}/change/", {"name": "改名"})
    client.force_login(hq_admin)
    page = client.get(f"/admin/membership/benefit/{parking.pk}/change/")

    assert read.status_code == 200 and 'name="name"' not in read.content.decode()
    assert refused.status_code == 403
    assert Benefit.objects.get(pk=parking.pk).name == "免费停车"
    assert 'name="name"' in page.content.decode() and 'name="quotas-0-quantity"' in page.content.decode()


def test_the_member_s_admin_page_shows_what_is_left_of_each_benefit(client, hq_admin, plus_member, dept001):
    benefit_use(member=plus_member, code="PARKING", quantity=1, store=dept001)
    client.force_login(hq_admin)

    html = client.get(f"/admin/membership/member/{plus_member.pk}/change/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert html.status_code == 200
    assert "免费停车" in html.content.decode()


# --- demo data -------------------------------------------------------------------------------------------------


def test_the_demo_catalogue_is_safe_to_seed_twice(dept001):
    plus = give_plus(register(name="陈丽华", phone="13708231001", store=dept001))

    first = benefits_seed()
    second = benefits_seed()

    assert (first.benefits, first.quotas, first.uses) == (4, 8, 1)
    assert (second.benefits, second.quotas, second.uses) == (0, 0, 0)
    assert remaining(plus) == 2
    assert {item.benefit.code for item in member_benefits(plus)} == {"PARKING", "GIFTWRAP", "HOMESVC", "LOUNGE"}


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ten_concurrent_uses_of_a_quota_of_four_record_exactly_four(reference_stores, ledgers_balanced):
    dept001 = Store.objects.get(code="DEPT001")
    benefit = Benefit.objects.create(code="PARKING", name="免费停车", unit=Benefit.Unit.HOUR)
    BenefitQuota.objects.create(benefit=benefit, tier=tier("PLUS"), quantity=4)
    member = give_plus(register(name="李建国", phone="13800138000", store=dept001))

    results = concurrently(10, lambda index: benefit_use(member=member.pk, code="PARKING", quantity=1,
                                                         store=dept001, receipt_no=f"C-{index}"))

    assert kinds(results) == {"BenefitUseResult": 4, "BenefitExhausted": 6}
    assert BenefitUse.objects.filter(member=member).count() == 4
    ledgers_balanced()
