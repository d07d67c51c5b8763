"""Admin login lockout (django-axes) by client address, behind the reverse proxy or not, and the audit log's address."""

from datetime import date

import pytest
from axes.helpers import get_client_ip_address
from axes.models import AccessAttempt
from axes.utils import reset
from django.contrib.auth.models import User
from django.test import RequestFactory

from core.http import client_ip
from core.models import PersonalDataAccess
from tests.membership.conftest import register, resident_id

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PROXY = "127.0.0.1"
ATTACKER = "203.0.113.66"
ADMIN_HOME = "198.51.100.10"
PASSWORD = "pw-for-tests-123"


@pytest.fixture(autouse=True)
def no_earlier_attempts():
    reset()
    yield
    reset()


@pytest.fixture
def behind_proxy(settings):
    """One reverse proxy on this machine that appends the client's address to X-Forwarded-For."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    settings.TRUSTED_PROXY_IPS = [PROXY]
    settings.AXES_FAILURE_LIMIT = 5
    return settings


@pytest.fixture
def no_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    settings.AXES_FAILURE_LIMIT = 5
    return settings


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(username="admin", password=PASSWORD)


@pytest.fixture
def clerk(db):
    return User.objects.create_user(username="clerk", password=PASSWORD, is_staff=True)


def _login(client, username, password, **headers):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **headers)


def _via_proxy(client_address, sent_by_client=None):
    """The headers the proxy passes on: whatever the client sent, then the address it connected from."""
    forwarded = f"{sent_by_client}, {client_address}" if sent_by_client else client_address
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": forwarded}


@pytest.fixture
def attacker_locked(behind_proxy, client, superuser):
    for _ in range(5):
        _login(client, "admin", "wrong", **_via_proxy(ATTACKER))
    return client


def test_five_wrong_passwords_lock_the_attackers_address(attacker_locked, superuser):
    response = _login(attacker_locked, "admin", PASSWORD, **_via_proxy(ATTACKER))

    assert response.status_code == 429
    assert "_auth_user_id" not in attacker_locked.session
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_the_locked_address_is_locked_for_every_username(attacker_locked, clerk):
    response = _login(attacker_locked, "clerk", PASSWORD, **_via_proxy(ATTACKER))

    assert response.status_code == 429


def test_the_attacked_account_still_logs_in_from_another_address(attacker_locked, superuser, client):
    client.cookies.clear()

    response = _login(client, "admin", PASSWORD, **_via_proxy(ADMIN_HOME))

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(superuser.pk)


def test_entries_the_client_put_in_front_of_the_proxys_are_ignored(behind_proxy, client, superuser):
    for forged in range(5):
        _login(client, "admin", "wrong", **_via_proxy(ATTACKER, sent_by_client=f"192.0.2.{forged}"))

    response = _login(client, "admin", PASSWORD, **_via_proxy(ATTACKER, sent_by_client=ADMIN_HOME))

    assert response.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_the_header_is_ignored_from_an_address_that_is_not_the_trusted_proxy(behind_proxy, client, superuser):
    _login(client, "admin", "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=ADMIN_HOME)

    assert AccessAttempt.objects.get().ip_address == ATTACKER


def test_a_successful_login_does_not_clear_the_failures_against_other_accounts(behind_proxy, client, superuser,
                                                                               clerk):
    # given: four wrong passwords for admin from one address, then a valid login of another account there
    for _ in range(4):
        _login(client, "admin", "wrong", **_via_proxy(ATTACKER))
    assert _login(client, "clerk", PASSWORD, **_via_proxy(ATTACKER)).status_code == 302
    client.logout()

    # when: one more wrong password for admin
    _login(client, "admin", "wrong", **_via_proxy(ATTACKER))

    # then: the address has had its five failures
    assert _login(client, "admin", PASSWORD, **_via_proxy(ATTACKER)).status_code == 429


def test_a_successful_login_clears_the_users_own_failures_at_that_address(behind_proxy, client, clerk):
    for _ in range(4):
        _login(client, "clerk", "wrong", **_via_proxy(ATTACKER))
    assert _login(client, "clerk", PASSWORD, **_via_proxy(ATTACKER)).status_code == 302
    client.logout()

    for _ in range(4):
        _login(client, "clerk", "wrong", **_via_proxy(ATTACKER))

    assert _login(client, "clerk", PASSWORD, **_via_proxy(ATTACKER)).status_code == 302


def test_without_a_proxy_a_forged_forwarded_for_does_not_change_the_recorded_address(no_proxy, client, superuser):
    _login(client, "admin", "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=ADMIN_HOME)

    assert AccessAttempt.objects.get().ip_address == ATTACKER


def test_without_a_proxy_changing_the_forged_header_does_not_escape_the_lockout(no_proxy, client, superuser):
    for forged in range(5):
        _login(client, "admin", "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{forged}")

    response = _login(client, "admin", PASSWORD, REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=ADMIN_HOME)

    assert response.status_code == 429


@pytest.mark.parametrize(("configured", "headers", "expected"), [
    (False, {"REMOTE_ADDR": ATTACKER, "HTTP_X_FORWARDED_FOR": ADMIN_HOME}, ATTACKER),
    (True, _via_proxy(ATTACKER, sent_by_client=ADMIN_HOME), ATTACKER),
    (True, {"REMOTE_ADDR": PROXY}, PROXY),
    (True, {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "not-an-address"}, PROXY),
    (True, {"REMOTE_ADDR": ATTACKER, "HTTP_X_FORWARDED_FOR": ADMIN_HOME}, ATTACKER),
], ids=["no-proxy", "behind-proxy", "no-header", "bad-header", "untrusted-sender"])
def test_the_audit_log_helper_gives_the_address_axes_uses(settings, configured, headers, expected):
    settings.TRUSTED_PROXY_COUNT = 1 if configured else 0
    settings.TRUSTED_PROXY_IPS = [PROXY]
    request = RequestFactory().get("/", **headers)

    assert client_ip(request) == get_client_ip_address(request) == expected


def test_two_proxies_give_the_address_the_outer_one_saw(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    settings.TRUSTED_PROXY_IPS = ["10.0.0.0/8"]
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2",
                                   HTTP_X_FORWARDED_FOR=f"{ADMIN_HOME}, {ATTACKER}, 10.0.0.1")

    assert client_ip(request) == ATTACKER


def test_the_audit_log_records_the_client_behind_the_proxy(behind_proxy, client, hq_admin, dept001):
    member = register(name="张秀英", id_type="resident_id", id_number=resident_id(date(1948, 3, 12)),
                      family_phone="13908070605", store=dept001)
    client.force_login(hq_admin)

    response = client.post(f"/admin/membership/member/{member.pk}/reveal/",
                           **_via_proxy(ADMIN_HOME, sent_by_client=ATTACKER))

    assert response.status_code == 200
    assert PersonalDataAccess.objects.get().ip_address == ADMIN_HOME
