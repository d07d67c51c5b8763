"""What the browser tests share: Debian's Chromium, its launch options, the marks that skip without it (unless
CI requires it) and a page in a headless browser."""

import os
from contextlib import contextmanager

import pytest
from django.db import connections

# Playwright's sync API runs an event loop in this thread; the ORM calls of the tests are plain sync code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

BROWSER_MARKS = [
    pytest.mark.browser,
    # CI sets REQUIRE_BROWSER: there a missing Chromium fails the launch instead of skipping the test.
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("REQUIRE_BROWSER"),
        reason=f"needs Debian's Chromium at {CHROMIUM}",
    ),
    # live_server needs committed rows; serialized rollback brings back the tiers and roles of the migrations.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@contextmanager
def browser_page_open(*, width: int, height: int, **context_options):
    """A page of a headless Chromium with the given viewport and browser-context options (locale, headers)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": width, "height": height}, **context_options)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            # ORM calls made while Playwright runs open their own connection (its greenlet has its own
            # context); closing it lets PostgreSQL drop the test database at the end of the session.
            connections.close_all()
            context.close()
            browser.close()
