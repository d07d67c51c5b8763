"""The member admin: masked lists, exact search, store scope, reveal, contact changes, status and add."""

import re
from datetime import date

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import PersonalDataAccess
from membership.models import Member, MemberCard, MemberEvent, PointsEntry
from membership.services import points_post
from stores.models import StaffProfile
from tests.factories import StaffFactory
from tests.membership.conftest import register, resident_id

LIST = "/admin/membership/member/"
LEDGER = "/admin/membership/pointsentry/"


def _change_url(member):
    return f"{LIST}{member.pk}/change/"


def _reveal_url(member):
    return f"{LIST}{member.pk}/reveal/"


def _messages(response):
    return [str(message.message) for message in response.context["messages"]]


@pytest.fixture
def en_client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def hq_marketing(db):
    """Headquarters marketing: may view members, may not see or export full personal data."""
    return StaffFactory(username="hq_marketing", group="市场营销", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def super001_member(super001):
    return register(name="王芳", phone="13700137000", store=super001)


@pytest.fixture
def member_with_card(dept001):
    return register(name="赵丽", phone="13600136000", store=dept001, card_no="66001234567")


def _form_data(response) -> dict:
    """What the browser would send back for the change form as rendered, inline management forms included."""
    data = {}
    form = response.context["adminform"].form
    for field in form:
        value = field.value()
        if value is None or value is False:
            continue
        data[field.html_name] = "on" if value is True else value
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
    return data


# --- list and search ---------------------------------------------------------------------------


def test_member_list_shows_masked_phone_and_id_number_only(en_client, hq_admin, member_with_phone,
                                                           elderly_member_without_phone):
    en_client.force_login(hq_admin)

    response = en_client.get(LIST)

    html = response.content.decode()
    assert response.status_code == 200
    assert "138****8000" in html
    assert "13800138000" not in html
    assert elderly_member_without_phone.id_number_masked in html
    assert "139****0605" in html and "13908070605" not in html
    assert "Phone, ID number, member number, card number, name or pinyin initials" in html


def _search(client, term):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST, {"q": term})
    assert response.status_code == 200
    return response, [query["sql"] for query in queries.captured_queries]


def _assert_no_scan(sqls):
    for sql in sqls:
        assert "UPPER(" not in sql, sql
        for pattern in re.findall(r"LIKE\s+(\S+)", sql):
            assert not pattern.strip("'\"").startswith("%"), sql


@pytest.mark.parametrize("term", ["13800138000", "138 0013 8000", "+86 138-0013-8000"])
def test_search_by_phone_finds_the_member_without_a_scan(client, hq_admin, member_with_phone,
                                                         elderly_member_without_phone, term):
    client.force_login(hq_admin)

    response, sqls = _search(client, term)

    assert [m.pk for m in response.context["cl"].result_list] == [member_with_phone.pk]
    _assert_no_scan(sqls)


def test_search_by_id_number_finds_the_member_through_its_digest(client, hq_admin, member_with_phone,
                                                                 elderly_member_without_phone):
    client.force_login(hq_admin)
    number = resident_id(date(1948, 3, 12), serial=999)
    target = register(name="孙桂兰", id_type="resident_id", id_number=number, store=elderly_member_without_phone
                      .registered_store)

    response, sqls = _search(client, number.lower())

    assert [m.pk for m in response.context["cl"].result_list] == [target.pk]
    assert not any(number in sql for sql in sqls)
    _assert_no_scan(sqls)


def test_search_by_member_number_and_by_card_number(client, hq_admin, member_with_phone, member_with_card):
    client.force_login(hq_admin)

    by_no, sqls_no = _search(client, member_with_phone.member_no)
    by_card, sqls_card = _search(client, "66001234567")

    assert [m.pk for m in by_no.context["cl"].result_list] == [member_with_phone.pk]
    assert [m.pk for m in by_card.context["cl"].result_list] == [member_with_card.pk]
    _assert_no_scan(sqls_no + sqls_card)


def test_search_by_pinyin_initials_uses_a_prefix_only(client, hq_admin, member_with_phone,
                                                      elderly_member_without_phone):
    client.force_login(hq_admin)

    response, sqls = _search(client, "zx")

    assert [m.pk for m in response.context["cl"].result_list] == [elderly_member_without_phone.pk]
    _assert_no_scan(sqls)


