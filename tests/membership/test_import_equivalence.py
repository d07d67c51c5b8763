"""The fast paths of the legacy import give exactly what the desk's rules gave before them.

The oracles below are the functions as they were before the import was made fast: member_input_clean
building every value itself, and name_initials reading each whole name with lazy_pinyin. Both are run
side by side with today's code over thousands of generated rows, good and bad.
"""

import random
import re
from datetime import date, timedelta

import pytest
from pypinyin import Style, lazy_pinyin

from core.pii import (
    InvalidPersonalData,
    mask_id_number,
    phone_validate,
    pii_decrypt,
    pii_digest,
    resident_id_check_digit,
)
from core.tabular import TableRow
from membership import services
from membership.errors import MemberInvalid
from membership.legacy import _Reference, row_clean
from membership.models import Member
from membership.services import MemberInput, id_document_parse, member_input_clean, name_initials

TODAY = date(2026, 11, 24)
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡欧阳司马")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕彬建国志海波鹏辉宇浩文斌俊晓婷雪梅"
             "琳丹慧颖欣怡子涵梓轩然一诺雨桐佳琪思远嘉博晨阳天佑昊紫萱可馨金凤淑珍德福荣贵长林生秋菊春冬庆卫东小")
# Characters read differently in different words, and surnames with their own reading.
POLYPHONES = list("长重乐行朝都调和薄藏传弹降觉率区单解查仇朴盖翟种员召尉缪覃曾还省数称")


def old_name_initials(name: str) -> str:
    name = name.strip()
    if not name:
        return ""
    parts = lazy_pinyin(name, style=Style.FIRST_LETTER, errors="default")
    initials = "".join(word[:1] for part in parts for word in re.findall(r"[A-Za-z0-9]+", part)).lower()
    if name[0] in services._SURNAME_INITIAL:
        initials = services._SURNAME_INITIAL[name[0]] + initials[1:]
    return initials[:50]


def old_member_input_clean(data: MemberInput, *, today: date, require_contact: bool = True) -> dict:
    """member_input_clean before it was split (the oracle)."""
    errors: dict[str, list[str]] = {}
    values: dict = {}
    name = " ".join((data.name or "").split())
    if not name:
        errors["name"] = ["Enter the member's name."]
    elif len(name) > 50:
        errors["name"] = ["A name has at most 50 characters."]
    values["name"] = name
    for field_name in ("phone", "family_phone"):
        raw = (getattr(data, field_name) or "").strip()
        if not raw:
            values[field_name] = ""
            continue
        try:
            values[field_name] = phone_validate(raw)
        except InvalidPersonalData as error:
            errors[field_name] = [str(error.message)]
    document = services.IdentityDocument(id_type=Member.IdType.NONE, number="")
    try:
        document = id_document_parse(id_type=data.id_type or "", id_number=data.id_number or "")
    except InvalidPersonalData as error:
        errors["id_number"] = [str(error.message)]
    birth_date = data.birth_date
    if birth_date and birth_date > today:
        errors["birth_date"] = ["The birth date cannot be in the future."]
    if document.birth_date:
        if birth_date and birth_date != document.birth_date:
            errors["birth_date"] = [f"The birth date does not match the ID number ({document.birth_date.isoformat()})."]
        birth_date = document.birth_date
    gender = document.gender or data.gender or Member.Gender.UNKNOWN
    if gender not in Member.Gender.values:
        errors["gender"] = ["Unknown gender."]
    if data.contact_channel and data.contact_channel not in Member.ContactChannel.values:
        errors["contact_channel"] = ["Unknown contact channel."]
    if require_contact and not (document.number or values.get("phone") or values.get("family_phone")):
        errors.setdefault("phone", []).append(
            "Give an ID number, a phone, or a family contact phone so the member can be found again.")
    if errors:
        raise MemberInvalid(fields=errors)
    values.update(
        id_type=document.id_type, id_number_digest=document.digest,
        id_number_sealed=document.number, id_number_masked=mask_id_number(document.number),
        birth_date=birth_date, gender=gender, address=(data.address or "").strip()[:200],
        contact_channel=data.contact_channel or Member.ContactChannel.SMS,
        marketing_consent=bool(data.marketing_consent), notes=(data.notes or "").strip(),
        name_initials=old_name_initials(name),
    )
    return values


def generated_name(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.8:
        return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN + POLYPHONES) for _ in range(rng.choice((1, 2, 2, 3))))
    return rng.choice([
        "John Smith", " 张 John ", "阿卜杜拉·买买提", "José Ａ1b", "李-小明", "O'Neil 王", "张3丰", "", "  ",
        "王" * 51, "𠀀John", "Mary-Jane 欧阳", "ｱｲｳ", "李\t小\n明", "曾", "覃小", "单长乐",
    ])


