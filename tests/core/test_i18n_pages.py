"""Every admin page a Chinese user opens reads in Chinese: no English word leaks into the text (issue 18).

A superuser with the language zh-hans opens, over a small demo (`seed_demo`), every registered model's changelist,
add page and one change page, and every page of the admin that takes no argument (the reports, the exports, the
imports ...), found in the admin's URL patterns. The visible text of each page (text nodes only: no tags,
attribute values, scripts or styles) may hold codes, numbers, dates and the test data's own values, but no English
word outside ALLOWED. A leak is fixed where it comes from (a gettext'd label, a verbose name, a choice's label),
never by adding a real English word here.
"""

import re
from html.parser import HTMLParser
from io import StringIO

import pytest
from axes.models import AccessLog
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test import RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, reverse
from django.utils import translation
from django.views.defaults import server_error

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}

# Codes and names a Chinese user reads as they are: abbreviations, file formats, units and product names.
ALLOWED = {
    "SKU", "POS", "ID", "API", "Excel", "CSV", "csv", "xlsx", "XLSX", "PIN", "URL", "IP", "HQ", "PDF", "VIP",
    "Plus", "PLUS", "UTF", "BOM", "GBK", "JSON", "OK", "Celery", "crontab", "cron", "UTC", "Asia", "Shanghai",
    "Email", "email", "QR", "KPI", "PIPL", "GB", "kg", "Luhn", "Webhook",
    # the keys Django's multiple-select help names: "按住 Control 键或 Mac 上的 Command 键来选择多项"
    "Control", "Command", "Mac",
}
# The admin's pages that are not HTML meant for reading, or that act when opened.
SKIPPED_URL_NAMES = {"jsi18n", "logout", "autocomplete"}

SKIPPED_TAGS = ("script", "style", "template", "noscript", "code")
VOID_TAGS = ("input", "img", "br", "hr", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr")
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]|[A-Za-z]")
# A token holding a digit, an underscore, '@' or several capitals in a row is a code (DEPT001, BRANDDEMO5,
# super001_manager, RMB), not a word.
TOKEN = re.compile(r"[A-Za-z0-9_@.\-:/]+")
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