def test_search_by_part_of_a_name_finds_nothing(client, hq_admin, elderly_member_without_phone):
    client.force_login(hq_admin)

    response, sqls = _search(client, "秀英")

    assert list(response.context["cl"].result_list) == []
    _assert_no_scan(sqls)


def test_a_merged_record_is_still_found_by_its_own_number(client, hq_admin, member_with_phone, dept001):
    client.force_login(hq_admin)
    other = register(name="李建国", phone="13800138001", store=dept001)
    Member.objects.filter(pk=other.pk).update(status=Member.Status.MERGED, merged_into=member_with_phone)

    response, _sqls = _search(client, other.member_no)

    assert {m.pk for m in response.context["cl"].result_list} == {other.pk, member_with_phone.pk}


# --- store scope ---------------------------------------------------------------------------------


def test_store_manager_sees_only_the_members_of_their_store(client, dept001_manager, member_with_phone,
                                                            super001_member):
    client.force_login(dept001_manager)

    response = client.get(LIST)

    assert [m.pk for m in response.context["cl"].result_list] == [member_with_phone.pk]


def test_store_manager_search_does_not_reach_other_stores(client, dept001_manager, super001_member):
    client.force_login(dept001_manager)

    response = client.get(LIST, {"q": "13700137000"})

    assert list(response.context["cl"].result_list) == []


def test_store_manager_gets_404_for_a_member_of_another_store(client, dept001_manager, super001_member):
    client.force_login(dept001_manager)

    assert client.get(_change_url(super001_member)).status_code == 404
    assert client.get(f"{LIST}{super001_member.pk}/history/").status_code == 404
    assert client.get(f"{LIST}{super001_member.pk}/status/").status_code == 404


def test_store_manager_sees_a_masked_phone_on_the_change_page(client, dept001_manager, member_with_phone):
    client.force_login(dept001_manager)

    response = client.get(_change_url(member_with_phone))

    html = response.content.decode()
    assert response.status_code == 200
    assert "138****8000" in html
    assert "13800138000" not in html


def test_points_ledger_of_a_store_manager_lists_only_their_members(client, dept001_manager, member_with_phone,
                                                                   super001_member):
    points_post(member=member_with_phone, points=100, kind=PointsEntry.Kind.ADJUST, reason="test")
    points_post(member=super001_member, points=200, kind=PointsEntry.Kind.ADJUST, reason="test")
    client.force_login(dept001_manager)

    response = client.get(LEDGER)

    assert [entry.member_id for entry in response.context["cl"].result_list] == [member_with_phone.pk]


def test_points_ledger_is_searched_by_exact_member_number(client, hq_admin, member_with_phone, super001_member):
    points_post(member=member_with_phone, points=100, kind=PointsEntry.Kind.ADJUST, reason="test")
    points_post(member=super001_member, points=200, kind=PointsEntry.Kind.ADJUST, reason="test")
    client.force_login(hq_admin)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LEDGER, {"q": super001_member.member_no})
    partial = client.get(LEDGER, {"q": super001_member.member_no[:6]})

    assert [entry.points for entry in response.context["cl"].result_list] == [200]
    assert list(partial.context["cl"].result_list) == []
    _assert_no_scan([query["sql"] for query in queries.captured_queries])


def test_the_points_ledger_cannot_be_edited_from_the_admin(client, hq_admin, member_with_phone):
    entry = points_post(member=member_with_phone, points=100, kind=PointsEntry.Kind.ADJUST, reason="test")
    client.force_login(hq_admin)

    response = client.post(f"{LEDGER}{entry.pk}/change/", {"points": "999999"})

    entry.refresh_from_db()
    assert response.status_code == 403
    assert entry.points == 100


# --- reveal ----------------------------------------------------------------------------------------


