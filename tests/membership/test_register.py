"""member_register: what the desk, imports and the POS use to create a member."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from stdnum import luhn

from core.pii import pii_decrypt
from membership.errors import MemberAlreadyRegistered, MemberInvalid
from membership.models import Member, MemberCard, MemberEvent
from membership.queries import members_by_id_number, members_by_name
from membership.services import member_no_is_valid, name_initials
from tests.membership.conftest import register, resident_id

pytestmark = pytest.mark.django_db


def row_values(table: str, pk: int) -> list[str]:
    """Every column of a row as text, read with plain SQL as someone with database access would."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608 - table names are ours
        return [str(value) for value in cursor.fetchone()]


def assert_refused(field: str, **fields):
    with pytest.raises(MemberInvalid) as error:
        register(**fields)
    assert field in error.value.fields, error.value.fields
    assert Member.objects.count() == 0
    assert MemberEvent.objects.count() == 0
    return error.value


# --- with an ID card -----------------------------------------------------------------------


def test_id_number_gives_birth_date_and_gender(dept001):
    member = register(name="王建军", id_type="resident_id", id_number=resident_id(date(1952, 7, 1), gender="M"),
                      store=dept001)
    member.refresh_from_db()
    assert member.birth_date == date(1952, 7, 1)
    assert member.gender == Member.Gender.MALE
    assert member.id_type == Member.IdType.RESIDENT_ID
    assert member.registered_store == dept001


def test_raw_id_number_is_in_no_column_of_the_members_table(dept001):
    number = resident_id(date(1948, 3, 12))
    member = register(name="张秀英", id_type="resident_id", id_number=number, store=dept001)
    values = row_values("membership_member", member.pk)
    assert not [value for value in values if number in value]
    assert not [value for value in values if number[6:14] + number[14:] in value]
    history_table = Member.history.model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {history_table}")  # noqa: S608
        history_values = [str(value) for row in cursor.fetchall() for value in row]
    assert history_values, "registration writes a history row"
    assert not [value for value in history_values if number in value]


def test_id_number_is_kept_masked_sealed_and_findable(dept001):
    number = resident_id(date(1948, 3, 12))
    member = register(name="张秀英", id_type="resident_id", id_number=number, store=dept001)
    member.refresh_from_db()
    assert member.id_number_masked == number[:3] + "*" * 11 + number[-4:]
    assert pii_decrypt(member.id_number_sealed) == number
    assert list(members_by_id_number(number)) == [member]
    assert list(members_by_id_number(f" {number[:9]} {number[9:].lower()} ")) == [member]
    assert list(members_by_id_number(resident_id(date(1948, 3, 13)))) == []


def test_same_id_number_twice_is_already_registered(dept001):
    number = resident_id(date(1948, 3, 12))
    first = register(name="张秀英", id_type="resident_id", id_number=number, store=dept001)
    with pytest.raises(MemberAlreadyRegistered) as error:
        register(name="张秀英", id_number=number.lower(), phone="13900001111", store=dept001)
    assert first.member_no in str(error.value)
    assert Member.objects.count() == 1


def test_passport_is_accepted_without_birth_date_from_it():
    member = register(name="John Smith", id_type="passport", id_number="e1234567", phone="13800138001")
    member.refresh_from_db()
    assert member.id_type == Member.IdType.PASSPORT
    assert member.id_number_masked == "E12*4567"
    assert list(members_by_id_number("E1234567")) == [member]
    assert member.birth_date is None


# --- without an ID card ----------------------------------------------------------------------


def test_name_and_phone_are_enough(dept001):
    member = register(name="李建国", phone="+86 138 0013 8000", store=dept001)
    member.refresh_from_db()
    assert member.phone == "13800138000"
    assert member.id_type == Member.IdType.NONE
    assert member.id_number_digest is None
    assert member.id_number_sealed == ""
    assert member.gender == Member.Gender.UNKNOWN


def test_name_and_family_phone_are_enough_for_an_elderly_member(dept001):
    member = register(name="陈桂兰", family_phone="13908070605", birth_date=date(1940, 2, 2), store=dept001)
    member.refresh_from_db()
    assert member.phone == ""
    assert member.family_phone == "13908070605"
    assert member.birth_date == date(1940, 2, 2)


def test_two_members_without_id_numbers_may_share_nothing_but_the_constraint():
    register(name="李建国", phone="13800138000")
    register(name="李小红", phone="13800138000")
    assert Member.objects.filter(id_number_digest=None).count() == 2