def resident_id(rng: random.Random) -> str:
    birth = date(1930, 1, 1) + timedelta(days=rng.randint(0, 90 * 365))
    first17 = f"{rng.choice(['110101', '310115', '440305', '990101'])}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    number = first17 + resident_id_check_digit(first17)
    return rng.choice([number, number, number, number.lower(), f" {number[:6]} {number[6:]} ",
                       number[:17] + ("0" if number[17] != "0" else "1"), number[:16], "1" * 18,
                       "11010120990101001" + resident_id_check_digit("11010120990101001"), "ABC"])


def phone(rng: random.Random) -> str:
    mobile = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
    return rng.choice([mobile, mobile, "", f"+86 {mobile}", f"0086-{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}",
                       "010-12345678", "0755-1234567-123", "12345", "1" + "2" * 10, "(021)62345678", "abc"])


def generated_input(rng: random.Random) -> MemberInput:
    return MemberInput(
        name=generated_name(rng),
        phone=phone(rng),
        family_phone=rng.choice(["", "", phone(rng)]),
        id_type=rng.choice(["", "", "", Member.IdType.RESIDENT_ID, Member.IdType.PASSPORT, "bogus"]),
        id_number=rng.choice(["", resident_id(rng), resident_id(rng), "E12345678", "e 1234 5678"]),
        birth_date=rng.choice([None, None, date(1980, 5, 17), date(2030, 1, 1),
                               date(1930, 1, 1) + timedelta(days=rng.randint(0, 90 * 365))]),
        gender=rng.choice(["", "", "M", "F", "X"]),
        address=rng.choice(["", " 北京市东城区 ", "x" * 250]),
        contact_channel=rng.choice(["", Member.ContactChannel.SMS, "pigeon"]),
        marketing_consent=rng.choice([True, False, 0, 1]),
        notes=rng.choice(["", " 老会员 "]),
    )


def outcome(function, data, **kwargs):
    try:
        return function(data, **kwargs), None
    except MemberInvalid as error:
        return None, {field: [str(message) for message in messages] for field, messages in error.fields.items()}


@pytest.fixture
def english():
    from django.utils import translation

    with translation.override(None):  # the oracle's messages are the msgids
        yield


@pytest.mark.parametrize("seed", range(4))
def test_member_input_clean_gives_what_it_gave_before_for_good_and_bad_input(english, seed):
    rng = random.Random(seed)
    kinds = {"valid": 0, "invalid": 0}
    for _ in range(1500):
        data = generated_input(rng)
        require_contact = rng.random() < 0.5
        new, new_errors = outcome(member_input_clean, data, today=TODAY, require_contact=require_contact)
        old, old_errors = outcome(old_member_input_clean, data, today=TODAY, require_contact=require_contact)
        assert new_errors == old_errors, data
        if old is None:
            kinds["invalid"] += 1
            continue
        kinds["valid"] += 1
        # The seal is random (a fresh nonce): it must open to the number the old code sealed.
        assert pii_decrypt(new.pop("id_number_sealed")) == old.pop("id_number_sealed")
        assert new == old, data
    assert kinds["valid"] > 100 and kinds["invalid"] > 100


def test_name_initials_read_per_character_match_the_whole_name_reading():
    rng = random.Random(7)
    names = {generated_name(rng) for _ in range(5000)}
    names |= {surname + given for surname in services._SURNAME_INITIAL for given in ("长乐", "秀英", "重阳")}
    assert len(names) > 3000
    for name in names:
        assert name_initials(name) == old_name_initials(name), name


@pytest.mark.django_db
def test_row_clean_of_the_import_agrees_with_the_desk_rules(english, reference_stores):
    reference = _Reference.load()
    rng = random.Random(11)
    for number in range(3000):
        data = generated_input(rng)
        values = {"member_no": f"L{number}", "name": data.name, "phone": data.phone, "id_number": data.id_number,
                  "birth_date": data.birth_date.isoformat() if data.birth_date else ""}
        row = TableRow(number=number + 2, values=values, cells=tuple(values.values()))
        clean, errors = row_clean(row, reference)
        desk, desk_errors = outcome(
            old_member_input_clean,
            MemberInput(name=data.name, phone=data.phone, id_number=data.id_number, birth_date=data.birth_date),
            today=reference.today, require_contact=False,
        )
        if desk is None:
            assert clean is None
            assert {field: errors[field] for field in desk_errors} == desk_errors
            continue
        assert clean is not None, errors
        for name in ("name", "phone", "name_initials", "gender", "birth_date", "id_type", "id_number_masked"):
            assert clean.values[name] == desk[name], (name, data)
        assert clean.values["id_number_digest"] == (pii_digest(desk["id_number_sealed"])
                                                   if desk["id_number_sealed"] else None)
        if desk["id_number_sealed"]:
            assert pii_decrypt(clean.values["id_number_sealed"]) == desk["id_number_sealed"]
