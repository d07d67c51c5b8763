"""Partner channels (联名会员渠道): registering with a partner's code at the desk, the figures per partner (members,
converted, sales, per month), the partner admin and its Excel downloads."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from membership.errors import MemberInvalid
from membership.models import Member, MemberEvent, Partner
from membership.queries_partners import partner_figures, partner_months, partners_with_figures
from membership.services import MemberInput, member_register
from membership.services.purchases import purchase_record, purchase_return
from tests.membership.conftest import register

PARTNERS = "/admin/membership/partner/"
REGISTER = "/desk/register/"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def bank(db):
    return Partner.objects.create(code="CMB", name="招商银行重庆分行", kind=Partner.Kind.BANK,
                                  registration_code="CMB2026")


@pytest.fixture
def telecom_ended(db):
    return Partner.objects.create(code="CMCC", name="中国移动重庆公司", kind=Partner.Kind.TELECOM,
                                  registration_code="CMCC2025", is_active=False)


def _registered_through(partner, *, name, phone, store, days_ago):
    member = register(name=name, phone=phone, store=store, partner_code=partner.registration_code)
    Member.objects.filter(pk=member.pk).update(registered_at=timezone.now() - timedelta(days=days_ago))
    return Member.objects.get(pk=member.pk)


def _buy(member, store, receipt_no, amount, days_ago):
    return purchase_record(store=store, member=member, receipt_no=receipt_no, amount=Decimal(amount),
                           occurred_at=timezone.now() - timedelta(days=days_ago))


@pytest.fixture
def bank_population(bank, telecom_ended, dept001, super001):
    """Four members through the bank, registered 70 days ago: 陈丽华 bought twice after registering (100.00, and
    50.00 of which 20.00 came back: 130.00 net), 刘志强 once (200.00), 杨秀兰 never, 黄伟 only before registering
    (999.00). Beside them: a telecom member and a member of no partner, who bought too."""
    chen = _registered_through(bank, name="陈丽华", phone="13708231001", store=dept001, days_ago=70)
    liu = _registered_through(bank, name="刘志强", phone="13708231002", store=super001, days_ago=70)
    yang = _registered_through(bank, name="杨秀兰", phone="13708231003", store=dept001, days_ago=70)
    huang = _registered_through(bank, name="黄伟", phone="13708231004", store=dept001, days_ago=70)
    _buy(chen, dept001, "P-0001", "100.00", 60)
    _buy(chen, dept001, "P-0002", "50.00", 5)
    purchase_return(store=dept001, original_receipt_no="P-0002", receipt_no="P-R-0002", amount=Decimal("20.00"),
                    occurred_at=timezone.now() - timedelta(days=4))
    _buy(liu, super001, "P-0003", "200.00", 30)
    _buy(huang, dept001, "P-0004", "999.00", 80)
    telecom_member = register(name="周建华", phone="13708231005", store=dept001)
    Member.objects.filter(pk=telecom_member.pk).update(
        partner=telecom_ended, registered_channel=Member.Channel.PARTNER,
        registered_at=timezone.now() - timedelta(days=100))
    _buy(telecom_member, dept001, "P-0005", "555.00", 50)
    nobody = register(name="吴桂英", phone="13708231006", store=dept001)
    _buy(nobody, dept001, "P-0006", "777.00", 1)
    return {"chen": chen, "liu": liu, "yang": yang, "huang": huang, "telecom": telecom_member}


@pytest.fixture
def hq(client, hq_admin):
    client.force_login(hq_admin)
    return client


def _rows(content: bytes) -> list[tuple]:
    return list(load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))


def _month(days_ago: int) -> str:
    return f"{timezone.localtime(timezone.now() - timedelta(days=days_ago)):%Y-%m}"


# --- registering through a partner -------------------------------------------------------------


def test_a_valid_code_attributes_the_member_to_the_partner(bank, dept001):
    member = member_register(data=MemberInput(name="陈丽华", phone="13708231001", partner_code=" cmb2026 "),
                             store=dept001)

    assert member.partner == bank
    assert member.registered_channel == Member.Channel.PARTNER
    event = MemberEvent.objects.get(member=member, kind=MemberEvent.Kind.REGISTERED)
    assert event.data == {"channel": Member.Channel.PARTNER, "partner": "CMB"}


def test_without_a_code_the_member_has_no_partner(bank, dept001):
    member = member_register(data=MemberInput(name="陈丽华", phone="13708231001"), store=dept001)

    assert member.partner is None
    assert member.registered_channel == Member.Channel.DESK


@pytest.mark.parametrize("code", ["NOSUCH", "CMCC2025"])
def test_an_unknown_or_inactive_code_registers_nobody(bank, telecom_ended, dept001, code):
    with pytest.raises(MemberInvalid) as refused:
        member_register(data=MemberInput(name="陈丽华", phone="13708231001", partner_code=code), store=dept001)

    assert list(refused.value.fields) == ["partner_code"]
    assert not Member.objects.exists()


@pytest.fixture
def desk(client, dept001, make_staff):
    client.force_login(make_staff("dept001_desk", group="服务台", stores=[dept001]))
    return client


def _desk_form(**fields) -> dict:
    data = {"name": "陈丽华", "id_type": "resident_id", "id_number": "", "phone": "13708231001",
            "family_phone": "", "birth_date": "", "gender": "U", "address": "", "contact_channel": "sms",
            "card_no": "", "partner_code": ""}
    data.update(fields)
    return data


def test_desk_form_offers_the_partner_code(desk, bank):
    response = desk.get(REGISTER, **ZH)

    assert response.status_code == 200
    assert 'name="partner_code"' in response.content.decode()


def test_desk_registers_a_member_through_a_partner(desk, bank, dept001):
    response = desk.post(REGISTER, _desk_form(partner_code="CMB2026"), **EN)

    assert response.status_code == 302
    member = Member.objects.get()
    assert (member.partner, member.registered_channel, member.registered_store) == (
        bank, Member.Channel.PARTNER, dept001)


def test_desk_refuses_an_unknown_code_next_to_the_field(desk, bank):
    response = desk.post(REGISTER, _desk_form(partner_code="CMB2025"), **EN)

    assert response.status_code == 400
    assert not Member.objects.exists()
    errors = response.context["form"].errors
    assert list(errors) == ["partner_code"]
    assert "Partner registration code" in errors["partner_code"][0] and "CMB2025" in errors["partner_code"][0]


def test_desk_refuses_the_code_of_an_inactive_partner(desk, telecom_ended):
    response = desk.post(REGISTER, _desk_form(partner_code="CMCC2025"), **EN)

    assert response.status_code == 400
    assert not Member.objects.exists()
    message = response.context["form"].errors["partner_code"][0]
    assert "Partner registration code" in message and "中国移动重庆公司" in message


# --- figures -----------------------------------------------------------------------------------


def test_partner_figures_count_only_purchases_after_registering(bank_population, bank, telecom_ended):
    assert partner_figures(partner=bank) == {
        "members": 4, "converted": 2, "sales": Decimal("330.00"), "conversion": 0.5,
    }
    assert partner_figures(partner=telecom_ended)["sales"] == Decimal("555.00")


def test_partner_without_members_has_zero_figures(db):
    quiet = Partner.objects.create(code="AUTO", name="长安汽车", kind=Partner.Kind.CAR_BRAND,
                                   registration_code="CA2026")

    assert partner_figures(partner=quiet) == {"members": 0, "converted": 0, "sales": Decimal("0.00"),
                                              "conversion": None}


def test_merged_members_do_not_count(bank_population, bank):
    Member.objects.filter(pk=bank_population["yang"].pk).update(status=Member.Status.MERGED,
                                                               merged_into=bank_population["chen"])

    assert partner_figures(partner=bank)["members"] == 3


def test_partners_list_figures_in_one_query(bank_population, bank, telecom_ended, django_assert_num_queries):
    with django_assert_num_queries(1):
        figures = {partner.code: (partner.members_count, partner.converted_count, partner.sales)
                   for partner in partners_with_figures()}

    assert figures == {"CMB": (4, 2, Decimal("330.00")), "CMCC": (1, 1, Decimal("555.00"))}


def test_partner_months_spread_registrations_first_purchases_and_sales(bank_population, bank):
    months = {f"{row.month:%Y-%m}": row for row in partner_months(partner=bank)}

    assert sum(row.registered for row in months.values()) == 4
    assert sum(row.converted for row in months.values()) == 2
    assert sum(row.sales for row in months.values()) == Decimal("330.00")
    assert months[_month(70)].registered == 4
    # 陈丽华's first purchase was 60 days ago, 刘志强's 30 days ago; 黄伟's purchase before registering counts nowhere.
    converted = {}
    for days_ago in (60, 30):
        converted[_month(days_ago)] = converted.get(_month(days_ago), 0) + 1
    assert {month: row.converted for month, row in months.items() if row.converted} == converted
    assert months[_month(5)].sales >= Decimal("30.00")


# --- admin -------------------------------------------------------------------------------------


def test_partner_list_shows_codes_and_figures_in_chinese(hq, bank_population):
    response = hq.get(PARTNERS, **ZH)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'lang="zh-hans"' in html
    assert "招商银行重庆分行" in html and "CMB2026" in html and "330.00" in html
    assert "/admin/membership/partner/partners.xlsx" in html


def test_partner_page_shows_figures_and_months(hq, bank_population, bank):
    response = hq.get(f"{PARTNERS}{bank.pk}/change/", **ZH)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'lang="zh-hans"' in html
    assert "330.00" in html and "50.0%" in html
    assert _month(70) in html and _month(30) in html
    assert f"/admin/membership/partner/{bank.pk}/partner.xlsx" in html


def test_member_page_shows_the_partner(hq, bank_population, bank):
    response = hq.get(f"/admin/membership/member/{bank_population['chen'].pk}/change/", **ZH)

    assert response.status_code == 200
    assert "招商银行重庆分行" in response.content.decode()


def test_member_list_filters_by_partner(hq, bank_population, bank):
    response = hq.get(f"/admin/membership/member/?partner__id__exact={bank.pk}", **ZH)

    assert response.status_code == 200
    shown = {member.pk for member in response.context["cl"].result_list}
    assert shown == {bank_population[key].pk for key in ("chen", "liu", "yang", "huang")}


def test_store_manager_gets_no_partner_pages(client, dept001_manager, bank_population, bank):
    client.force_login(dept001_manager)

    for url in (PARTNERS, f"{PARTNERS}{bank.pk}/change/", f"{PARTNERS}partners.xlsx",
                f"{PARTNERS}{bank.pk}/partner.xlsx"):
        assert client.get(url, **ZH).status_code == 403, url


def test_partner_excel_holds_figures_and_months_with_money_as_numbers(hq, bank_population, bank):
    response = hq.get(f"{PARTNERS}{bank.pk}/partner.xlsx", **EN)

    assert response.status_code == 200
    rows = _rows(response.getvalue())
    assert rows[0][:3] == ("partner", "CMB", "招商银行重庆分行")
    figures = {row[0]: row[1] for row in rows if row and row[0]}
    assert figures["Members registered through it"] == 4
    assert figures["Converted (made at least one purchase after registering)"] == 2
    assert figures["Their sales (net, after registering)"] == 330
    header = rows.index(("month", "new members", "converted (first purchase)", "members who bought",
                         "sales (net)"))
    months = rows[header + 1:]
    assert sum(row[4] for row in months) == 330
    assert sum(row[1] for row in months) == 4
    book = load_workbook(io.BytesIO(hq.get(f"{PARTNERS}{bank.pk}/partner.xlsx").getvalue()))
    money_cells = [row[4] for row in book.active.iter_rows(min_row=header + 2)]
    assert money_cells and all(cell.number_format == "#,##0.00" for cell in money_cells)


def test_all_partners_excel_lists_every_partner(hq, bank_population):
    response = hq.get(f"{PARTNERS}partners.xlsx", **EN)

    assert response.status_code == 200
    rows = _rows(response.getvalue())
    header = rows.index(("code", "name", "kind", "registration code", "active", "members", "converted",
                         "conversion", "sales (net)"))
    body = {row[0]: row for row in rows[header + 1:]}
    assert body["CMB"][5:] == (4, 2, "50.0%", 330)
    assert body["CMCC"][4:] == ("no", 1, 1, "100.0%", 555)


# --- demo --------------------------------------------------------------------------------------


def test_demo_partner_has_converted_members_and_a_second_run_adds_nothing(reference_stores):
    from membership.demo.partners import BANK, seed_partners

    first = seed_partners()
    second = seed_partners()

    bank = Partner.objects.get(code=BANK["code"])
    figures = partner_figures(partner=bank)
    assert (first.partners, first.members, first.purchases) == (2, 10, 9)
    assert (second.partners, second.members, second.purchases) == (0, 0, 0)
    assert (figures["members"], figures["converted"]) == (10, 6)
    assert figures["sales"] == Decimal("4953.60")
    assert len(partner_months(partner=bank)) >= 4
