"""The admin in a real browser, in Chinese: a superuser logs in and the admin index, the prepaid liability page
and a member's page load without error; a screenshot of each is kept (in the test's tmp dir, and in
SCREENSHOT_DIR when it is set)."""

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from stores.models import StaffProfile, Store
from tests.browser import BROWSER_MARKS, browser_page_open
from tests.factories import STAFF_PASSWORD, CardFactory, CardProductFactory, MemberFactory

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ERROR_TEXTS = ("Server Error", "Traceback", "服务器错误", "Page not found", "页面没有找到", "Forbidden")

pytestmark = BROWSER_MARKS


@pytest.fixture
def browser_page():
    with browser_page_open(width=1280, height=900, locale="zh-CN",
                           extra_http_headers={"Accept-Language": "zh-Hans,zh;q=0.9"}) as page:
        yield page


@pytest.fixture
def screenshot_dirs(tmp_path):
    dirs = [tmp_path]
    if os.environ.get("SCREENSHOT_DIR"):
        extra = Path(os.environ["SCREENSHOT_DIR"])
        extra.mkdir(parents=True, exist_ok=True)
        dirs.append(extra)
    return dirs


@pytest.fixture
def small_data(transactional_db):
    """A superuser at headquarters, a member and a sold card with a balance (so the liability page has a line)."""
    from stores import demo

    demo.seed_stores()
    dept001 = Store.objects.select_related("format__legal_entity").get(code="DEPT001")
    root = User.objects.create_superuser("screenshot_root", password=STAFF_PASSWORD)
    StaffProfile.objects.create(user=root, scope=StaffProfile.Scope.HQ)
    member = MemberFactory(name="张秀英", phone="13800138000", store=dept001)
    CardFactory(product=CardProductFactory(registered=True), sold_store=dept001,
                issuer=dept001.format.legal_entity, balance=Decimal("500.00"), member=member)
    return {"member": member}


def _shoot(page, name: str, dirs: list[Path]) -> list[Path]:
    paths = []
    for directory in dirs:
        path = directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    return paths


def _assert_loaded_in_chinese(page, response, url: str) -> None:
    assert response is not None and response.status == 200, f"{url} answered {response and response.status}"
    assert "/admin/login/" not in page.url, f"{url} sent the superuser to the login page"
    body = page.inner_text("body")
    for text in ERROR_TEXTS:
        assert text not in body, f"{url} shows {text!r}"
    assert page.evaluate("document.documentElement.lang") in ("zh-hans", "zh-Hans", "zh-cn", "zh-CN")
    title = page.title()
    assert CHINESE.search(title), f"{url} has no Chinese title: {title!r}"
    heading = page.inner_text("#content h1") if page.locator("#content h1").count() else ""
    assert CHINESE.search(heading or title), f"{url} has no Chinese heading: {heading!r}"


def test_a_superuser_sees_the_admin_index_liability_and_a_member_in_chinese(
    live_server, browser_page, small_data, screenshot_dirs
):
    page = browser_page
    member = small_data["member"]

    # given: the superuser logs in through the admin's login page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "screenshot_root")
    page.fill("#id_password", STAFF_PASSWORD)
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_url(f"{live_server.url}/admin/")

    pages = [
        ("admin_index", "/admin/"),
        ("prepaid_liability", "/admin/cards/liability/"),
        ("member_change", f"/admin/membership/member/{member.pk}/change/"),
    ]
    shots = []
    for name, path in pages:
        # when
        response = page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        # then
        _assert_loaded_in_chinese(page, response, path)
        shots.extend(_shoot(page, name, screenshot_dirs))

    assert page.title() and member.member_no in page.inner_text("body")
    for path in shots:
        assert path.exists() and path.stat().st_size > 5_000, path