def test_reveal_shows_the_full_id_number_and_writes_the_audit_log(client, hq_admin, elderly_member_without_phone):
    client.force_login(hq_admin)
    number = _full_id(elderly_member_without_phone)

    page = client.get(_reveal_url(elderly_member_without_phone))
    response = client.post(_reveal_url(elderly_member_without_phone), REMOTE_ADDR="10.1.2.3")

    html = response.content.decode()
    assert page.status_code == 200 and number not in page.content.decode()
    assert response.status_code == 200
    assert len(number) == 18 and number in html
    assert "13908070605" in html
    assert "no-store" in response["Cache-Control"]
    log = PersonalDataAccess.objects.get()
    assert (log.user, log.action, log.object_id, log.ip_address) == (
        hq_admin, "reveal_id_number", str(elderly_member_without_phone.pk), "10.1.2.3")


def _full_id(member):
    from core.pii import pii_decrypt

    return pii_decrypt(member.id_number_sealed)


def test_reveal_without_the_permission_is_forbidden_and_not_logged(client, hq_marketing,
                                                                   elderly_member_without_phone):
    client.force_login(hq_marketing)

    change_page = client.get(_change_url(elderly_member_without_phone))
    response = client.post(_reveal_url(elderly_member_without_phone))

    assert change_page.status_code == 200
    assert _reveal_url(elderly_member_without_phone) not in change_page.content.decode()
    assert response.status_code == 403
    assert _full_id(elderly_member_without_phone) not in response.content.decode()
    assert not PersonalDataAccess.objects.exists()


def test_reveal_by_a_store_manager_is_forbidden(client, dept001_manager, elderly_member_without_phone):
    client.force_login(dept001_manager)

    response = client.post(_reveal_url(elderly_member_without_phone))

    assert response.status_code == 403
    assert not PersonalDataAccess.objects.exists()


# --- change page ----------------------------------------------------------------------------------


def test_contact_change_through_the_form_goes_through_the_service(en_client, hq_admin, member_with_phone):
    en_client.force_login(hq_admin)
    page = en_client.get(_change_url(member_with_phone))
    data = _form_data(page) | {"phone": "13911112222", "address": "重庆市渝中区解放碑", "notes": "喜欢电话联系"}

    response = en_client.post(_change_url(member_with_phone), data)

    member_with_phone.refresh_from_db()
    assert response.status_code == 302
    assert (member_with_phone.phone, member_with_phone.address) == ("13911112222", "重庆市渝中区解放碑")
    assert member_with_phone.notes == "喜欢电话联系"
    event = MemberEvent.objects.get(member=member_with_phone, kind=MemberEvent.Kind.CONTACT_CHANGED)
    assert event.actor == hq_admin
    assert event.data == {"fields": ["address", "phone"]}
    assert member_with_phone.history.first().history_user == hq_admin


def test_identity_fields_cannot_be_changed_from_the_form(en_client, hq_admin, member_with_phone):
    en_client.force_login(hq_admin)
    page = en_client.get(_change_url(member_with_phone))
    data = _form_data(page) | {"name": "李四", "member_no": "800000000000", "status": "closed"}

    en_client.post(_change_url(member_with_phone), data)

    member_with_phone.refresh_from_db()
    assert (member_with_phone.name, member_with_phone.status) == ("李建国", Member.Status.ACTIVE)
    assert member_with_phone.member_no != "800000000000"


def test_an_impossible_phone_is_refused_and_nothing_changes(en_client, hq_admin, member_with_phone):
    en_client.force_login(hq_admin)
    page = en_client.get(_change_url(member_with_phone))
    data = _form_data(page) | {"phone": "12345", "address": "新地址"}

    response = en_client.post(_change_url(member_with_phone), data)

    member_with_phone.refresh_from_db()
    assert response.status_code == 200
    assert "is not a possible phone number" in str(response.context["adminform"].form.errors["phone"])
    assert (member_with_phone.phone, member_with_phone.address) == ("13800138000", "")
    assert not MemberEvent.objects.filter(kind=MemberEvent.Kind.CONTACT_CHANGED).exists()


def test_a_manager_without_reveal_keeps_the_phone_by_leaving_it_empty(en_client, dept001_manager,
                                                                      member_with_phone):
    en_client.force_login(dept001_manager)
    page = en_client.get(_change_url(member_with_phone))
    data = _form_data(page) | {"address": "重庆市江北区"}

    response = en_client.post(_change_url(member_with_phone), data)

    member_with_phone.refresh_from_db()
    assert response.status_code == 302
    assert (member_with_phone.phone, member_with_phone.address) == ("13800138000", "重庆市江北区")
    assert MemberEvent.objects.get(kind=MemberEvent.Kind.CONTACT_CHANGED).data == {"fields": ["address"]}


