"""The desk in a real browser: a clerk registers an elderly member and finds her again, keyboard only."""

import os
from datetime import date
from pathlib import Path

import pytest

from membership.models import Member
from stores.models import Store
from tests.browser import BROWSER_MARKS, browser_page_open
from tests.factories import StaffFactory
from tests.membership.conftest import resident_id

SCREENSHOTS = Path(os.environ.get("DESK_SCREENSHOTS", "/tmp"))

pytestmark = BROWSER_MARKS


@pytest.fixture
def browser_page():
    with browser_page_open(width=1024, height=768, locale="zh-CN") as page:
        yield page


@pytest.fixture
def desk_clerk(transactional_db):
    from stores import demo

    demo.seed_stores()
    return StaffFactory(username="desk_clerk", first_name="解放碑服务台", group="服务台",
                        stores=[Store.objects.get(code="DEPT001")])


def _focused(page) -> str:
    return page.evaluate("document.activeElement && (document.activeElement.name || document.activeElement.id)")


def _until_focused(page, name: str) -> None:
    """Wait until the page's own focus (autofocus, the desk's script) is on the field, as a clerk would see the
    cursor there before typing: on a busy machine the first keys could otherwise arrive before it."""
    page.wait_for_function(
        "name => document.activeElement && (document.activeElement.name || document.activeElement.id) === name",
        arg=name, timeout=15000,
    )


def _until_active(page, predicate: str, arg=None) -> None:
    """Wait until the focused element satisfies `predicate`, a JavaScript expression over `el` (and `arg`)."""
    page.wait_for_function(
        f"arg => {{ const el = document.activeElement; return !!el && ({predicate}); }}", arg=arg, timeout=15000,
    )


