"""The service desk at /desk/: access, search, registration, contact details, slip, language, store choice."""

from datetime import date, timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from membership.models import Member, MemberCard, MemberEvent
from stores.desk import SESSION_STORE_KEY
from tests.membership.conftest import register, resident_id

SEARCH = "/desk/"
REGISTER = "/desk/register/"


@pytest.fixture
def dept001_clerk(dept001, make_staff):
    return make_staff("dept001_desk", group="服务台", stores=[dept001])


@pytest.fixture
def desk(client, dept001_clerk):
    """A test client logged in as the service-desk clerk of DEPT001."""
    client.force_login(dept001_clerk)
    return client


@pytest.fixture
def two_store_clerk(dept001, super001, make_staff):
    return make_staff("two_store_desk", group="服务台", stores=[dept001, super001])


def _form(**fields) -> dict:
    data = {
        "name": "", "id_type": "resident_id", "id_number": "", "phone": "", "family_phone": "",
        "birth_date": "", "gender": "U", "address": "", "contact_channel": "sms", "card_no": "",
    }
    data.update(fields)
    return data


def _text(response) -> str:
    return response.content.decode()


# --- access ------------------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_the_admin_login_with_the_desk_as_next(client, db):
    response = client.get(SEARCH)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next=/desk/"