def test_the_change_page_shows_recent_points_and_the_inlines(client, hq_admin, member_with_card):
    points_post(member=member_with_card, points=300, kind=PointsEntry.Kind.ADJUST, reason="开卡礼")
    client.force_login(hq_admin)

    response = client.get(_change_url(member_with_card))

    html = response.content.decode()
    assert "开卡礼" in html
    assert "66001234567" in html
    assert f"{LEDGER}?member__id__exact={member_with_card.pk}" in html
    assert client.get(f"{LEDGER}?member__id__exact={member_with_card.pk}").status_code == 200


def test_members_cannot_be_deleted(client, hq_admin, member_with_phone):
    client.force_login(hq_admin)

    response = client.post(f"{LIST}{member_with_phone.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert Member.objects.filter(pk=member_with_phone.pk).exists()


# --- status ----------------------------------------------------------------------------------------


def test_status_action_without_a_reason_asks_for_one_and_changes_nothing(client, hq_admin, member_with_phone):
    client.force_login(hq_admin)

    first = client.post(LIST, {"action": "freeze_members", "_selected_action": [member_with_phone.pk]})
    empty = client.post(LIST, {"action": "freeze_members", "_selected_action": [member_with_phone.pk],
                               "apply": "1", "reason": "  "})

    member_with_phone.refresh_from_db()
    assert first.status_code == 200 and "reason" in first.context["form"].fields
    assert empty.status_code == 200 and empty.context["form"].errors["reason"]
    assert member_with_phone.status == Member.Status.ACTIVE
    assert not MemberEvent.objects.filter(kind=MemberEvent.Kind.STATUS_CHANGED).exists()


def test_status_action_with_a_reason_freezes_and_writes_an_event(client, hq_admin, member_with_phone):
    client.force_login(hq_admin)

    response = client.post(LIST, {"action": "freeze_members", "_selected_action": [member_with_phone.pk],
                                  "apply": "1", "reason": "疑似盗用"})

    member_with_phone.refresh_from_db()
    assert response.status_code == 302
    assert member_with_phone.status == Member.Status.FROZEN
    event = MemberEvent.objects.get(kind=MemberEvent.Kind.STATUS_CHANGED)
    assert event.data == {"from": "active", "to": "frozen", "reason": "疑似盗用"}
    assert event.actor == hq_admin


def test_status_page_of_one_member_closes_it_with_a_reason(client, hq_admin, member_with_phone):
    client.force_login(hq_admin)
    url = f"{LIST}{member_with_phone.pk}/status/"

    refused = client.post(url, {"status": "closed", "reason": ""})
    done = client.post(url, {"status": "closed", "reason": "本人申请注销"})

    member_with_phone.refresh_from_db()
    assert refused.status_code == 200 and refused.context["form"].errors["reason"]
    assert done.status_code == 302
    assert member_with_phone.status == Member.Status.CLOSED


def test_a_closed_member_cannot_be_changed_from_the_form(en_client, hq_admin, member_with_phone):
    Member.objects.filter(pk=member_with_phone.pk).update(status=Member.Status.CLOSED)
    en_client.force_login(hq_admin)
    page = en_client.get(_change_url(member_with_phone))

    en_client.post(_change_url(member_with_phone), _form_data(page) | {"phone": "13911112222"})

    member_with_phone.refresh_from_db()
    assert "phone" not in page.context["adminform"].form.fields
    assert member_with_phone.phone == "13800138000"


# --- add -----------------------------------------------------------------------------------------


def test_hq_adds_a_member_through_the_registration_service(en_client, hq_admin, dept001):
    en_client.force_login(hq_admin)
    number = resident_id(date(1955, 6, 1), gender="M", serial=321)

    response = en_client.post(f"{LIST}add/", {
        "name": "陈大明", "id_type": "resident_id", "id_number": number, "gender": "U",
        "phone": "13512345678", "contact_channel": "call", "card_no": "66009999", "registered_store": dept001.pk,
        "channel": "desk",
    })

    member = Member.objects.get(name="陈大明")
    assert response.status_code == 302
    assert (member.gender, member.birth_date, member.registered_by) == ("M", date(1955, 6, 1), hq_admin)
    assert member.id_number_masked.endswith(number[-4:]) and member.name_initials == "cdm"
    assert MemberCard.objects.get(card_no="66009999").member == member
    assert MemberEvent.objects.get(member=member).kind == MemberEvent.Kind.REGISTERED


def test_adding_a_member_with_a_registered_id_number_is_refused(en_client, hq_admin, elderly_member_without_phone):
    en_client.force_login(hq_admin)

    response = en_client.post(f"{LIST}add/", {
        "name": "张秀英", "id_type": "resident_id", "id_number": _full_id(elderly_member_without_phone),
        "gender": "U", "contact_channel": "sms", "channel": "desk",
    })

    assert response.status_code == 200
    assert elderly_member_without_phone.member_no in str(response.context["adminform"].form.errors["id_number"])
    assert Member.objects.count() == 1


def test_a_store_manager_adds_members_only_to_their_store(en_client, dept001_manager, super001):
    en_client.force_login(dept001_manager)

    response = en_client.post(f"{LIST}add/", {
        "name": "周小红", "phone": "13612345678", "gender": "F", "contact_channel": "sms",
        "registered_store": super001.pk, "channel": "desk",
    })

    assert response.status_code == 200
    assert "registered_store" in response.context["adminform"].form.errors
    assert not Member.objects.exists()


# --- export ----------------------------------------------------------------------------------------

EXPORT = f"{LIST}export/"


def _export(client, resource_index=0):
    page = client.get(EXPORT)
    form = page.context["form"]
    csv_format = next(value for value, label in form.fields["format"].choices if str(label).lower() == "csv")
    data = {"format": csv_format, "resource": str(resource_index)}
    data |= {name: "on" for name, field in form.fields.items() if getattr(field, "is_selectable_field", False)}
    return page, client.post(EXPORT, data)


def test_export_without_the_permission_is_masked_and_logged(client, hq_marketing, member_with_phone,
                                                            elderly_member_without_phone):
    client.force_login(hq_marketing)

    page, response = _export(client)

    content = response.content.decode("utf-8-sig")
    assert len(page.context["form"].fields["resource"].choices) == 1
    assert response.status_code == 200
    assert "138****8000" in content and "13800138000" not in content
    assert elderly_member_without_phone.id_number_masked in content
    assert _full_id(elderly_member_without_phone) not in content
    log = PersonalDataAccess.objects.get()
    assert (log.user, log.action, log.detail) == (hq_marketing, "export", "2 rows, masked")


def test_asking_for_the_full_export_without_the_permission_exports_nothing(client, hq_marketing,
                                                                          member_with_phone):
    client.force_login(hq_marketing)

    _page, response = _export(client, resource_index=1)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "13800138000" not in response.content.decode()
    assert not PersonalDataAccess.objects.exists()


def test_full_export_with_the_permission_shows_full_numbers_and_is_logged(client, hq_admin, member_with_phone,
                                                                         elderly_member_without_phone):
    client.force_login(hq_admin)

    page, response = _export(client, resource_index=1)

    content = response.content.decode("utf-8-sig")
    assert len(page.context["form"].fields["resource"].choices) == 2
    assert "13800138000" in content
    assert _full_id(elderly_member_without_phone) in content
    assert PersonalDataAccess.objects.get().detail == "2 rows, full"


def test_store_manager_exports_only_the_members_of_their_store(client, dept001_manager, member_with_phone,
                                                               super001_member):
    client.force_login(dept001_manager)

    _page, response = _export(client)

    content = response.content.decode("utf-8-sig")
    assert member_with_phone.member_no in content
    assert super001_member.member_no not in content
    assert PersonalDataAccess.objects.get().detail == "1 rows, masked"


def test_store_staff_cannot_import_members(client, dept001_manager):
    client.force_login(dept001_manager)

    assert client.get(f"{LIST}import/").status_code == 403


# --- large lists ---------------------------------------------------------------------------------


def test_the_member_list_counts_at_most_the_cap(client, hq_admin, dept001, monkeypatch):
    from core.admin import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    for index in range(6):
        register(name=f"会员{index}", phone=f"1380013801{index}", store=dept001)
    client.force_login(hq_admin)

    response = client.get(LIST, {"status__exact": "active"})

    assert response.context["cl"].result_count == 4
    assert len(response.context["cl"].result_list) == 6


def test_the_member_list_query_count_does_not_grow_with_members(client, hq_admin, dept001):
    client.force_login(hq_admin)
    register(name="会员甲", phone="13800138010", store=dept001)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for index in range(10):
        register(name=f"会员{index}", phone=f"1390013901{index}", store=dept001)

    with CaptureQueriesContext(connection) as many:
        client.get(LIST)

    assert len(many.captured_queries) == len(few.captured_queries)


# --- the other member screens -------------------------------------------------------------------------


def test_member_cards_are_found_by_exact_card_number_only(client, hq_admin, member_with_card):
    client.force_login(hq_admin)

    with CaptureQueriesContext(connection) as queries:
        exact = client.get("/admin/membership/membercard/", {"q": "66001234567"})
    partial = client.get("/admin/membership/membercard/", {"q": "6600123"})

    assert [card.member_id for card in exact.context["cl"].result_list] == [member_with_card.pk]
    assert list(partial.context["cl"].result_list) == []
    _assert_no_scan([query["sql"] for query in queries.captured_queries])


def test_member_identities_are_found_by_exact_number_and_scoped(client, dept001_manager, member_with_phone,
                                                                super001_member):
    from membership.models import MemberIdentity

    MemberIdentity.objects.create(member=member_with_phone, source="DEPT_CRM", external_no="A1001")
    MemberIdentity.objects.create(member=super001_member, source="SUPER_CRM", external_no="A1001")
    client.force_login(dept001_manager)

    response = client.get("/admin/membership/memberidentity/", {"q": "A1001"})

    assert [identity.member_id for identity in response.context["cl"].result_list] == [member_with_phone.pk]


def test_the_add_page_and_the_status_page_render(client, hq_admin, member_with_phone):
    client.force_login(hq_admin)

    assert client.get(f"{LIST}add/").status_code == 200
    assert client.get(f"{LIST}{member_with_phone.pk}/status/").status_code == 200
    assert client.get("/admin/membership/tier/").status_code == 200


def test_the_audit_log_lists_reveals_and_cannot_be_edited(client, hq_admin, elderly_member_without_phone):
    superuser = User.objects.create_superuser(username="root", password="pw-for-tests-123")
    client.force_login(hq_admin)
    client.post(_reveal_url(elderly_member_without_phone))
    client.force_login(superuser)
    log = PersonalDataAccess.objects.get()

    listing = client.get("/admin/core/personaldataaccess/")
    edit = client.post(f"/admin/core/personaldataaccess/{log.pk}/change/", {"detail": "nothing happened"})

    assert [row.pk for row in listing.context["cl"].result_list] == [log.pk]
    assert edit.status_code == 403
    assert PersonalDataAccess.objects.get().detail == log.detail


def test_a_closed_member_can_be_reopened_with_a_reason(client, hq_admin, member_with_phone):
    Member.objects.filter(pk=member_with_phone.pk).update(status=Member.Status.CLOSED)
    client.force_login(hq_admin)

    response = client.post(f"{LIST}{member_with_phone.pk}/status/", {"status": "active", "reason": "误注销，恢复"})

    member_with_phone.refresh_from_db()
    assert response.status_code == 302
    assert member_with_phone.status == Member.Status.ACTIVE


def test_hq_import_previews_the_file_before_writing(en_client, hq_admin, dept001):
    from django.core.files.uploadedfile import SimpleUploadedFile

    en_client.force_login(hq_admin)
    page = en_client.get(f"{LIST}import/")
    csv_format = next(value for value, label in page.context["form"].fields["format"].choices
                      if str(label).lower() == "csv")
    content = "member_no,name,phone,store_code\nL0001,刘洋,13312345678,DEPT001\n".encode()

    response = en_client.post(f"{LIST}import/", {
        "resource": "0", "format": csv_format, "import_file": SimpleUploadedFile("DEPT_CRM.csv", content),
    })

    assert response.status_code == 200
    assert "刘洋" in response.content.decode()
    assert not Member.objects.exists()