def test_clerk_registers_an_elderly_member_without_phone_and_finds_her_by_id_keyboard_only(
    live_server, browser_page, desk_clerk
):
    page = browser_page
    id_number = resident_id(date(1948, 3, 12), gender="F")

    # given: the clerk logs in from the desk address
    page.goto(f"{live_server.url}/desk/")
    assert "/admin/login/" in page.url
    page.keyboard.type("desk_clerk")
    page.keyboard.press("Tab")
    page.keyboard.type("pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/")
    _until_focused(page, "q")
    assert page.evaluate("getComputedStyle(document.body).fontSize") == "22px"
    assert float(page.evaluate("parseFloat(getComputedStyle(document.getElementById('q')).fontSize)")) >= 30
    page.screenshot(path=str(SCREENSHOTS / "desk_search.png"))

    # when: F2 opens the form; name, ID (the reader ends with Enter), family phone, Enter
    page.keyboard.press("F2")
    page.wait_for_url(f"{live_server.url}/desk/register/")
    _until_focused(page, "name")
    page.keyboard.type("张秀英")
    page.keyboard.press("Tab")
    assert _focused(page) == "id_type"
    page.keyboard.press("Tab")
    assert _focused(page) == "id_number"
    page.keyboard.type(id_number)
    assert "1948-03-12" in page.inner_text("#id-number-parsed")
    page.keyboard.press("Enter")
    assert _focused(page) == "phone"
    assert "/desk/register/" in page.url
    page.keyboard.press("Tab")
    assert _focused(page) == "family_phone"
    page.keyboard.type("13908070605")
    page.screenshot(path=str(SCREENSHOTS / "desk_register.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_url("**/desk/members/*/?registered=1")

    # then: she is registered with what her ID card says, and the slip is one key away
    member = Member.objects.get(name="张秀英")
    assert member.birth_date == date(1948, 3, 12)
    assert member.gender == Member.Gender.FEMALE
    assert member.family_phone == "13908070605" and member.phone == ""
    assert member.registered_by == desk_clerk
    _until_active(page, "el.hasAttribute('data-print')")

    # when: Esc goes back to the search, where the ID card reader types the number and Enter
    page.keyboard.press("Escape")
    page.wait_for_url(f"{live_server.url}/desk/")
    _until_focused(page, "q")
    page.keyboard.type(id_number)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/desk/members/{member.member_no}/")

    # then: the clerk sees her, with the ID number masked
    heading = page.inner_text("main h1")
    assert "张秀英" in heading
    body = page.inner_text("main")
    assert member.member_no in body
    assert member.id_number_masked in body
    assert id_number not in body


def test_results_open_with_arrow_keys_and_number_keys(live_server, browser_page, desk_clerk):
    from tests.membership.conftest import register

    page = browser_page
    first = register(name="张秀英", phone="13908070605", store=Store.objects.get(code="DEPT001"))
    second = register(name="张秀兰", phone="13908070606", store=Store.objects.get(code="DEPT001"))
    page.goto(f"{live_server.url}/desk/")
    page.fill("#id_username", "desk_clerk")
    page.fill("#id_password", "pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/")
    _until_focused(page, "q")

    page.keyboard.type("zx")
    page.keyboard.press("Enter")
    page.wait_for_url("**/desk/?q=zx")
    listed = page.eval_on_selector_all("[data-results] .result", "rows => rows.map(row => row.pathname)")
    assert sorted(listed) == sorted(f"/desk/members/{m.member_no}/" for m in (first, second))
    _until_active(page, "el.getAttribute('href') === arg", listed[0])
    page.screenshot(path=str(SCREENSHOTS / "desk_results.png"))
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{listed[1]}")

    page.go_back()
    page.wait_for_url("**/desk/?q=zx")
    page.keyboard.press("1")
    page.wait_for_url(f"**{listed[0]}")


def test_likely_duplicate_needs_the_explicit_register_anyway_button(live_server, browser_page, desk_clerk):
    from tests.membership.conftest import register

    page = browser_page
    existing = register(name="李建国", phone="13800138000", store=Store.objects.get(code="DEPT001"))
    page.goto(f"{live_server.url}/desk/register/")
    page.fill("#id_username", "desk_clerk")
    page.fill("#id_password", "pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/register/")
    _until_focused(page, "name")

    page.keyboard.type("李建国")
    for _ in range(3):
        page.keyboard.press("Tab")
    assert _focused(page) == "phone"
    page.keyboard.type("13800138000")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    _until_active(page, "el.classList.contains('warning')")
    assert existing.member_no in page.inner_text("section.warning")
    page.screenshot(path=str(SCREENSHOTS / "desk_duplicate.png"))

    # Enter in a field only checks again: the warning stays and nothing is written.
    page.focus("#id_phone")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.is_visible("section.warning")
    assert Member.objects.filter(name="李建国").count() == 1

    page.focus("section.warning")
    page.keyboard.press("Tab")
    _until_active(page, "el.getAttribute('href') === arg", f"/desk/members/{existing.member_no}/")
    page.keyboard.press("Tab")
    assert _focused(page) == "confirm"
    page.keyboard.press("Enter")
    page.wait_for_url("**/desk/members/*/?registered=1")
    assert Member.objects.filter(name="李建国").count() == 2
    page.emulate_media(media="print")
    page.screenshot(path=str(SCREENSHOTS / "desk_slip.png"))
    page.emulate_media(media="screen")
    page.screenshot(path=str(SCREENSHOTS / "desk_member.png"))


def test_wrong_id_number_is_shown_in_red_and_the_cursor_goes_back_to_it(live_server, browser_page, desk_clerk):
    page = browser_page
    number = resident_id(date(1948, 3, 12))
    wrong = number[:17] + ("0" if number[17] != "0" else "1")
    page.goto(f"{live_server.url}/desk/register/")
    page.fill("#id_username", "desk_clerk")
    page.fill("#id_password", "pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/register/")
    _until_focused(page, "name")

    page.keyboard.type("张秀英")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type(wrong)
    assert "bad" in page.get_attribute("#id-number-parsed", "class")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.type("13908070605")
    with page.expect_navigation():
        page.keyboard.press("Enter")

    assert _focused(page) == "id_number"
    error = page.locator("#id_id_number_error")
    assert error.is_visible()
    assert error.evaluate("e => getComputedStyle(e).color") == "rgb(176, 0, 32)"
    assert page.input_value("#id_family_phone") == "13908070605"
    assert not Member.objects.exists()
    page.screenshot(path=str(SCREENSHOTS / "desk_register_error.png"))


def test_clerk_gives_a_gift_for_points_keyboard_only_and_prints_the_slip(live_server, browser_page, desk_clerk):
    from decimal import Decimal

    from django.utils import timezone

    from membership.models import Gift, GiftRedemption, GiftStock
    from membership.services import gift_stock_receive, purchase_record
    from tests.membership.conftest import register

    page = browser_page
    dept001 = Store.objects.get(code="DEPT001")
    member = register(name="王秀英", phone="13908070611", store=dept001)
    purchase_record(store=Store.objects.get(code="SUPER001"), member=member, receipt_no="S-77",
                    amount=Decimal("2000.00"), occurred_at=timezone.now())
    bag = Gift.objects.create(code="BAG", name="环保购物袋", points=200)
    flask = Gift.objects.create(code="FLASK", name="保温杯", points=1500)
    for gift in (bag, flask):
        gift_stock_receive(gift=gift, store=dept001, quantity=10, operator=None)
    page.goto(f"{live_server.url}/desk/members/{member.member_no}/")
    page.fill("#id_username", "desk_clerk")
    page.fill("#id_password", "pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/desk/members/{member.member_no}/")

    # when: F6 opens the gifts, the arrow key picks the flask, Tab goes to the quantity, Enter gives it
    page.keyboard.press("F6")
    page.wait_for_url(f"{live_server.url}/desk/members/{member.member_no}/gifts/")
    _until_active(page, "el.type === 'radio'")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    assert _focused(page) == "quantity"
    page.screenshot(path=str(SCREENSHOTS / "desk_gifts.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/desk/members/{member.member_no}/gifts/*/")

    # then: one flask is given, 1500 points are gone, and the slip prints with F8
    redemption = GiftRedemption.objects.get()
    assert (redemption.gift, redemption.quantity, redemption.points) == (flask, 1, 1500)
    assert GiftStock.objects.get(gift=flask, store=dept001).quantity == 9
    assert page.inner_text("[data-balance]") == "500"
    _until_active(page, "el.hasAttribute('data-print')")
    page.emulate_media(media="print")
    assert page.is_visible("section.slip") and not page.is_visible("section.panel")
    assert "保温杯" in page.inner_text("section.slip")
    page.screenshot(path=str(SCREENSHOTS / "desk_gift_slip.png"), full_page=True)
