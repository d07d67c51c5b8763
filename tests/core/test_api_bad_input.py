"""The API answers bad input with the CONTRACT envelope, never with a 500."""

import pytest
from django.core.cache import cache

from stores.api_auth import TerminalRateThrottle
from stores.models import Store
from stores.services import terminal_create

TERMINAL = "/api/v1/terminal"


def _latin1(text: str) -> str:
    """How a WSGI/ASGI server hands over the bytes of a header that was sent as UTF-8 (PEP 3333)."""
    return text.encode("utf-8").decode("latin-1")


def _assert_envelope(response, status: int, code: str):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer " + "k" * 10_000, id="over-long key"),
        pytest.param("Bearer " + "A" * 70_000, id="very long header"),
        pytest.param("Bearer " + _latin1("密钥密钥"), id="non-ASCII key sent as UTF-8"),
        pytest.param("Bearer pos_clé", id="latin-1 key"),
        pytest.param("Basic dXNlcjpwYXNzd29yZA==", id="Basic scheme"),
        pytest.param("Token pos_abc", id="Token scheme"),
        pytest.param("Bearer", id="no key"),
        pytest.param("Bearer two parts", id="key with a space"),
        pytest.param("pos_abc", id="key without a scheme"),
        pytest.param("Bearer \x00\x01", id="control characters"),
    ],
)
def test_bad_authorization_header_is_unauthenticated(client, terminal_with_key, header):
    response = client.get(TERMINAL, HTTP_AUTHORIZATION=header)

    _assert_envelope(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_valid_key_with_a_lower_case_scheme_is_accepted(client, terminal_with_key):
    _, key = terminal_with_key

    response = client.get(TERMINAL, HTTP_AUTHORIZATION=f"bearer {key}")

    assert response.status_code == 200


def test_key_of_a_terminal_whose_store_is_closed_is_unauthenticated(client, terminal_with_key, dept001):
    # given: the store closed, its terminal still marked active
    terminal, key = terminal_with_key
    Store.objects.filter(pk=dept001.pk).update(status=Store.Status.CLOSED, closed_on=dept001.opened_on)
    # when
    response = client.get(TERMINAL, HTTP_AUTHORIZATION=f"Bearer {key}")
    # then
    _assert_envelope(response, 401, "unauthenticated")
    terminal.refresh_from_db()
    assert terminal.last_used_at is None


def test_key_of_a_planned_store_still_works(client, terminal_with_key, dept001):
    _, key = terminal_with_key
    Store.objects.filter(pk=dept001.pk).update(status=Store.Status.PLANNED)

    response = client.get(TERMINAL, HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 200


def test_old_key_stops_working_after_rotation(client, terminal_with_key):
    from stores.services import terminal_key_rotate

    terminal, old_key = terminal_with_key
    new_key = terminal_key_rotate(terminal=terminal)

    _assert_envelope(client.get(TERMINAL, HTTP_AUTHORIZATION=f"Bearer {old_key}"), 401, "unauthenticated")
    assert client.get(TERMINAL, HTTP_AUTHORIZATION=f"Bearer {new_key}").status_code == 200


def test_a_successful_call_records_when_the_terminal_was_last_used(api, terminal_with_key):
    terminal, _ = terminal_with_key

    api.get(TERMINAL)

    terminal.refresh_from_db()
    assert terminal.last_used_at is not None


# --- methods and bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_wrong_method_on_terminal_is_answered_in_the_envelope(api, method):
    response = getattr(api, method)(TERMINAL, data="{}", content_type="application/json")

    _assert_envelope(response, 405, "not_found")


def test_wrong_method_without_a_key_is_unauthenticated_not_500(client, db):
    response = client.post(TERMINAL, data="{}", content_type="application/json")

    _assert_envelope(response, 401, "unauthenticated")


def test_malformed_body_on_a_get_only_operation_is_not_500(api):
    response = api.post(TERMINAL, data="{not json", content_type="application/json")

    assert response.status_code in (400, 405)
    assert "error" in response.json()


def test_head_and_options_on_terminal_do_not_fail(api):
    assert api.head(TERMINAL).status_code == 200
    assert api.options(TERMINAL).status_code == 200


def test_unknown_path_with_a_bad_key_is_still_the_envelope(client, db):
    response = client.get("/api/v1/cards/../../etc/passwd", HTTP_AUTHORIZATION="Basic xyz")

    assert response.status_code in (401, 404)
    assert "error" in response.json()


# --- rate limiting ------------------------------------------------------------------------------------


@pytest.fixture
def two_a_minute(monkeypatch):
    monkeypatch.setattr(TerminalRateThrottle, "THROTTLE_RATES", {"terminal": "2/min"})


def test_rate_limit_answers_429_rate_limited_in_the_envelope(api, two_a_minute):
    # given
    assert api.get(TERMINAL).status_code == 200
    assert api.get(TERMINAL).status_code == 200
    # when
    response = api.get(TERMINAL)
    # then
    _assert_envelope(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0


def test_rate_limit_is_per_terminal(api, client, two_a_minute, dept001):
    # given: terminal T1 used up its allowance
    for _ in range(3):
        api.get(TERMINAL)
    _, other_key = terminal_create(store_code="DEPT001", name="T2")
    # when
    response = client.get(TERMINAL, HTTP_AUTHORIZATION=f"Bearer {other_key}")
    # then
    assert response.status_code == 200
    assert response.json()["terminal"] == "T2"


def test_rate_limit_starts_afresh_with_an_empty_cache(api, two_a_minute):
    for _ in range(3):
        api.get(TERMINAL)

    cache.clear()

    assert api.get(TERMINAL).status_code == 200


def test_unauthenticated_calls_are_refused_before_rate_limiting(client, terminal_with_key, two_a_minute):
    for _ in range(5):
        response = client.get(TERMINAL, HTTP_AUTHORIZATION="Bearer pos_unknown")
        _assert_envelope(response, 401, "unauthenticated")