class _TextNodes(HTMLParser):
    """The visible text of a page: text nodes outside script, style and template tags, and outside <code>, which
    holds what a user types or a file carries as it is (an import file's column codes)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = 0
        self._skipped: list[str] = []

    def handle_starttag(self, tag, attrs):
        # translate="no" marks what is not language (the JSON of a segment's rules, as staff may type it).
        if tag in SKIPPED_TAGS or (("translate", "no") in attrs and tag not in VOID_TAGS):
            self._skip += 1
            self._skipped.append(tag)

    def handle_endtag(self, tag):
        if self._skipped and self._skipped[-1] == tag:
            self._skipped.pop()
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(data.strip())


def english_words(html: str, allowed: set[str]) -> list[str]:
    parser = _TextNodes()
    parser.feed(html)
    found = []
    for text in parser.texts:
        # A placeholder staff type as it is ({name} in a campaign's message) is a code, not a word.
        for token in TOKEN.findall(PLACEHOLDER.sub(" ", text)):
            if not re.search(r"[A-Za-z]", token) or token in allowed:
                continue
            if re.search(r"[0-9_@/]", token) or re.fullmatch(r"[A-Z]{2,}[A-Z0-9\-]*", token):
                continue  # a code: DEPT001, BRANDDEMO, super001_manager, a card number, a path, Asia/Shanghai
            for word in WORD.findall(token):
                if word not in allowed and len(word) > 1:
                    found.append(f"{word!r} in {text[:80]!r}")
    return found


@pytest.fixture(scope="module")
def demo_data(django_db_setup, django_db_blocker):
    """A small demo, loaded once for the module in a transaction rolled back at its end."""
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", members=20, cards=12, stdout=StringIO())
        yield
        transaction.set_rollback(True)


@pytest.fixture
def root(demo_data, db, client):
    user = User.objects.create_superuser("i18n_root", password="x-Unused-42")
    client.force_login(user)
    # force_login's request has no path, browser or accept header, which axes logs as "<unknown>"; a login through
    # the form has them.
    AccessLog.objects.filter(username=user.username).update(path_info="/admin/login/", user_agent="Mozilla/5.0",
                                                            http_accept="text/html")
    return user


def _allowed() -> set[str]:
    return ALLOWED | set(User.objects.values_list("username", flat=True))


def _assert_chinese(client, url: str, *, redirect_ok: bool = True) -> None:
    response = client.get(url, **ZH)
    if response.status_code == 405:  # a page that only acts on POST (process an import, detect candidates)
        return
    assert response.status_code in ((200, 302) if redirect_ok else (200,)), f"{url} answered {response.status_code}"
    if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
        return
    leaks = english_words(response.content.decode(), _allowed())
    assert leaks == [], f"{url} shows English: " + "; ".join(sorted(set(leaks)))


REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_every_admin_screen_of_a_model_reads_in_chinese(model, root, client):
    # given
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/admin/")
    request.user = root
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    # then: the list, the add page (where the admin allows adding) and one object's page are Chinese
    _assert_chinese(client, reverse(f"{prefix}_changelist"))  # 302: a single-row model's page
    if model_admin.has_add_permission(request):
        _assert_chinese(client, reverse(f"{prefix}_add"))
    obj = model._default_manager.order_by("pk").first()
    if obj is not None:
        _assert_chinese(client, reverse(f"{prefix}_change", args=[obj.pk]))
        _assert_chinese(client, reverse(f"{prefix}_history", args=[obj.pk]))


def _takes_arguments(pattern) -> bool:
    return bool(getattr(pattern.pattern, "converters", None)) or "(" in str(pattern.pattern)


def _admin_pages(patterns, prefix="") -> list[str]:
    """The names of the admin's URL patterns that take no argument, other than a model's list and add page."""
    names = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if _takes_arguments(pattern):
                continue
            names += _admin_pages(pattern.url_patterns, prefix)
        elif isinstance(pattern, URLPattern) and pattern.name and not _takes_arguments(pattern):
            name = pattern.name
            if name in SKIPPED_URL_NAMES or name.endswith(("_changelist", "_add", "_autocomplete")):
                continue
            names.append(name)
    return sorted(set(names))


ADMIN_PAGES = _admin_pages(admin.site.get_urls())


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_every_other_admin_page_reads_in_chinese(name, root, client):
    _assert_chinese(client, reverse(f"admin:{name}"))


def test_the_words_of_a_page_are_found_in_its_text_nodes_only():
    html = ('<html><head><style>body {color: red}</style><script>var Select = 1;</script></head>'
            '<body><a href="/admin/Export/" title="Select all">全选</a> <p>DEPT001 卡号 20260101 Resource</p></body>')

    assert english_words(html, set()) == ["'Resource' in 'DEPT001 卡号 20260101 Resource'"]


# --- the error pages (DEBUG off, as in production) -------------------------------------------------------------


@override_settings(DEBUG=False)
def test_a_refused_page_is_chinese_in_the_admins_look(demo_data, db, client):
    # given: a store manager, whom the scheduled jobs (headquarters only) refuse
    client.force_login(User.objects.get(username="super001_manager"))

    response = client.get(reverse("admin:django_celery_beat_periodictask_changelist"), **ZH)

    assert response.status_code == 403
    page = response.content.decode()
    assert 'id="site-name"' in page and "Forbidden" not in page
    assert english_words(page, _allowed()) == []


@override_settings(DEBUG=False)
def test_a_missing_page_is_chinese_in_the_admins_look(root, client):
    response = client.get("/no-such-page/", **ZH)

    assert response.status_code == 404
    page = response.content.decode()
    assert 'id="site-name"' in page and "Not Found" not in page
    assert english_words(page, _allowed()) == []


@override_settings(DEBUG=False)
def test_a_server_error_page_is_chinese_and_needs_no_context():
    request = RequestFactory().get("/admin/")
    with translation.override("zh-hans"):
        response = server_error(request)

    assert response.status_code == 500
    page = response.content.decode()
    assert "Server Error" not in page
    assert english_words(page, set(ALLOWED)) == []