def test_registration_writes_an_event_with_the_channel(dept001, hq_admin):
    member = register(name="李建国", phone="13800138000", store=dept001, registered_by=hq_admin, channel="pos")
    event = MemberEvent.objects.get(member=member)
    assert event.kind == MemberEvent.Kind.REGISTERED
    assert event.actor == hq_admin
    assert event.store == dept001
    assert event.data == {"channel": "pos"}


def test_member_card_is_issued_at_registration(dept001):
    member = register(name="李建国", phone="13800138000", card_no="M0001", store=dept001)
    card = MemberCard.objects.get(card_no="M0001")
    assert card.member == member
    assert card.issued_store == dept001


def test_marketing_consent_is_timestamped():
    before = timezone.now()
    member = register(name="李建国", phone="13800138000", marketing_consent=True)
    assert member.marketing_consent_at is not None
    assert member.marketing_consent_at >= before
    assert register(name="李小红", phone="13800138001").marketing_consent_at is None


# --- refusals, each writing nothing -------------------------------------------------------------


def test_no_contact_at_all_is_refused(db):
    error = assert_refused("phone", name="张三")
    assert "ID number" in error.fields["phone"][0]


def test_empty_name_is_refused(db):
    assert_refused("name", name="  ", phone="13800138000")


def test_wrong_check_digit_is_refused(db):
    number = resident_id(date(1948, 3, 12))
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    error = assert_refused("id_number", name="张秀英", id_type="resident_id", id_number=wrong)
    assert "check digit" in error.fields["id_number"][0]


def test_future_birth_date_is_refused(db):
    assert_refused("birth_date", name="张三", phone="13800138000",
                   birth_date=timezone.localdate() + timedelta(days=1))


def test_impossible_phone_is_refused_naming_the_number(db):
    error = assert_refused("phone", name="张三", phone="12345")
    assert "12345" in error.fields["phone"][0]


def test_impossible_family_phone_is_refused(db):
    assert_refused("family_phone", name="张三", phone="13800138000", family_phone="2345678901")


def test_birth_date_conflicting_with_the_id_number_is_refused(db):
    number = resident_id(date(1948, 3, 12))
    error = assert_refused("birth_date", name="张秀英", id_type="resident_id", id_number=number,
                           birth_date=date(1948, 3, 13))
    assert "1948-03-12" in error.fields["birth_date"][0]


def test_unknown_id_type_is_refused(db):
    assert_refused("id_number", name="张三", id_type="driving_licence", id_number="A1234567")


def test_malformed_passport_is_refused(db):
    assert_refused("id_number", name="John Smith", id_type="passport", id_number="12-34")


def test_over_long_member_card_number_is_refused(db):
    assert_refused("card_no", name="张三", phone="13800138000", card_no="9" * 33)


def test_member_card_number_in_use_is_refused():
    register(name="张三", phone="13800138000", card_no="M0001")
    with pytest.raises(MemberInvalid) as error:
        register(name="李四", phone="13800138001", card_no="M0001")
    assert "card_no" in error.value.fields
    assert Member.objects.count() == 1


def test_every_wrong_field_is_named_at_once(db):
    with pytest.raises(MemberInvalid) as error:
        register(name="", phone="12345", birth_date=timezone.localdate() + timedelta(days=3))
    assert {"name", "phone", "birth_date"} <= set(error.value.fields)


# --- member numbers and names ---------------------------------------------------------------------


def test_member_numbers_are_12_digits_starting_with_8_with_a_luhn_digit():
    numbers = {register(name=f"会员{i}", phone=f"1380013{i:04d}").member_no for i in range(30)}
    assert len(numbers) == 30
    for number in numbers:
        assert len(number) == 12 and number.isdigit() and number.startswith("8")
        assert luhn.is_valid(number)
        assert member_no_is_valid(number)


def test_member_number_with_a_wrong_digit_is_not_valid():
    number = register(name="张三", phone="13800138000").member_no
    changed = number[:5] + str((int(number[5]) + 1) % 10) + number[6:]
    assert not member_no_is_valid(changed)
    assert not member_no_is_valid("7" + number[1:])
    assert not member_no_is_valid(number[:-1])


@pytest.mark.parametrize("name, initials", [
    ("张秀英", "zxy"),
    ("曾小明", "zxm"),
    ("单雄信", "sxx"),
    ("李 明", "lm"),
    ("阿卜杜拉·买买提", "abdlmmt"),
    ("John Smith", "js"),
    ("Anna李", "al"),
])
def test_pinyin_initials(name, initials):
    assert name_initials(name) == initials


def test_clerk_finds_a_member_by_pinyin_initials():
    member = register(name="曾秀英", phone="13800138000")
    assert member.name_initials == "zxy"
    assert list(members_by_name("ZX")) == [member]
