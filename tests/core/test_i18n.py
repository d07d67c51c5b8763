"""Chinese is the default language and its catalog is complete; English works too."""

import shutil
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

CATALOG = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"


def test_chinese_catalog_has_no_untranslated_or_fuzzy_entries():
    catalog = polib.pofile(str(CATALOG / "django.po"))

    untranslated = [entry.msgid for entry in catalog.untranslated_entries()]
    fuzzy = [entry.msgid for entry in catalog.fuzzy_entries()]

    assert untranslated == []
    assert fuzzy == []


def test_compiled_catalog_matches_its_source():
    source = {(entry.msgctxt, entry.msgid): entry.msgstr or entry.msgstr_plural
              for entry in polib.pofile(str(CATALOG / "django.po")).translated_entries()}
    compiled = {(entry.msgctxt, entry.msgid): entry.msgstr or entry.msgstr_plural
                for entry in polib.mofile(str(CATALOG / "django.mo"))
                if entry.msgid}

    assert compiled == source


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (apt-get install gettext)")
def test_catalog_holds_every_translatable_string_of_the_code(tmp_path, monkeypatch):
    # given: a copy of the code without its catalog (makemessages writes into any locale/ it walks past)
    source = tmp_path / "src"
    shutil.copytree(
        settings.BASE_DIR, source,
        ignore=shutil.ignore_patterns(".git", ".venv", "locale", "tests", "bench", "media", "staticfiles",
                                      "__pycache__", "*.sqlite3*"),
    )
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(source)
    # when: its strings are extracted afresh
    with override_settings(LOCALE_PATHS=[str(out)]):
        call_command("makemessages", locale=["zh_Hans"], verbosity=0)
    fresh = {(entry.msgctxt, entry.msgid) for entry in polib.pofile(str(out / "zh_Hans/LC_MESSAGES/django.po"))}
    committed = {(entry.msgctxt, entry.msgid) for entry in polib.pofile(str(CATALOG / "django.po"))}
    # then: nothing is missing (run `make messages` and translate what is listed here)
    assert sorted(fresh - committed, key=str) == []


def test_admin_login_page_is_chinese_by_default(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert "零售集团管理后台" in response.content.decode()


def test_admin_login_page_is_english_when_the_browser_asks_for_it(client):
    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "Retail group back office" in response.content.decode()