def test_store_manager_without_the_desk_permission_gets_a_friendly_403(client, dept001_manager):
    client.force_login(dept001_manager)

    response = client.get(SEARCH, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 403
    assert "desk/forbidden.html" in [template.name for template in response.templates]
    assert "service desk group" in _text(response)


def test_user_without_the_permission_cannot_register_either(client, dept001_manager):
    client.force_login(dept001_manager)

    response = client.post(REGISTER, _form(name="王芳", phone="13912345678"))

    assert response.status_code == 403
    assert not Member.objects.exists()


def test_desk_clerk_gets_the_search_page_with_the_box_focused(desk):
    response = desk.get(SEARCH)

    assert response.status_code == 200
    html = _text(response)
    assert 'id="q"' in html and "autofocus" in html
    assert "/static/desk/desk.css" in html and "/static/desk/desk.js" in html
    assert "http://" not in html and "https://" not in html


def test_clerk_whose_profile_names_no_store_gets_403(client, make_staff):
    clerk = make_staff("storeless_desk", group="服务台", stores=[])
    client.force_login(clerk)

    response = client.get(SEARCH, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 403
    assert "not assigned to a store" in _text(response)


def test_superuser_without_profile_may_use_the_desk_after_choosing_a_store(client, dept001):
    admin = User.objects.create_superuser(username="root", password="pw-for-tests-123")
    client.force_login(admin)

    first = client.get(SEARCH)
    chosen = client.post("/desk/store/", {"store": dept001.pk, "next": SEARCH})

    assert "desk/choose_store.html" in [template.name for template in first.templates]
    assert chosen.status_code == 302
    assert client.get(SEARCH).status_code == 200


# --- search ------------------------------------------------------------------------------------


def test_search_by_mobile_lists_the_member_with_the_phone_masked(desk, member_with_phone):
    response = desk.get(SEARCH, {"q": "138 0013 8000"})

    html = _text(response)
    assert response.status_code == 200
    assert member_with_phone.name in html and member_with_phone.member_no in html
    assert "138****8000" in html
    assert "13800138000" not in html


def test_search_by_family_phone_finds_the_elderly_member(desk, elderly_member_without_phone):
    response = desk.get(SEARCH, {"q": "13908070605"})

    assert elderly_member_without_phone.member_no in _text(response)


def test_search_by_member_number_opens_the_member(desk, member_with_phone):
    response = desk.get(SEARCH, {"q": member_with_phone.member_no})

    assert response.status_code == 302
    assert response["Location"] == f"/desk/members/{member_with_phone.member_no}/"


def test_search_by_id_number_opens_the_member_without_showing_the_number(desk, dept001):
    number = resident_id(date(1950, 6, 1), gender="M")
    member = register(name="赵国庆", id_type="resident_id", id_number=number, store=dept001)

    response = desk.get(SEARCH, {"q": number.lower()}, follow=True)

    html = _text(response)
    assert response.redirect_chain == [(f"/desk/members/{member.member_no}/", 302)]
    assert member.id_number_masked in html
    assert number not in html


def test_search_by_member_card_number_finds_the_card_holder(desk, dept001):
    member = register(name="孙丽", phone="13711112222", card_no="6688001234", store=dept001)

    response = desk.get(SEARCH, {"q": "6688001234"})

    assert member.member_no in _text(response)


def test_search_by_name_and_by_pinyin_initials(desk, elderly_member_without_phone, member_with_phone):
    by_name = _text(desk.get(SEARCH, {"q": "张秀英"}))
    by_initials = _text(desk.get(SEARCH, {"q": "zxy"}))

    assert elderly_member_without_phone.member_no in by_name
    assert member_with_phone.member_no not in by_name
    assert elderly_member_without_phone.member_no in by_initials
    assert member_with_phone.member_no not in by_initials


def test_results_show_age_tier_and_points(desk, elderly_member_without_phone):
    html = _text(desk.get(SEARCH, {"q": "张秀英"}, HTTP_ACCEPT_LANGUAGE="en"))

    assert f"{elderly_member_without_phone.age} years" in html
    assert elderly_member_without_phone.tier.name in html
    assert "0 points" in html
    assert 'data-number="1"' in html


def test_search_without_a_match_offers_registration_with_the_name_filled_in(desk, db):
    response = desk.get(SEARCH, {"q": "欧阳娜娜"})

    html = _text(response)
    assert response.status_code == 200
    assert "/desk/register/?name=%E6%AC%A7%E9%98%B3%E5%A8%9C%E5%A8%9C" in html
    assert 'value="欧阳娜娜"' in _text(desk.get("/desk/register/", {"name": "欧阳娜娜"}))


@pytest.mark.parametrize("query", ["%", "' OR 1=1 --", "x" * 500, "1" * 30, "\u0000abc", "😀"])
def test_odd_search_input_never_crashes(desk, query):
    assert desk.get(SEARCH, {"q": query}).status_code == 200


# --- registration ------------------------------------------------------------------------------


def test_registration_with_resident_id_takes_birth_date_and_gender_from_it(desk, dept001, dept001_clerk):
    number = resident_id(date(1946, 11, 5), gender="M")

    response = desk.post(REGISTER, _form(name="陈德福", id_number=number, family_phone="13800001111",
                                         contact_channel="call"))

    member = Member.objects.get(name="陈德福")
    assert response.status_code == 302
    assert response["Location"] == f"/desk/members/{member.member_no}/?registered=1"
    assert member.birth_date == date(1946, 11, 5)
    assert member.gender == Member.Gender.MALE
    assert member.id_type == Member.IdType.RESIDENT_ID
    assert member.registered_store == dept001
    assert member.registered_by == dept001_clerk
    assert member.registered_channel == Member.Channel.DESK
    assert member.contact_channel == Member.ContactChannel.CALL
    assert MemberEvent.objects.filter(member=member, kind=MemberEvent.Kind.REGISTERED, store=dept001).exists()


def test_registration_with_phone_only(desk):
    response = desk.post(REGISTER, _form(name="王芳", phone="139-1234-5678", gender="F", marketing_consent="on"))

    member = Member.objects.get(name="王芳")
    assert response.status_code == 302
    assert member.phone == "13912345678"
    assert member.gender == Member.Gender.FEMALE
    assert member.id_type == Member.IdType.NONE
    assert member.marketing_consent is True and member.marketing_consent_at is not None


def test_registration_with_name_and_family_phone_only(desk):
    response = desk.post(REGISTER, _form(name="刘桂兰", family_phone="02363001234", birth_date="1940-02-29",
                                         contact_channel="mail", address="渝中区解放碑1号"))

    member = Member.objects.get(name="刘桂兰")
    assert response.status_code == 302
    assert member.phone == ""
    assert member.family_phone == "02363001234"
    assert member.birth_date == date(1940, 2, 29)
    assert member.address == "渝中区解放碑1号"


def test_registration_hands_over_a_member_card(desk, dept001):
    desk.post(REGISTER, _form(name="周敏", phone="13698765432", card_no="6688009999"))

    card = MemberCard.objects.get(card_no="6688009999")
    assert card.member.name == "周敏"
    assert card.issued_store == dept001


def test_wrong_check_digit_is_shown_next_to_the_id_field_and_nothing_is_written(desk):
    number = resident_id(date(1948, 3, 12))
    wrong = number[:17] + ("0" if number[17] != "0" else "1")

    response = desk.post(REGISTER, _form(name="张秀英", id_number=wrong), HTTP_ACCEPT_LANGUAGE="en")

    html = _text(response)
    assert response.status_code == 400
    assert "The check digit of the resident ID number is wrong." in html
    assert 'id="id_id_number_error"' in html
    assert not Member.objects.exists()


def test_birth_date_in_the_future_is_refused(desk):
    tomorrow = timezone.localdate() + timedelta(days=1)

    response = desk.post(REGISTER, _form(name="黄小明", phone="13500001111", birth_date=tomorrow.isoformat()),
                         HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert "The birth date cannot be in the future." in _text(response)
    assert 'id="id_birth_date_error"' in _text(response)
    assert not Member.objects.exists()


def test_unreadable_birth_date_is_refused_with_an_example(desk):
    response = desk.post(REGISTER, _form(name="黄小明", phone="13500001111", birth_date="12/03/48"),
                         HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert "for example 1948-03-12" in _text(response)
    assert not Member.objects.exists()


def test_impossible_phone_is_refused_naming_the_number(desk):
    response = desk.post(REGISTER, _form(name="黄小明", phone="12345"), HTTP_ACCEPT_LANGUAGE="en")

    html = _text(response)
    assert response.status_code == 400
    assert "12345 is not a possible phone number" in html
    assert 'id="id_phone_error"' in html
    assert not Member.objects.exists()


def test_name_alone_is_refused_because_the_member_could_not_be_found_again(desk):
    response = desk.post(REGISTER, _form(name="黄小明"), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert "so the member can be found again" in _text(response)
    assert not Member.objects.exists()


def test_missing_name_and_unknown_choice_are_refused(desk):
    response = desk.post(REGISTER, _form(name=" ", phone="13500001111", id_type="driving_licence"),
                         HTTP_ACCEPT_LANGUAGE="en")

    html = _text(response)
    assert response.status_code == 400
    assert "Enter the member&#x27;s name." in html
    assert 'id="id_id_type_error"' in html
    assert not Member.objects.exists()


def test_likely_duplicate_is_shown_and_nothing_is_written_until_confirmed(desk, member_with_phone):
    form = _form(name=member_with_phone.name, phone="13800138000")

    warned = desk.post(REGISTER, form, HTTP_ACCEPT_LANGUAGE="en")

    html = _text(warned)
    assert warned.status_code == 200
    assert "This person may already be a member" in html
    assert member_with_phone.member_no in html
    assert f'name="duplicates_seen" value="{member_with_phone.pk}"' in html
    assert Member.objects.count() == 1

    confirmed = desk.post(REGISTER, {**form, "confirm": "1", "duplicates_seen": str(member_with_phone.pk)})

    assert confirmed.status_code == 302
    assert Member.objects.filter(name=member_with_phone.name, phone="13800138000").count() == 2


def test_register_anyway_for_other_matches_than_those_shown_warns_again(desk, member_with_phone):
    form = _form(name=member_with_phone.name, phone="13800138000", confirm="1", duplicates_seen="999999")

    response = desk.post(REGISTER, form, HTTP_ACCEPT_LANGUAGE="en")

    assert "This person may already be a member" in _text(response)
    assert Member.objects.count() == 1


def test_same_id_number_again_says_who_is_registered_and_writes_nothing(desk):
    number = resident_id(date(1948, 3, 12))
    existing = register(name="张秀英", id_type="resident_id", id_number=number, phone="13512345678")

    response = desk.post(REGISTER, _form(name="张秀英", id_number=number, confirm="1"), HTTP_ACCEPT_LANGUAGE="en")

    html = _text(response)
    assert response.status_code == 409
    assert f"A member with this ID number is already registered: {existing.member_no}." in html
    assert f"/desk/members/{existing.member_no}/" in html
    assert Member.objects.count() == 1


def test_member_card_number_already_in_use_is_shown_on_the_card_field(desk, dept001):
    register(name="孙丽", phone="13711112222", card_no="6688001234", store=dept001)

    response = desk.post(REGISTER, _form(name="钱进", phone="13722223333", card_no="6688001234"),
                         HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 400
    assert "This member card number is already in use." in _text(response)
    assert 'id="id_card_no_error"' in _text(response)
    assert not Member.objects.filter(name="钱进").exists()


# --- member page, slip and contact details -----------------------------------------------------


def test_member_page_after_registration_focuses_the_slip_and_holds_it(desk, dept001):
    desk.post(REGISTER, _form(name="王芳", phone="13912345678", marketing_consent="on", contact_channel="wechat"))
    member = Member.objects.get(name="王芳")

    response = desk.get(f"/desk/members/{member.member_no}/?registered=1", HTTP_ACCEPT_LANGUAGE="en")

    html = _text(response)
    slip = html[html.index('class="slip"'):]
    assert response.status_code == 200
    assert "data-print autofocus" in html
    assert member.member_no in slip and "王芳" in slip and "139****5678" in slip
    assert dept001.name in slip and dept001.legal_entity.name in slip
    assert timezone.localtime(member.registered_at).strftime("%Y-%m-%d") in slip
    assert member.tier.name in slip
    assert "Member's signature" in slip
    assert "I agree to receive offers by WeChat." in slip
    assert "13912345678" not in html


def test_member_page_shows_masked_details_and_identities(desk, elderly_member_without_phone):
    elderly_member_without_phone.identities.create(source="DEPT_CRM", external_no="D-00042")

    response = desk.get(f"/desk/members/{elderly_member_without_phone.member_no}/")

    html = _text(response)
    assert elderly_member_without_phone.id_number_masked in html
    assert "139****0605" in html
    assert "DEPT_CRM: D-00042" in html
    assert "1948-03-12" in html


@pytest.mark.parametrize("member_no", ["800000000000", "%00", "x" * 200, "８００"])
def test_unknown_member_number_is_a_friendly_404(desk, member_no):
    response = desk.get(f"/desk/members/{member_no}/")

    assert response.status_code == 404
    assert "desk/not_found.html" in [template.name for template in response.templates]
    assert desk.get(f"/desk/members/{member_no}/contact/").status_code == 404


def test_contact_update_changes_the_phone_and_records_an_event(desk, member_with_phone, dept001_clerk, dept001):
    url = f"/desk/members/{member_with_phone.member_no}/contact/"

    response = desk.post(url, {"phone": "13600001234", "family_phone": "", "address": "解放碑",
                               "contact_channel": "call", "marketing_consent": "on"})

    member_with_phone.refresh_from_db()
    assert response.status_code == 302
    assert member_with_phone.phone == "13600001234"
    assert member_with_phone.address == "解放碑"
    assert member_with_phone.contact_channel == Member.ContactChannel.CALL
    assert member_with_phone.marketing_consent is True
    event = MemberEvent.objects.get(member=member_with_phone, kind=MemberEvent.Kind.CONTACT_CHANGED)
    assert event.actor == dept001_clerk and event.store == dept001


def test_contact_form_does_not_reveal_the_phone_and_an_empty_box_keeps_it(desk, member_with_phone):
    url = f"/desk/members/{member_with_phone.member_no}/contact/"

    form_html = _text(desk.get(url))
    desk.post(url, {"phone": "", "family_phone": "", "address": "新地址", "contact_channel": "sms"})

    member_with_phone.refresh_from_db()
    assert "13800138000" not in form_html and "138****8000" in form_html
    assert member_with_phone.phone == "13800138000"
    assert member_with_phone.address == "新地址"


def test_contact_update_with_impossible_phone_changes_nothing(desk, member_with_phone):
    url = f"/desk/members/{member_with_phone.member_no}/contact/"

    response = desk.post(url, {"phone": "9999", "address": "别处", "contact_channel": "sms"},
                         HTTP_ACCEPT_LANGUAGE="en")

    member_with_phone.refresh_from_db()
    assert response.status_code == 400
    assert "9999 is not a possible phone number" in _text(response)
    assert member_with_phone.phone == "13800138000" and member_with_phone.address == ""
    assert not MemberEvent.objects.filter(kind=MemberEvent.Kind.CONTACT_CHANGED).exists()


def test_removing_the_only_contact_of_a_member_without_id_is_refused(desk, member_with_phone):
    url = f"/desk/members/{member_with_phone.member_no}/contact/"

    response = desk.post(url, {"remove_phone": "on", "contact_channel": "sms"}, HTTP_ACCEPT_LANGUAGE="en")

    member_with_phone.refresh_from_db()
    assert response.status_code == 400
    assert "so the member can be found again" in _text(response)
    assert member_with_phone.phone == "13800138000"


# --- language and store ------------------------------------------------------------------------


def test_desk_is_chinese_by_default(desk):
    html = _text(desk.get(SEARCH))

    assert '<html lang="zh-hans">' in html
    assert "注销" in html


def test_desk_speaks_english_when_the_browser_asks_for_it(desk):
    html = _text(desk.get(SEARCH, HTTP_ACCEPT_LANGUAGE="en"))

    assert '<html lang="en">' in html
    assert "Log out" in html and "注销" not in html


def test_language_cookie_switches_the_desk_to_english(desk):
    desk.post("/i18n/setlang/", {"language": "en", "next": SEARCH})

    assert '<html lang="en">' in _text(desk.get(SEARCH))


def test_clerk_of_two_stores_chooses_one_and_it_is_remembered(client, two_store_clerk, super001):
    client.force_login(two_store_clerk)

    first = client.get(REGISTER)
    chosen = client.post("/desk/store/", {"store": super001.pk, "next": REGISTER})
    client.post(REGISTER, _form(name="王芳", phone="13912345678"))

    assert "desk/choose_store.html" in [template.name for template in first.templates]
    assert chosen.status_code == 302 and chosen["Location"] == REGISTER
    assert client.session[SESSION_STORE_KEY] == super001.pk
    assert Member.objects.get(name="王芳").registered_store == super001


def test_clerk_cannot_choose_a_store_that_is_not_theirs(client, dept001_clerk, super001):
    client.force_login(dept001_clerk)

    response = client.post("/desk/store/", {"store": super001.pk})

    assert response.status_code == 400
    assert SESSION_STORE_KEY not in client.session


def test_choosing_a_store_ignores_a_next_address_on_another_site(client, two_store_clerk, dept001):
    client.force_login(two_store_clerk)

    response = client.post("/desk/store/", {"store": dept001.pk, "next": "https://evil.example/"})

    assert response["Location"] == SEARCH


def test_headquarters_user_may_act_for_any_store(client, hq_admin, super001):
    client.force_login(hq_admin)

    client.post("/desk/store/", {"store": super001.pk})
    client.post(REGISTER, _form(name="王芳", phone="13912345678"))

    assert Member.objects.get(name="王芳").registered_store == super001


def test_nul_characters_in_the_forms_are_refused_without_a_crash(desk, member_with_phone):
    registered = desk.post(REGISTER, _form(name="王\x00芳", phone="13912345678", id_number="\x00"))
    updated = desk.post(f"/desk/members/{member_with_phone.member_no}/contact/",
                        {"phone": "139\x0012345678", "address": "\x00", "contact_channel": "sms"})

    assert registered.status_code == 400 and updated.status_code == 400
    assert Member.objects.count() == 1
